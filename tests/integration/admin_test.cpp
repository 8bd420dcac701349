// The admin commands end to end (issue 4): prismctl against a real prismd loads, reloads
// and unloads plugins, reads stats, checks the config; plugins dropped into the plugins
// directory are picked up; malformed commands get a clear status.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "prism/client.hpp"
#include "prismd_process.hpp"

namespace prism::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const fs::path kReloadPlugins = fs::path(PRISM_TEST_PLUGIN_DIR) / "reload";
constexpr uint32_t kReloadableFirst = 960;  // reloadable's range: 960-969

// A new routing table reaches each worker through the worker's queue, a moment after the
// admin command or the log line that announced it: calls `packet_id` until it answers
// `want` (each call is a round trip, so this waits without sleeping) or 2 s pass.
v1::Status call_until(client::Client& c, uint32_t packet_id, v1::Status want) {
  v1::Status got = v1::STATUS_INTERNAL;
  for (const auto deadline = Clock::now() + 2s; got != want && Clock::now() < deadline;) {
    auto reply = c.call(packet_id, "");
    if (!reply) return v1::STATUS_INTERNAL;
    got = reply->status;
  }
  return got;
}

// A prismd on its own plugins directory (a copy of the default plugin only).
struct AdminFixture : ::testing::Test {
  AdminFixture() {
    char tmpl[] = "/tmp/prism-admin-plugins-XXXXXX";
    plugins = mkdtemp(tmpl);
    fs::copy_file(fs::path(PRISM_PLUGIN_DIR) / "default.so", plugins / "default.so");
    PrismdOptions options;
    options.plugins_dir = plugins;
    prismd = std::make_unique<PrismdProcess>(options);
  }
  ~AdminFixture() override {
    prismd.reset();
    fs::remove_all(plugins);
  }

  CommandResult prismctl(std::vector<std::string> args) {
    std::vector<std::string> argv{std::string(PRISM_BINARY_DIR) + "/prismctl", "--server",
                                  prismd->endpoint(), "--config", prismd->config_path().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
  }

  client::Client admin_client() {
    client::ConnectOptions options;
    options.server_key = prismd->server_key();
    auto c = client::Client::connect({"127.0.0.1", prismd->port()}, options);
    EXPECT_TRUE(c) << c.error();
    EXPECT_EQ(c->login("admin", prismd->admin_token())->status, v1::STATUS_OK);
    return std::move(*c);
  }

  fs::path plugins;
  std::unique_ptr<PrismdProcess> prismd;
};

TEST_F(AdminFixture, LoadReloadUnloadThroughPrismctl) {
  ASSERT_TRUE(prismd->ready()) << prismd->log();
  auto load = prismctl({"load", (kReloadPlugins / "reloadable_v1.so").string()});
  ASSERT_EQ(load.exit_code, 0) << load.output;
  EXPECT_NE(load.output.find("loaded reloadable 1.0.0"), std::string::npos) << load.output;

  auto c = admin_client();
  ASSERT_EQ(call_until(c, kReloadableFirst, v1::STATUS_OK), v1::STATUS_OK);

  auto reload = prismctl({"reload", "reloadable", (kReloadPlugins / "reloadable_v2.so").string()});
  ASSERT_EQ(reload.exit_code, 0) << reload.output;
  EXPECT_NE(reload.output.find("reloaded reloadable 2.0.0"), std::string::npos) << reload.output;
  // The session stayed connected through the swap.
  auto second = c.call(kReloadableFirst, "");
  ASSERT_TRUE(second) << second.error();
  EXPECT_EQ(second->status, v1::STATUS_OK);

  // A failed reload keeps v2 serving and says why, in the reply and in `plugins`.
  auto failed = prismctl({"reload", "reloadable", (kReloadPlugins / "reloadable_restore_fails.so").string()});
  EXPECT_EQ(failed.exit_code, 2) << failed.output;
  EXPECT_NE(failed.output.find("restore failed"), std::string::npos) << failed.output;
  auto list = prismctl({"plugins"});
  EXPECT_NE(list.output.find("2.0.0"), std::string::npos) << list.output;
  EXPECT_NE(list.output.find("last load or reload failed"), std::string::npos) << list.output;

  auto unload = prismctl({"unload", "reloadable"});
  EXPECT_EQ(unload.exit_code, 0) << unload.output;
  EXPECT_EQ(call_until(c, kReloadableFirst, v1::STATUS_INVALID_PACKET), v1::STATUS_INVALID_PACKET);
  auto again = prismctl({"unload", "reloadable"});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.output.find("NOT_FOUND"), std::string::npos) << again.output;
}

