// The rooms demo pages (examples/rooms-web) in headless Chromium against a real prismd
// (and against three nodes of a cluster):
// the instance made over HTTP from the demo's demo.json, the pages served by a static
// server, Chromium driven over the DevTools protocol by tests/web/rooms_web_test.mjs.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "prismd_process.hpp"
#include "support/http_client.hpp"
#include "support/redis_server.hpp"
#include "support/temp_dir.hpp"

namespace prism::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kSourceDir = PRISM_SOURCE_DIR;
const fs::path kDemoDir = kSourceDir / "examples" / "rooms-web";
const fs::path kChromium = "/usr/bin/chromium";

// A helper process (the static server, Chromium) in a process group of its own, its
// stdout and stderr read by a thread; the whole group is killed when this goes.
class BackgroundProcess {
 public:
  explicit BackgroundProcess(const std::vector<std::string>& argv) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      dup2(fds[1], STDOUT_FILENO);
      dup2(fds[1], STDERR_FILENO);
      execv(args[0], args.data());
      _exit(127);
    }
    if (pid_ > 0) setpgid(pid_, pid_);  // also here: no kill may race the child's own call
    close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) {
        std::lock_guard lock(mutex_);
        output_.append(buf, static_cast<size_t>(n));
        changed_.notify_all();
      }
      close(fd);
      std::lock_guard lock(mutex_);
      closed_ = true;
      changed_.notify_all();
    });
  }
  ~BackgroundProcess() {
    if (pid_ > 0) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    // The pipe closes once every process of the group has gone.
    if (reader_.joinable()) reader_.join();
  }
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  // The first match of `pattern` in the output, waiting for it until `limit` (which only
  // ends a broken run) or until the process closes its output; empty when none came.
  std::smatch wait_for(const std::regex& pattern, std::chrono::milliseconds limit = 20s) {
    std::unique_lock lock(mutex_);
    std::smatch match;
    changed_.wait_for(lock, limit, [&] {
      matched_ = output_;
      return std::regex_search(matched_, match, pattern) || closed_;
    });
    return match;
  }
  std::string output() {
    std::lock_guard lock(mutex_);
    return output_;
  }

 private:
  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string output_;
  std::string matched_;  // what the last wait_for's match points into
  bool closed_ = false;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class RoomsWeb : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kDemoDir / "node_modules" / "phoenix" / "package.json"))
        << "the phoenix client is not installed: scripts/setup.sh runs npm ci in " << kDemoDir;
    ASSERT_TRUE(fs::exists(kChromium)) << "Chromium is not installed: scripts/setup.sh installs it";
  }
};

// The demo's instance, made over HTTP on `prismd`.
void create_demo(PrismdProcess& prismd) {
  const HttpReply created = http_request(prismd.http_port(), "POST", "/api/instances",
                                         read_file(kDemoDir / "demo.json"),
                                         "Authorization: Bearer " + prismd.admin_token() + "\r\n");
  ASSERT_EQ(created.status, 200) << created.body;
}

// alice's pages on the WebSocket port `alice`, bob's on `bob`, driven by
// rooms_web_test.mjs in Chromium; the screenshot is kept in the build tree as `shot`.
void run_pages(uint16_t alice, uint16_t bob, const std::string& shot, const std::string& logs) {
  // The repository root: the test page (tests/web) and the demo beside each other.
  BackgroundProcess server({"/usr/bin/python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                            "--directory", kSourceDir.string()});
  const std::smatch served = server.wait_for(std::regex(R"(Serving HTTP on \S+ port (\d+))"));
  ASSERT_FALSE(served.empty()) << server.output();
  const std::string page = "http://127.0.0.1:" + served[1].str() + "/tests/web/rooms_pair.html?server=ws://127.0.0.1:" +
                           std::to_string(alice) + "&server_bob=ws://127.0.0.1:" + std::to_string(bob) +
                           "&instance=demo";

  TempDir dir("prism-rooms-web");
  BackgroundProcess chromium({kChromium.string(), "--headless=new", "--no-sandbox", "--disable-gpu",
                              "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                              "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                              "--user-data-dir=" + (dir.path() / "profile").string(), "about:blank"});
  const std::smatch devtools = chromium.wait_for(std::regex(R"(DevTools listening on (ws://\S+))"));
  ASSERT_FALSE(devtools.empty()) << chromium.output();

  const fs::path screenshot = dir.path() / shot;
  const auto run = run_command({"/usr/bin/env", "node", "--experimental-websocket",
                                (kSourceDir / "tests" / "web" / "rooms_web_test.mjs").string(), devtools[1].str(),
                                page, screenshot.string()},
                               30s);
  EXPECT_EQ(run.exit_code, 0) << run.output << "\nchromium:\n" << chromium.output() << "\nprismd:\n" << logs;
  EXPECT_NE(run.output.find("ALL PASSED"), std::string::npos) << run.output;
  // Kept in the build tree for a look (the temp dir goes), wherever the test runs from:
  // never in the source tree.
  std::error_code ec;
  fs::copy_file(screenshot, fs::path(PRISM_BINARY_DIR) / "tests" / shot, fs::copy_options::overwrite_existing, ec);
}

TEST_F(RoomsWeb, AMessageAndPaintFromOnePageAppearOnTheOther) {
  PrismdOptions options;
  options.workers = 2;
  options.extra_yaml = "ws:\n  listen: 127.0.0.1:0\n";
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  ASSERT_NE(port, 0) << prismd.log();
  create_demo(prismd);
  run_pages(port, port, "rooms_web_test.png", prismd.log());
}

// Across a cluster (docs/rooms.md "In a cluster"): three nodes sharing a redis-server as
// bus and store; the instance made on node A, which serves it; alice's pages on node B,
// bob's on node C. The same checks: presence, chat and paint cross the nodes.
TEST_F(RoomsWeb, BrowsersOnTwoNodesShareARoomAThirdServes) {
  if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed";
  RedisServer redis;
  ASSERT_EQ(redis.start(), "");
  auto node = [&](const std::string& id) {
    PrismdOptions options;
    options.workers = 2;
    const std::string address = "127.0.0.1:" + std::to_string(redis.port());
    options.extra_yaml = "ws:\n  listen: 127.0.0.1:0\ncluster:\n  redis:\n    address: " + address +
                         "\n  node_id: " + id + "\nstore:\n  backend: redis\n  redis:\n    address: " + address + "\n";
    return options;
  };
  PrismdProcess a(node("node-a"));
  ASSERT_TRUE(a.ready()) << a.log();
  create_demo(a);
  PrismdProcess b(node("node-b")), c(node("node-c"));
  ASSERT_TRUE(b.ready() && c.ready()) << b.log() << c.log();
  const uint16_t on_b = b.http_port(), on_c = c.http_port();
  ASSERT_TRUE(on_b != 0 && on_c != 0);
  run_pages(on_b, on_c, "rooms_web_cluster_test.png", a.log() + b.log() + c.log());
}

}  // namespace
}  // namespace prism::testing
