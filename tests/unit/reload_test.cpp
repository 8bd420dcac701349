// Hot reload at the registry (DESIGN.md §5): state handover v1 → v2, failed reloads that
// leave the old version serving with the reason recorded, private copies, plugins.d
// settings (enabled, range, settings → init), requests in flight across the swap, and
// the degraded verdict.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include "metrics/metrics.hpp"
#include "plugins/registry.hpp"
#include "temp_dir_test.hpp"

namespace prism::plugins {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kTestPlugins = PRISM_TEST_PLUGIN_DIR;
const fs::path kReload = kTestPlugins / "reload";

// reloadable's packet ids (tests/plugins/reloadable.cpp), at its requested range 960-969.
constexpr uint32_t kFirst = 960;
enum Method : uint32_t { kVersion = 0, kCount = 1, kConfig = 2, kHold = 3, kBlock = 4, kFail = 5 };

// A request as the dispatcher would hand it over; the reply may come from another thread.
struct FakeRequest final : prism_request {
  prism_status_t complete(prism_status_t s, std::string_view m,
                          std::span<const uint8_t> p) override {
    std::lock_guard lock(mutex);
    status = s;
    message = m;
    payload.assign(p.begin(), p.end());
    answered = true;
    cv.notify_all();
    return PRISM_OK;
  }
  uint64_t session_id() const override { return 1; }

  bool wait(std::chrono::milliseconds limit = 5s) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, limit, [&] { return answered; });
  }

  std::mutex mutex;
  std::condition_variable cv;
  bool answered = false;
  prism_status_t status = PRISM_OK;
  std::string message, payload;
};

struct Answer {
  prism_status_t status;
  std::string payload;
};

// Calls `method` of whichever plugin owns `first + method` in the current table.
Answer call(Registry& registry, uint32_t method, std::string_view payload = {},
            uint32_t first = kFirst) {
  const Route* route = registry.table()->find(first + method);
  if (route == nullptr) return {PRISM_INVALID_PACKET, "no route"};
  auto plugin = route->plugin;
  FakeRequest req;
  plugin->handle(&req, first + method - route->first,
                 {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
  EXPECT_TRUE(req.answered);
  return {req.status, req.payload};
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

struct Pipe {
  Pipe() { EXPECT_EQ(::pipe(fds), 0); }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  int read_end() const { return fds[0]; }
  int write_end() const { return fds[1]; }
  void signal() const {
    const char c = 'x';
    EXPECT_EQ(::write(fds[1], &c, 1), 1);
  }
  void wait() const {
    char c;
    EXPECT_EQ(::read(fds[0], &c, 1), 1);
  }
  int fds[2] = {-1, -1};
};

class ReloadTest : public prism::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fs::create_directories(dir_ / "plugins");
    registry_ = std::make_unique<Registry>(HostFacts{"test", 0, 1, ""}, dir_ / "private");
  }
  void TearDown() override {
    registry_.reset();
    TempDirTest::TearDown();
  }

  // Puts a variant in the plugins dir as reloadable.so, overwriting in place.
  fs::path install(const std::string& variant, const std::string& as = "reloadable.so") {
    const fs::path target = dir_ / "plugins" / as;
    fs::copy_file(kReload / ("reloadable_" + variant + ".so"), target,
                  fs::copy_options::overwrite_existing);
    return target;
  }

  void load_v1() {
    auto loaded = registry_->load(install("v1"));
    ASSERT_TRUE(loaded) << loaded.error();
  }

  std::string version() { return call(*registry_, kVersion).payload; }

  uint64_t reloads_counted(const char* result) {
    return metrics::registry()
        .counter("prism_plugin_reloads_total",
                 std::string("plugin=\"reloadable\",result=\"") + result + "\"", "")
        .value();
  }

  std::unique_ptr<Registry> registry_;
};

TEST_F(ReloadTest, ReloadHandsTheCountFromV1ToV2) {
  load_v1();
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(call(*registry_, kCount).payload, "1.0.0 " + std::to_string(i));
  const uint64_t ok_before = reloads_counted("ok");

  // Without a file named, the file it was loaded from is read again (now holding v2).
  install("v2");
  auto reloaded = registry_->reload("reloadable");
  ASSERT_TRUE(reloaded) << reloaded.error();
  EXPECT_EQ((*reloaded)->version(), "2.0.0");
  EXPECT_EQ(call(*registry_, kCount).payload, "2.0.0 4");
  EXPECT_EQ(registry_->table()->find(kFirst)->plugin, *reloaded);
  EXPECT_EQ(registry_->table()->routes().size(), 1u);

  auto status = registry_->status("reloadable");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->version, "2.0.0");
  EXPECT_EQ(status->state, "serving");
  EXPECT_EQ(status->reloads, 1u);
  EXPECT_EQ(status->reload_failures, 0u);
  EXPECT_TRUE(status->last_error.empty());
  EXPECT_EQ(reloads_counted("ok"), ok_before + 1);

  // And back, from another file.
  auto back = registry_->reload("reloadable", kReload / "reloadable_v1.so");
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(call(*registry_, kCount).payload, "1.0.0 5");
  EXPECT_EQ(registry_->status("reloadable")->reloads, 2u);
  EXPECT_EQ(registry_->status("reloadable")->file, (kReload / "reloadable_v1.so").string());
}

