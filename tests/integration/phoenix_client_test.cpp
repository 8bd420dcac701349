// The stock `phoenix` npm client (tests/phoenix, installed by scripts/setup.sh from its
// package-lock.json) against a real prismd's WebSocket gateway: the script checks join,
// ok and error replies, a refused topic, a broadcast, heartbeats and leave, and prints
// "ALL PASSED" (tests/phoenix/phoenix_client_test.mjs).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "prismd_process.hpp"

namespace prism::testing {
namespace {

namespace fs = std::filesystem;

TEST(PhoenixClient, TheStockClientJoinsPushesHearsBroadcastsAndLeaves) {
  const fs::path dir = fs::path(PRISM_SOURCE_DIR) / "tests" / "phoenix";
  ASSERT_TRUE(fs::exists(dir / "node_modules" / "phoenix" / "package.json"))
      << "the phoenix client is not installed: scripts/setup.sh runs npm ci in " << dir;
  PrismdOptions options;
  options.workers = 2;
  options.extra_yaml = "ws:\n  listen: 127.0.0.1:0\n";
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  ASSERT_NE(port, 0) << prismd.log();
  const auto run = run_command({"/usr/bin/env", "node", "--experimental-websocket",
                                (dir / "phoenix_client_test.mjs").string(),
                                "ws://127.0.0.1:" + std::to_string(port) + "/socket"},
                               std::chrono::seconds(30));
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("ALL PASSED"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace prism::testing
