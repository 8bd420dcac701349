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
#include "support/temp_dir.hpp"

namespace prism::testing {
namespace {

namespace fs = std::filesystem;

const fs::path kScriptDir = fs::path(PRISM_SOURCE_DIR) / "tests" / "phoenix";

// Runs tests/phoenix/`script` with its arguments and more environment (NAME=VALUE).
CommandResult run_script(const std::string& script, const std::vector<std::string>& args,
                         const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv{"/usr/bin/env"};
  argv.insert(argv.end(), env.begin(), env.end());
  for (std::string arg : {"node", "--experimental-websocket"}) argv.push_back(arg);
  argv.push_back((kScriptDir / script).string());
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, std::chrono::seconds(30));
}

// Two workers and ws.listen on a free port, with more ws: keys (each "  key: value\n").
PrismdOptions with_websocket(const std::string& more = {}) {
  PrismdOptions options;
  options.workers = 2;
  options.extra_yaml = "ws:\n  listen: 127.0.0.1:0\n" + more;
  return options;
}

// The script passed: it printed ALL PASSED and exited 0.
void expect_passed(const CommandResult& run, const PrismdProcess& prismd) {
  EXPECT_EQ(run.exit_code, 0) << run.output << prismd.log();
  EXPECT_NE(run.output.find("ALL PASSED"), std::string::npos) << run.output;
}

class PhoenixClient : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kScriptDir / "node_modules" / "phoenix" / "package.json"))
        << "the phoenix client is not installed: scripts/setup.sh runs npm ci in " << kScriptDir;
  }
};

TEST_F(PhoenixClient, TheStockClientJoinsPushesHearsBroadcastsAndLeaves) {
  PrismdProcess prismd(with_websocket("  idle_timeout_ms: 1000\n"));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  ASSERT_NE(port, 0) << prismd.log();
  expect_passed(run_script("phoenix_client_test.mjs", {"ws://127.0.0.1:" + std::to_string(port) + "/socket"}),
                prismd);
}

// The rooms service with the stock client's Socket and Presence (rooms_test.mjs).
TEST_F(PhoenixClient, TheStockClientAndPresenceUseRooms) {
  PrismdProcess prismd(with_websocket());
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  ASSERT_NE(port, 0) << prismd.log();
  expect_passed(run_script("rooms_test.mjs", {"http://127.0.0.1:" + std::to_string(port), prismd.admin_token()}),
                prismd);
}

// ws.tls.cert/key: the same script over wss://, trusting a certificate made for the test.
TEST_F(PhoenixClient, TheStockClientDoesItAllOverTls) {
  TempDir dir("prism-tls-test");
  const std::string cert = (dir.path() / "cert.pem").string();
  const std::string key = (dir.path() / "key.pem").string();
  const auto made = run_command({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                 "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                                 "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                                 "-keyout", key, "-out", cert},
                                std::chrono::seconds(30));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  PrismdProcess prismd(
      with_websocket("  idle_timeout_ms: 1000\n  tls:\n    cert: " + cert + "\n    key: " + key + "\n"));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  ASSERT_NE(port, 0) << prismd.log();
  EXPECT_NE(prismd.log().find("tls=on"), std::string::npos) << prismd.log();
  expect_passed(run_script("phoenix_client_test.mjs", {"wss://127.0.0.1:" + std::to_string(port) + "/socket"},
                           {"NODE_EXTRA_CA_CERTS=" + cert}),
                prismd);
  // The TLS context is freed at a clean stop too (a leak fails this in the ASan tree).
  EXPECT_EQ(prismd.stop(SIGTERM), 0) << prismd.log();
}

}  // namespace
}  // namespace prism::testing