TEST_F(ReloadTest, OverwritingTheOriginalDoesNotTouchTheLoadedVersion) {
  load_v1();
  auto v1 = registry_->find("reloadable");
  ASSERT_TRUE(v1);
  // It runs from its own copy, in the registry's private directory.
  EXPECT_EQ(v1->file(), (dir_ / "plugins" / "reloadable.so").string());
  EXPECT_EQ(v1->private_copy().parent_path().parent_path(), dir_ / "private");
  EXPECT_EQ(read_file(v1->private_copy()), read_file(kReload / "reloadable_v1.so"));
  // Rewritten in place (same inode): had dlopen mapped it, this would change the code.
  install("v2");
  EXPECT_EQ(version(), "1.0.0");
  EXPECT_EQ(call(*registry_, kCount).payload, "1.0.0 1");
}

TEST_F(ReloadTest, TheOldVersionShutsDownAndItsCopyGoesWithTheLastReference) {
  load_v1();
  auto v1 = registry_->find("reloadable");
  const fs::path copy = v1->private_copy();
  ASSERT_TRUE(registry_->reload("reloadable", kReload / "reloadable_v2.so"));
  EXPECT_TRUE(fs::exists(copy)) << "still referenced here, as by an in-flight request";
  v1.reset();
  EXPECT_FALSE(fs::exists(copy));
  EXPECT_TRUE(fs::exists(registry_->find("reloadable")->private_copy()));
}

TEST_F(ReloadTest, EachKindOfFailedReloadKeepsV1ServingAndRecordsWhy) {
  load_v1();
  ASSERT_TRUE(registry_->load(kTestPlugins / "versioned_v1.so"));  // owns 930-939
  const fs::path truncated = dir_ / "truncated.so";
  {
    const std::string bytes = read_file(kReload / "reloadable_v2.so");
    std::ofstream(truncated, std::ios::binary).write(bytes.data(), 4096);
  }
  const struct {
    fs::path file;
    std::string reason;
  } cases[] = {
      {kTestPlugins / "wrong_abi.so", "major must match"},
      {kReload / "reloadable_init_fails.so", "refusing to start: test variant"},
      {kReload / "reloadable_overlap.so", "overlaps plugin versioned (930-939)"},
      {kReload / "reloadable_restore_fails.so", "restore failed"},
      {dir_ / "missing.so", "cannot open"},
      {truncated, "cannot load shared object"},
      {kTestPlugins / "versioned_v2.so", "declares plugin 'versioned', not 'reloadable'"},
  };
  uint64_t failures = 0;
  uint64_t count = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file.string());
    const uint64_t failed_before = reloads_counted("failed");
    auto reloaded = registry_->reload("reloadable", c.file);
    ASSERT_FALSE(reloaded);
    EXPECT_NE(reloaded.error().find(c.reason), std::string::npos) << reloaded.error();
    EXPECT_NE(reloaded.code(), ErrorCode::kNotFound);  // INVALID_ARGUMENT at the admin service
    EXPECT_NE(reloaded.error().find(c.file.filename().string()), std::string::npos)
        << reloaded.error();
    // v1 serves on, its state intact.
    EXPECT_EQ(version(), "1.0.0");
    EXPECT_EQ(call(*registry_, kCount).payload, "1.0.0 " + std::to_string(++count));
    auto status = registry_->status("reloadable");
    EXPECT_EQ(status->version, "1.0.0");
    EXPECT_EQ(status->last_error, reloaded.error());
    EXPECT_EQ(status->reload_failures, ++failures);
    EXPECT_EQ(status->reloads, 0u);
    EXPECT_EQ(reloads_counted("failed"), failed_before + 1);
  }
  EXPECT_EQ(registry_->find("versioned")->version(), "1.0.0");
  // The refused versions' copies are gone; only the two serving ones are left.
  size_t copies = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(registry_->find("reloadable")->private_copy().parent_path())) ++copies;
  EXPECT_EQ(copies, 2u);
  // A good reload afterwards clears the error and carries the count.
  ASSERT_TRUE(registry_->reload("reloadable", kReload / "reloadable_v2.so"));
  EXPECT_EQ(call(*registry_, kCount).payload, "2.0.0 " + std::to_string(++count));
  EXPECT_TRUE(registry_->status("reloadable")->last_error.empty());
}

