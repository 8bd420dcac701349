// The stock `phoenix` npm client (tests/phoenix, installed by scripts/setup.sh from its
// package-lock.json) against a real prismd's WebSocket gateway: the script checks join,
// ok and error replies, a refused topic, a broadcast, heartbeats and leave, and prints
// "ALL PASSED" (tests/phoenix/phoenix_client_test.mjs).
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "prismd_process.hpp"

namespace prism::testing {
namespace {

namespace fs = std::filesystem;

const fs::path kScriptDir = fs::path(PRISM_SOURCE_DIR) / "tests" / "phoenix";

// Runs the script against `url` with more environment (NAME=VALUE); its output.
CommandResult run_script(const std::string& url, std::vector<std::string> env = {}) {
  std::vector<std::string> argv{"/usr/bin/env"};
  argv.insert(argv.end(), env.begin(), env.end());
  for (std::string arg : {"node", "--experimental-websocket"}) argv.push_back(arg);
  argv.push_back((kScriptDir / "phoenix_client_test.mjs").string());
  argv.push_back(url);
  return run_command(argv, std::chrono::seconds(30));
}

class PhoenixClient : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kScriptDir / "node_modules" / "phoenix" / "package.json"))
        << "the phoenix client is not installed: scripts/setup.sh runs npm ci in " << kScriptDir;
  }
};

TEST_F(PhoenixClient, TheStockClientJoinsPushesHearsBroadcastsAndLeaves) {
  PrismdOptions options;
  options.workers = 2;
  options.extra_yaml = "ws:\n  listen: 127.0.0.1:0\n  idle_timeout_ms: 1000\n";
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  ASSERT_NE(port, 0) << prismd.log();
  const auto run = run_script("ws://127.0.0.1:" + std::to_string(port) + "/socket");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("ALL PASSED"), std::string::npos) << run.output;
}

// The rooms service with the stock client's Socket and Presence (rooms_test.mjs).
TEST_F(PhoenixClient, TheStockClientAndPresenceUseRooms) {
  PrismdOptions options;
  options.workers = 2;
  options.extra_yaml = "ws:\n  listen: 127.0.0.1:0\n";
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  ASSERT_NE(port, 0) << prismd.log();
  const auto run = run_command({"/usr/bin/env", "node", "--experimental-websocket",
                                (kScriptDir / "rooms_test.mjs").string(),
                                "http://127.0.0.1:" + std::to_string(port), prismd.admin_token()},
                               std::chrono::seconds(30));
  EXPECT_EQ(run.exit_code, 0) << run.output << prismd.log();
  EXPECT_NE(run.output.find("ALL PASSED"), std::string::npos) << run.output;
}

// A directory of the test's own, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/prism-tls-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// ws.tls.cert/key: the same script over wss://, trusting a certificate made for the test.
TEST_F(PhoenixClient, TheStockClientDoesItAllOverTls) {
  TempDir dir;
  const std::string cert = (dir.path() / "cert.pem").string();
  const std::string key = (dir.path() / "key.pem").string();
  const auto made = run_command({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                 "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                                 "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                                 "-keyout", key, "-out", cert},
                                std::chrono::seconds(30));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  PrismdOptions options;
  options.workers = 2;
  options.extra_yaml =
      "ws:\n  listen: 127.0.0.1:0\n  idle_timeout_ms: 1000\n  tls:\n    cert: " + cert + "\n    key: " + key + "\n";
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  ASSERT_NE(port, 0) << prismd.log();
  EXPECT_NE(prismd.log().find("tls=on"), std::string::npos) << prismd.log();
  const auto run = run_script("wss://127.0.0.1:" + std::to_string(port) + "/socket",
                              {"NODE_EXTRA_CA_CERTS=" + cert});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("ALL PASSED"), std::string::npos) << run.output;
  // The TLS context is freed at a clean stop too (a leak fails this in the ASan tree).
  EXPECT_EQ(prismd.stop(SIGTERM), 0) << prismd.log();
}

}  // namespace
}  // namespace prism::testing
