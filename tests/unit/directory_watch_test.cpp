// The plugins_dir watch (DESIGN.md §5) on a real libuv loop run by the test: files copied
// in, renamed over and deleted become loads, reloads and unloads; partial and wrong files
// are refused while the rest keeps serving. Waits on the watch's outcomes, never sleeps.
#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

#include "plugins/directory_watch.hpp"
#include "plugins/registry.hpp"
#include "temp_dir_test.hpp"

namespace prism::plugins {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Action = WatchOutcome::Action;

const fs::path kTestPlugins = PRISM_TEST_PLUGIN_DIR;
const fs::path kReload = kTestPlugins / "reload";

class DirectoryWatchTest : public prism::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    plugins_ = dir_ / "plugins";
    fs::create_directories(plugins_);
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    registry_ = std::make_unique<Registry>(HostFacts{"test", 0, 1, ""}, dir_ / "private");
    watch_ = std::make_unique<DirectoryWatch>(&loop_, *registry_, plugins_, 50ms);
    watch_->set_listener([this](const WatchOutcome& o) { outcomes_.push_back(o); });
    auto started = watch_->start();
    ASSERT_TRUE(started) << started.error();
  }
  void TearDown() override {
    watch_.reset();  // stop(): closes its handles
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
    registry_.reset();
    TempDirTest::TearDown();
  }

  // Runs the loop until an outcome for `file` arrives or `limit` passes.
  std::optional<WatchOutcome> next_outcome(const std::string& file,
                                           std::chrono::milliseconds limit = 2s) {
    bool expired = false;
    uv_timer_t deadline;
    uv_timer_init(&loop_, &deadline);
    deadline.data = &expired;
    uv_timer_start(&deadline, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; },
                   static_cast<uint64_t>(limit.count()), 0);
    std::optional<WatchOutcome> found;
    while (!found && !expired) {
      uv_run(&loop_, UV_RUN_ONCE);
      for (auto it = outcomes_.begin(); it != outcomes_.end(); ++it) {
        if (it->file == file) {
          found = *it;
          outcomes_.erase(it);
          break;
        }
      }
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
    return found;
  }

  // Writes `variant` next to its final name, then renames it into place (atomic replace).
  void rename_in(const fs::path& from, const std::string& name) {
    const fs::path tmp = plugins_ / ("." + name + ".tmp");
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
    fs::rename(tmp, plugins_ / name);
  }

  std::string serving_version() {
    auto p = registry_->find("reloadable");
    return p ? p->version() : "";
  }

  uv_loop_t loop_{};
  fs::path plugins_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<DirectoryWatch> watch_;
  std::vector<WatchOutcome> outcomes_;
};

TEST_F(DirectoryWatchTest, CopiedInPluginIsLoadedWithinASecond) {
  const auto start = Clock::now();
  fs::copy_file(kReload / "reloadable_v1.so", plugins_ / "reloadable.so");
  auto outcome = next_outcome("reloadable.so", 1s);
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->action, Action::kLoaded) << outcome->message;
  EXPECT_EQ(outcome->plugin, "reloadable");
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_EQ(serving_version(), "1.0.0");
}

TEST_F(DirectoryWatchTest, ReplacedByRenameIsReloadedAndDeletedIsUnloaded) {
  rename_in(kReload / "reloadable_v1.so", "reloadable.so");
  auto loaded = next_outcome("reloadable.so");
  ASSERT_TRUE(loaded);
  ASSERT_EQ(loaded->action, Action::kLoaded) << loaded->message;

  rename_in(kReload / "reloadable_v2.so", "reloadable.so");
  auto reloaded = next_outcome("reloadable.so");
  ASSERT_TRUE(reloaded);
  EXPECT_EQ(reloaded->action, Action::kReloaded) << reloaded->message;
  EXPECT_EQ(serving_version(), "2.0.0");
  EXPECT_EQ(registry_->status("reloadable")->reloads, 1u);

  // Copied over in place (same inode, new size and mtime) is a change too.
  fs::copy_file(kReload / "reloadable_v1.so", plugins_ / "reloadable.so",
                fs::copy_options::overwrite_existing);
  auto again = next_outcome("reloadable.so");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->action, Action::kReloaded) << again->message;
  EXPECT_EQ(serving_version(), "1.0.0");

  fs::remove(plugins_ / "reloadable.so");
  auto unloaded = next_outcome("reloadable.so");
  ASSERT_TRUE(unloaded);
  EXPECT_EQ(unloaded->action, Action::kUnloaded);
  EXPECT_EQ(registry_->find("reloadable"), nullptr);
}