TEST_F(ReloadTest, ReloadOfAPluginNotLoadedSaysSo) {
  auto reloaded = registry_->reload("reloadable");
  ASSERT_FALSE(reloaded);
  EXPECT_NE(reloaded.error().find("not loaded"), std::string::npos) << reloaded.error();
  // The admin service answers NOT_FOUND by this code, not by the text.
  EXPECT_EQ(reloaded.code(), ErrorCode::kNotFound);
}

TEST_F(ReloadTest, DisabledPluginIsNotLoaded) {
  PluginSettings s;
  s.name = "reloadable";
  s.source = "plugins.d/reloadable.yaml";
  s.enabled = false;
  registry_->set_plugin_settings({s});
  install("v1");
  auto loaded = registry_->load(dir_ / "plugins" / "reloadable.so");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().find("disabled in plugins.d/reloadable.yaml"), std::string::npos)
      << loaded.error();
  EXPECT_EQ(loaded.code(), ErrorCode::kDisabled);
  // Not a refusal in a directory load: it is what the operator asked for.
  EXPECT_TRUE(registry_->load_directory(dir_ / "plugins").empty());
  EXPECT_EQ(registry_->table()->find(kFirst), nullptr);
  EXPECT_EQ(registry_->status("reloadable")->state, "disabled");
  // Found by the name in its descriptor too, whatever the file is called.
  install("v1", "renamed.so");
  auto renamed = registry_->load(dir_ / "plugins" / "renamed.so");
  ASSERT_FALSE(renamed);
  EXPECT_NE(renamed.error().find("disabled in"), std::string::npos) << renamed.error();
}

TEST_F(ReloadTest, ConfiguredRangeReplacesTheRequestedOne) {
  PluginSettings s;
  s.name = "reloadable";
  s.range = std::make_pair(5000u, 5009u);
  registry_->set_plugin_settings({s});
  load_v1();
  EXPECT_EQ(registry_->table()->find(kFirst), nullptr);
  const Route* r = registry_->table()->find(5001);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->first, 5000u);
  EXPECT_EQ(r->last, 5009u);
  EXPECT_EQ(call(*registry_, kVersion, {}, 5000).payload, "1.0.0");
  bool count_moved = false;
  for (const auto& m : r->plugin->methods()) count_moved |= m.name == "count" && m.packet_id == 5001;
  EXPECT_TRUE(count_moved);
  // The range is kept across a reload.
  ASSERT_TRUE(registry_->reload("reloadable", kReload / "reloadable_v2.so"));
  EXPECT_EQ(call(*registry_, kVersion, {}, 5000).payload, "2.0.0");

  // A range too small for the plugin's methods (ids 0-5) is refused.
  Registry fresh{HostFacts{"test", 0, 1, ""}, dir_ / "private"};
  s.range = std::make_pair(5000u, 5002u);
  fresh.set_plugin_settings({s});
  auto refused = fresh.load(dir_ / "plugins" / "reloadable.so");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("configured range 5000-5002 has no room for method 'hold'"),
            std::string::npos)
      << refused.error();
}

TEST_F(ReloadTest, SettingsReachInitAsYaml) {
  PluginSettings s;
  s.name = "reloadable";
  s.settings = YAML::Load("greeting: hello\nlimits:\n  max: 3\n");
  registry_->set_plugin_settings({s});
  load_v1();
  const std::string config = call(*registry_, kConfig).payload;
  const YAML::Node parsed = YAML::Load(config);
  EXPECT_EQ(parsed["greeting"].as<std::string>(), "hello") << config;
  EXPECT_EQ(parsed["limits"]["max"].as<int>(), 3) << config;
  // A reload reads the settings as they are now.
  s.settings = YAML::Load("greeting: again\n");
  registry_->set_plugin_settings({s});
  ASSERT_TRUE(registry_->reload("reloadable", kReload / "reloadable_v2.so"));
  EXPECT_EQ(YAML::Load(call(*registry_, kConfig).payload)["greeting"].as<std::string>(), "again");
}