TEST_F(AdminFixture, StatsAndConfigCheck) {
  ASSERT_TRUE(prismd->ready()) << prismd->log();
  auto stats = prismctl({"stats"});
  EXPECT_EQ(stats.exit_code, 0) << stats.output;
  EXPECT_NE(stats.output.find("prism_sessions_opened_total"), std::string::npos) << stats.output;
  auto check = prismctl({"config", "check"});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("configuration is valid"), std::string::npos) << check.output;
  // Break the config on disk: the check names the key. (prismctl itself cannot read the
  // broken file any more, so it is given the key and token directly.)
  std::ofstream(prismd->config_path(), std::ios::app) << "bogus_key: 1\n";
  const auto token = prismd->dir() / "admin.token.copy";
  std::ofstream(token) << prismd->admin_token() << "\n";
  auto broken = run_command({std::string(PRISM_BINARY_DIR) + "/prismctl", "--server",
                             prismd->endpoint(), "--server-key", prismd->server_key_text(),
                             "--token-file", token.string(), "config", "check"});
  EXPECT_EQ(broken.exit_code, 2) << broken.output;
  EXPECT_NE(broken.output.find("bogus_key"), std::string::npos) << broken.output;
  EXPECT_TRUE(admin_client().list_plugins());  // the running server is unaffected
}

// The review: an empty plugins.d/admin.yaml opened the admin service (status, unload,
// load = code execution) to any session. Now prismd refuses to start with one, and
// `config check` names it in a running server's config.
TEST(AdminYaml, APluginsDEntryForAdminIsRefusedAtStartAndByConfigCheck) {
  PrismdOptions options;
  options.plugin_configs["admin"] = "";
  PrismdProcess refused(options);
  EXPECT_FALSE(refused.ready());
  EXPECT_EQ(refused.stop(), 2) << refused.log();
  EXPECT_NE(refused.log().find("'admin' is the built-in admin service"), std::string::npos)
      << refused.log();

  PrismdProcess running;
  ASSERT_TRUE(running.ready()) << running.log();
  std::ofstream(running.dir() / "plugins.d" / "admin.yaml") << "enabled: true\n";
  auto check = run_command({std::string(PRISM_BINARY_DIR) + "/prismctl", "--server",
                            running.endpoint(), "--config", running.config_path().string(),
                            "config", "check"});
  EXPECT_EQ(check.exit_code, 2) << check.output;
  EXPECT_NE(check.output.find("admin.yaml"), std::string::npos) << check.output;
  EXPECT_NE(check.output.find("built-in admin service"), std::string::npos) << check.output;
}

TEST_F(AdminFixture, MalformedCommandsGetAClearStatus) {
  ASSERT_TRUE(prismd->ready()) << prismd->log();
  auto c = admin_client();
  for (uint32_t id : {v1::HOST_LOAD_PLUGIN, v1::HOST_UNLOAD_PLUGIN, v1::HOST_RELOAD_PLUGIN}) {
    auto reply = c.call(id, "\xff\xff\xff not protobuf");
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, v1::STATUS_INVALID_ARGUMENT) << id << ": " << reply->message;
  }
  auto no_path = c.load_plugin("");
  ASSERT_FALSE(no_path);
  EXPECT_NE(no_path.error().find("INVALID_ARGUMENT"), std::string::npos) << no_path.error();
  auto missing = c.load_plugin("/nonexistent/x.so");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("No such file"), std::string::npos) << missing.error();
  EXPECT_TRUE(c.list_plugins());  // still serving
}

// Drop-in: a .so copied into the plugins directory is callable within a second; removing
// it unloads it; a truncated one is refused while the rest keeps serving.
TEST_F(AdminFixture, PluginsDroppedIntoTheDirectoryAreLoadedAndUnloaded) {
  ASSERT_TRUE(prismd->ready()) << prismd->log();
  ASSERT_TRUE(prismd->wait_for_log("event=plugins_dir_watching")) << prismd->log();
  auto c = admin_client();
  const auto start = Clock::now();
  fs::copy_file(kReloadPlugins / "reloadable_v1.so", plugins / "reloadable.so");
  std::optional<client::Reply> reply;
  while (Clock::now() - start < 1s) {
    auto r = c.call(kReloadableFirst, "");
    ASSERT_TRUE(r) << r.error();
    if (r->status == v1::STATUS_OK) {
      reply = *r;
      break;
    }
    ASSERT_TRUE(c.poll(20ms));  // waits on the socket, not a sleep: nothing else arrives
  }
  ASSERT_TRUE(reply.has_value()) << "not callable within 1 s\n" << prismd->log();

  // A truncated .so beside it is refused; the others keep serving.
  {
    std::ifstream in(kReloadPlugins / "reloadable_v2.so", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(plugins / "broken.so", std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  }
  ASSERT_TRUE(prismd->wait_for_log("broken.so")) << prismd->log();
  EXPECT_EQ(c.call(kReloadableFirst, "")->status, v1::STATUS_OK);

  fs::remove(plugins / "reloadable.so");
  ASSERT_TRUE(prismd->wait_for_log("event=plugin_unloading")) << prismd->log();
  EXPECT_EQ(call_until(c, kReloadableFirst, v1::STATUS_INVALID_PACKET), v1::STATUS_INVALID_PACKET);
  EXPECT_EQ(c.call(101, "still")->payload, "still");
}

}  // namespace
}  // namespace prism::testing
