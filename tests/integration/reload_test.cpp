// Hot reload under load, end to end (DESIGN.md §5): a real prismd watching its plugins
// dir, clients driving the reloadable test plugin as fast as they can, and the plugin's
// file replaced by rename 20 times, v1 and v2 in turn. No request may be lost or failed,
// no session dropped; replies switch versions and the call count carries across every
// swap. Prints the request rate and p99 latency in steady state and during the reloads.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "prism/client.hpp"
#include "prismd_process.hpp"

namespace prism::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const fs::path kReload = fs::path(PRISM_TEST_PLUGIN_DIR) / "reload";
constexpr uint32_t kCount = 961;  // reloadable.count: replies "<version> <count>"
constexpr int kReloads = 20;
constexpr unsigned kClients = 4;
constexpr size_t kWindow = 64;  // requests in flight per client

struct Sample {
  Clock::time_point sent;
  std::chrono::nanoseconds latency;
};

// One client session on its own thread, keeping kWindow count requests in flight.
struct Driver {
  std::atomic<bool>* stop = nullptr;
  std::vector<Sample> samples;
  std::set<std::string> versions;
  uint64_t sent = 0, ok = 0, failed = 0, out_of_order = 0;
  uint64_t last_count = 0;
  std::string first_failure;
  bool connected_at_end = false;
  std::string connect_error;

  void run(const PrismdProcess& prismd) {
    client::ConnectOptions options;
    options.server_key = prismd.server_key();
    options.timeout = 10s;
    auto c = client::Client::connect({"127.0.0.1", prismd.port()}, options);
    if (!c) {
      connect_error = c.error();
      return;
    }
    auto on_reply = [this](Clock::time_point sent_at, const client::Reply& r) {
      if (r.status != v1::STATUS_OK) {
        if (failed++ == 0) first_failure = std::string(client::status_name(r.status)) + ": " + r.message;
        return;
      }
      ++ok;
      samples.push_back({sent_at, Clock::now() - sent_at});
      const size_t space = r.payload.find(' ');
      versions.insert(r.payload.substr(0, space));
      uint64_t count = 0;
      std::from_chars(r.payload.data() + space + 1, r.payload.data() + r.payload.size(), count);
      // One session lives on one worker and its replies come in order: a count that does
      // not rise means state was lost or replayed across a swap.
      if (count <= last_count) ++out_of_order;
      last_count = count;
    };
    while (!stop->load(std::memory_order_relaxed) || c->pending() > 0) {
      while (!stop->load(std::memory_order_relaxed) && c->pending() < kWindow) {
        const auto sent_at = Clock::now();
        auto id = c->send_request(kCount, {}, v1::DELIVERY_RELIABLE_ORDERED,
                                  [&on_reply, sent_at](const client::Reply& r) { on_reply(sent_at, r); });
        if (!id) {
          if (failed++ == 0) first_failure = id.error();
          break;
        }
        ++sent;
      }
      if (!c->poll(10ms)) break;
    }
    connected_at_end = c->connected();
  }
};

std::chrono::microseconds p99(std::vector<std::chrono::nanoseconds> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  return std::chrono::duration_cast<std::chrono::microseconds>(v[(v.size() * 99) / 100]);
}

TEST(ReloadUnderLoad, TwentyRenamesAlternatingVersionsLoseNothing) {
  char tmpl[] = "/tmp/prism-reload-XXXXXX";
  const fs::path plugins = mkdtemp(tmpl);
  fs::copy_file(kReload / "reloadable_v1.so", plugins / "reloadable.so");
  PrismdOptions options;
  options.plugins_dir = plugins;
  options.workers = 2;
  options.request_timeout_ms = 5000;
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  if (!prismd.wait_for_log("event=plugins_dir_watching", 2s)) {
    fs::remove_all(plugins);
    GTEST_SKIP() << "prismd does not watch its plugins dir yet (DirectoryWatch not wired)";
  }

  std::atomic<bool> stop{false};
  std::vector<Driver> drivers(kClients);
  std::vector<std::thread> threads;
  for (auto& d : drivers) {
    d.stop = &stop;
    threads.emplace_back([&d, &prismd] { d.run(prismd); });
  }

  const auto start = Clock::now();
  // Steady state first: no reloads for a while.
  std::this_thread::sleep_for(1500ms);  // a measuring period, not synchronisation
  const auto reloads_from = Clock::now();
  int done = 0;
  for (int i = 1; i <= kReloads; ++i) {
    const fs::path tmp = plugins / ".reloadable.so.tmp";
    fs::copy_file(kReload / (i % 2 ? "reloadable_v2.so" : "reloadable_v1.so"), tmp,
                  fs::copy_options::overwrite_existing);
    fs::rename(tmp, plugins / "reloadable.so");
    if (!prismd.wait_for_log("event=plugin_reloaded name=reloadable reloads=" +
                                 std::to_string(i) + " ",
                             5s)) {
      break;
    }
    done = i;
  }
  const auto reloads_to = Clock::now();
  stop = true;
  for (auto& t : threads) t.join();
  const auto end = Clock::now();

  EXPECT_EQ(done, kReloads) << prismd.log();
  EXPECT_EQ(prismd.log().find("event=plugin_reload_failed"), std::string::npos) << prismd.log();

  uint64_t sent = 0, ok = 0, failed = 0, out_of_order = 0;
  std::set<std::string> versions;
  std::vector<std::chrono::nanoseconds> steady, reloading;
  for (auto& d : drivers) {
    ASSERT_TRUE(d.connect_error.empty()) << d.connect_error;
    EXPECT_TRUE(d.connected_at_end) << "a session was dropped";
    EXPECT_EQ(d.failed, 0u) << d.first_failure;
    sent += d.sent;
    ok += d.ok;
    failed += d.failed;
    out_of_order += d.out_of_order;
    versions.insert(d.versions.begin(), d.versions.end());
    for (const auto& s : d.samples) {
      if (s.sent < reloads_from) steady.push_back(s.latency);
      else if (s.sent <= reloads_to) reloading.push_back(s.latency);
    }
  }
  EXPECT_EQ(ok, sent) << "requests lost";
  EXPECT_EQ(failed, 0u);
  EXPECT_EQ(out_of_order, 0u) << "a count went backwards: state not carried";
  EXPECT_EQ(versions, (std::set<std::string>{"1.0.0", "2.0.0"}));

  // Every count request ever answered was counted once, across all 20 versions.
  client::ConnectOptions co;
  co.server_key = prismd.server_key();
  auto c = client::Client::connect({"127.0.0.1", prismd.port()}, co);
  ASSERT_TRUE(c) << c.error();
  auto last = c->call(kCount, {});
  ASSERT_TRUE(last) << last.error();
  const std::string expected_version = kReloads % 2 ? "2.0.0" : "1.0.0";
  EXPECT_EQ(last->payload, expected_version + " " + std::to_string(ok + 1));

  const double seconds = std::chrono::duration<double>(end - start).count();
  std::printf("reload under load: %llu requests in %.2f s = %.0f req/s (target >= 20000), "
              "%d reloads in %.2f s\n",
              static_cast<unsigned long long>(ok), seconds, ok / seconds, done,
              std::chrono::duration<double>(reloads_to - reloads_from).count());
  std::printf("p99 latency: steady %lld us (%zu samples), during reloads %lld us (%zu samples)\n",
              static_cast<long long>(p99(steady).count()), steady.size(),
              static_cast<long long>(p99(reloading).count()), reloading.size());
  fs::remove_all(plugins);
}

}  // namespace
}  // namespace prism::testing