// A request inside v1's handler when the reload starts: the handover waits for it (no
// snapshot while a handler runs), it is answered by v1, and its count reaches v2.
TEST_F(ReloadTest, RequestInsideTheOldVersionFinishesThereAndItsStateCarries) {
  load_v1();
  EXPECT_EQ(call(*registry_, kCount).payload, "1.0.0 1");
  Pipe entered, go;
  auto v1 = registry_->find("reloadable");  // what a dispatcher's request context holds
  FakeRequest inside;
  std::thread worker([&] {
    const std::string payload =
        std::to_string(go.read_end()) + " " + std::to_string(entered.write_end());
    v1->handle(&inside, kBlock, {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
  });
  entered.wait();
  auto reload = std::async(std::launch::async, [&] {
    return registry_->reload("reloadable", kReload / "reloadable_v2.so");
  });
  // The reload cannot finish while v1's handler runs.
  EXPECT_EQ(reload.wait_for(100ms), std::future_status::timeout);
  go.signal();
  worker.join();
  ASSERT_TRUE(inside.wait());
  EXPECT_EQ(inside.payload, "1.0.0 2");
  auto reloaded = reload.get();
  ASSERT_TRUE(reloaded) << reloaded.error();
  EXPECT_EQ(call(*registry_, kCount).payload, "2.0.0 3");
}

// A request v1 answers later (as after a storage call): it completes after the swap, from
// v1, and v1 shuts down only once the last reference to it is gone.
TEST_F(ReloadTest, LateReplyFromTheOldVersionArrivesAfterTheSwap) {
  load_v1();
  Pipe release;
  auto v1 = registry_->find("reloadable");
  FakeRequest held;
  const std::string payload = std::to_string(release.read_end());
  v1->handle(&held, kHold, {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
  ASSERT_TRUE(registry_->reload("reloadable", kReload / "reloadable_v2.so"));
  EXPECT_EQ(version(), "2.0.0");
  EXPECT_FALSE(held.answered);
  release.signal();
  ASSERT_TRUE(held.wait());
  EXPECT_EQ(held.payload, "1.0.0");
  // Requests that still reach v1 (a worker with the old table) are passed on to v2.
  FakeRequest late;
  v1->handle(&late, kVersion, {});
  EXPECT_EQ(late.payload, "2.0.0");
  const fs::path copy = v1->private_copy();
  v1.reset();  // shutdown joins v1's waiter thread; dlclose; the copy goes
  EXPECT_FALSE(fs::exists(copy));
}

TEST(PluginHealthTest, DegradedWhenHalfOfAtLeastTwentyRecentRequestsFail) {
  PluginHealth health;
  const auto t0 = PluginHealth::Clock::now();
  for (int i = 0; i < 19; ++i) health.record(PRISM_INTERNAL, t0);
  EXPECT_FALSE(health.degraded(t0)) << "19 requests are too few to judge";
  health.record(PRISM_OK, t0);
  EXPECT_TRUE(health.degraded(t0));
  // A client's mistakes are not the plugin's failures.
  PluginHealth clients;
  for (int i = 0; i < 40; ++i) clients.record(PRISM_INVALID_ARGUMENT, t0);
  EXPECT_FALSE(clients.degraded(t0));
  // Successes dilute failures below half...
  for (int i = 0; i < 21; ++i) health.record(PRISM_OK, t0 + 1s);
  EXPECT_FALSE(health.degraded(t0 + 1s));
  // ...and failures older than the window are forgotten.
  PluginHealth old;
  for (int i = 0; i < 30; ++i) old.record(PRISM_TIMEOUT, t0);
  EXPECT_TRUE(old.degraded(t0 + 9s));
  EXPECT_FALSE(old.degraded(t0 + 10s));
}

TEST_F(ReloadTest, StateReadsDegradedFromRecordedOutcomes) {
  load_v1();
  auto v1 = registry_->find("reloadable");
  EXPECT_STREQ(v1->state(), "serving");
  for (int i = 0; i < 25; ++i) v1->record_outcome(PRISM_INTERNAL, PluginHealth::Clock::now());
  EXPECT_TRUE(v1->degraded());
  EXPECT_STREQ(v1->state(), "degraded");
  EXPECT_EQ(registry_->status("reloadable")->state, "degraded");
}

}  // namespace
}  // namespace prism::plugins