TEST_F(DirectoryWatchTest, PluginsLoadedBeforeTheWatchStartedAreReloadedByTheirFile) {
  watch_.reset();
  fs::copy_file(kReload / "reloadable_v1.so", plugins_ / "reloadable.so");
  EXPECT_TRUE(registry_->load_directory(plugins_).empty());
  watch_ = std::make_unique<DirectoryWatch>(&loop_, *registry_, plugins_, 50ms);
  watch_->set_listener([this](const WatchOutcome& o) { outcomes_.push_back(o); });
  ASSERT_TRUE(watch_->start());
  rename_in(kReload / "reloadable_v2.so", "reloadable.so");
  auto reloaded = next_outcome("reloadable.so");
  ASSERT_TRUE(reloaded);
  EXPECT_EQ(reloaded->action, Action::kReloaded) << reloaded->message;
  EXPECT_EQ(serving_version(), "2.0.0");
}

TEST_F(DirectoryWatchTest, TruncatedAndWrongAbiFilesAreRefusedWhileTheRestServes) {
  rename_in(kReload / "reloadable_v1.so", "reloadable.so");
  ASSERT_EQ(next_outcome("reloadable.so")->action, Action::kLoaded);

  {
    std::ifstream in(kReload / "reloadable_v2.so", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(plugins_ / "partial.so", std::ios::binary).write(bytes.data(), 4096);
  }
  // Retried kMaxAttempts times, 50 ms apart, then refused: never mapped.
  auto partial = next_outcome("partial.so", 3s);
  ASSERT_TRUE(partial);
  EXPECT_EQ(partial->action, Action::kRefused);
  EXPECT_NE(partial->message.find("cannot load shared object"), std::string::npos)
      << partial->message;

  fs::copy_file(kTestPlugins / "wrong_abi.so", plugins_ / "wrong_abi.so");
  auto wrong = next_outcome("wrong_abi.so");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->action, Action::kRefused);
  EXPECT_NE(wrong->message.find("major must match"), std::string::npos) << wrong->message;

  // A refused replacement of a serving plugin leaves it serving, with the reason kept.
  rename_in(kReload / "reloadable_init_fails.so", "reloadable.so");
  auto failed = next_outcome("reloadable.so");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->action, Action::kRefused);
  EXPECT_EQ(failed->plugin, "reloadable");
  EXPECT_EQ(serving_version(), "1.0.0");
  EXPECT_EQ(registry_->status("reloadable")->last_error, failed->message);
  EXPECT_EQ(registry_->table()->routes().size(), 1u);
}

TEST_F(DirectoryWatchTest, FileCompletedWithinTheDebounceIsLoadedOnce) {
  std::ifstream in(kReload / "reloadable_v1.so", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  {
    std::ofstream out(plugins_ / "reloadable.so", std::ios::binary);
    out.write(bytes.data(), 4096);
    out.flush();
    uv_run(&loop_, UV_RUN_NOWAIT);  // the watch sees the half-written file
    out.write(bytes.data() + 4096, static_cast<std::streamsize>(bytes.size() - 4096));
  }
  auto outcome = next_outcome("reloadable.so");
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->action, Action::kLoaded) << outcome->message;
  EXPECT_FALSE(next_outcome("reloadable.so", 300ms)) << "one load, no second action";
}

}  // namespace
}  // namespace prism::plugins
