// Plugin loading and refusal (DESIGN.md §4): every refusal names the plugin, the file
// and the reason, and leaves the plugins already loaded serving.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "plugins/channel_topics.hpp"
#include "plugins/registry.hpp"

namespace prism::plugins {
namespace {

namespace fs = std::filesystem;

const fs::path kPlugins = PRISM_PLUGIN_DIR;
const fs::path kTestPlugins = PRISM_TEST_PLUGIN_DIR;

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = registry.load(kPlugins / "default.so");
    ASSERT_TRUE(loaded) << loaded.error();
  }

  // The default plugin still owns its range after whatever the test did.
  void expect_default_still_routed() {
    const Route* r = registry.table()->find(101);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->plugin->name(), "default");
  }

  Registry registry{HostFacts{"test", 0, 1, ""}};
};

TEST_F(LoaderTest, LoadsPluginAndRoutesItsRange) {
  const Route* r = registry.table()->find(100);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->first, 100u);
  EXPECT_EQ(r->last, 199u);
  EXPECT_EQ(r->plugin->version(), "1.0.0");
  EXPECT_EQ(registry.table()->find(200), nullptr);
  EXPECT_EQ(registry.table()->find(99), nullptr);
  bool has_echo = false;
  for (const auto& m : r->plugin->methods()) has_echo |= (m.name == "echo" && m.packet_id == 101);
  EXPECT_TRUE(has_echo);
}

TEST_F(LoaderTest, CPluginLoads) {
  auto loaded = registry.load(kTestPlugins / "c_plugin.so");
  ASSERT_TRUE(loaded) << loaded.error();
  EXPECT_EQ((*loaded)->name(), "cplug");
  EXPECT_EQ(registry.table()->find(905)->plugin->name(), "cplug");
}

// ABI 1.2 method_size: methods of a later, larger layout are read by their stride.
TEST_F(LoaderTest, MethodsAreReadByTheSizeTheDescriptorGives) {
  auto loaded = registry.load(kTestPlugins / "wide_methods.so");
  ASSERT_TRUE(loaded) << loaded.error();
  const auto& methods = (*loaded)->methods();
  ASSERT_EQ(methods.size(), 2u);
  EXPECT_EQ(methods[0].name, "ping");
  EXPECT_EQ(methods[0].packet_id, 990u);
  EXPECT_EQ(methods[1].name, "pong");
  EXPECT_EQ(methods[1].packet_id, 991u);
}

TEST_F(LoaderTest, AMethodSizeSmallerThanAbi10sIsRefused) {
  auto loaded = registry.load(kTestPlugins / "narrow_methods.so");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().find("method_size 8 is smaller than a method of ABI 1.0 (16)"),
            std::string::npos)
      << loaded.error();
  expect_default_still_routed();
}

// Channel topics (plugin.h, "Channels"): two plugins may not both serve one topic.
TEST_F(LoaderTest, OverlappingChannelTopicsAreRefused) {
  ASSERT_TRUE(registry.load(kTestPlugins / "pusher.so"));  // "push:*"
  auto lobby = registry.load(kTestPlugins / "push_lobby.so");  // "push:lobby"
  ASSERT_FALSE(lobby);
  EXPECT_NE(lobby.error().find("channel topic 'push:lobby' overlaps plugin pusher ('push:*')"),
            std::string::npos)
      << lobby.error();
  ASSERT_NE(registry.table()->find_channel("push:42"), nullptr);
  EXPECT_EQ(registry.table()->find_channel("push:42")->plugin->name(), "pusher");
  EXPECT_EQ(registry.table()->find_channel("pus"), nullptr);
}

TEST_F(LoaderTest, ChannelTopicsWithoutACallbackAreRefused) {
  auto loaded = registry.load(kTestPlugins / "topics_no_callback.so");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().find("declares channel topics but no channel callback"),
            std::string::npos)
      << loaded.error();
}

TEST(ChannelPatterns, MatchAndOverlapAsWritten) {
  EXPECT_TRUE(valid_channel_pattern("room:*"));
  EXPECT_TRUE(valid_channel_pattern("room:lobby"));
  EXPECT_FALSE(valid_channel_pattern("*"));
  EXPECT_FALSE(valid_channel_pattern("ro*m"));
  EXPECT_FALSE(valid_channel_pattern("a b"));
  EXPECT_TRUE(channel_pattern_matches("room:*", "room:"));
  EXPECT_TRUE(channel_pattern_matches("room:*", "room:42"));
  EXPECT_FALSE(channel_pattern_matches("room:*", "rooms"));
  EXPECT_FALSE(channel_pattern_matches("room:lobby", "room:lobby2"));
  EXPECT_TRUE(channel_patterns_overlap("room:*", "room:lobby"));
  EXPECT_TRUE(channel_patterns_overlap("ro*", "room:*"));
  EXPECT_FALSE(channel_patterns_overlap("room:*", "rooms:*"));
  EXPECT_FALSE(channel_patterns_overlap("a", "b"));
}

TEST_F(LoaderTest, WrongAbiMajorIsRefused) {
  auto loaded = registry.load(kTestPlugins / "wrong_abi.so");
  ASSERT_FALSE(loaded);
  // A descriptor of another major is not read past its version: the file names it.
  EXPECT_NE(loaded.error().find("plugin wrong_abi ("), std::string::npos) << loaded.error();
  EXPECT_NE(loaded.error().find("wrong_abi.so"), std::string::npos) << loaded.error();
  EXPECT_NE(loaded.error().find("major must match"), std::string::npos) << loaded.error();
  expect_default_still_routed();
}

TEST_F(LoaderTest, OverlappingRangeIsRefused) {
  auto loaded = registry.load(kTestPlugins / "overlap.so");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().find("plugin overlap"), std::string::npos) << loaded.error();
  EXPECT_NE(loaded.error().find("overlaps plugin default (100-199)"), std::string::npos)
      << loaded.error();
  expect_default_still_routed();
  EXPECT_EQ(registry.table()->routes().size(), 1u);
}

TEST_F(LoaderTest, TheAdminServiceNameIsReserved) {
  auto loaded = registry.load(kTestPlugins / "reserved_name.so");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().find("'admin' is reserved"), std::string::npos) << loaded.error();
  expect_default_still_routed();
}

TEST_F(LoaderTest, MissingEntrySymbolIsRefused) {
  auto loaded = registry.load(kTestPlugins / "no_entry.so");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().find("no_entry.so"), std::string::npos);
  EXPECT_NE(loaded.error().find("no prism_plugin_entry symbol"), std::string::npos)
      << loaded.error();
  expect_default_still_routed();
}

TEST_F(LoaderTest, InitFailureIsRefusedWithThePluginsReason) {
  auto loaded = registry.load(kTestPlugins / "init_fails.so");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().find("plugin initfails"), std::string::npos) << loaded.error();
  EXPECT_NE(loaded.error().find("database unreachable"), std::string::npos) << loaded.error();
  EXPECT_EQ(registry.table()->find(925), nullptr);
  expect_default_still_routed();
}

TEST_F(LoaderTest, DuplicateMethodIdIsRefused) {
  auto loaded = registry.load(kTestPlugins / "dup_method.so");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().find("reuses id 0"), std::string::npos) << loaded.error();
  expect_default_still_routed();
}

TEST_F(LoaderTest, SecondCopyOfALoadedPluginIsRefused) {
  auto loaded = registry.load(kPlugins / "default.so");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().find("already loaded"), std::string::npos) << loaded.error();
}

TEST_F(LoaderTest, TruncatedAndGarbageFilesAreRefused) {
  const fs::path dir = fs::temp_directory_path() / ("prism-loader-" + std::to_string(getpid()));
  fs::create_directories(dir);
  {
    std::ifstream in(kPlugins / "default.so", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir / "truncated.so", std::ios::binary).write(bytes.data(), 4096);
    std::ofstream(dir / "garbage.so") << "this is not an ELF file";
  }
  for (const char* name : {"truncated.so", "garbage.so"}) {
    auto loaded = registry.load(dir / name);
    ASSERT_FALSE(loaded) << name;
    EXPECT_NE(loaded.error().find(name), std::string::npos) << loaded.error();
    EXPECT_NE(loaded.error().find("cannot load shared object"), std::string::npos)
        << loaded.error();
  }
  fs::remove_all(dir);
  expect_default_still_routed();
}

TEST_F(LoaderTest, DirectoryLoadReportsEachRefusalAndLoadsTheRest) {
  Registry fresh{HostFacts{"test", 0, 1, ""}};
  const auto refusals = fresh.load_directory(kTestPlugins);
  // c_plugin, deferred, throws and one versioned copy load; the broken ones do not.
  EXPECT_NE(fresh.table()->find(900), nullptr);
  EXPECT_NE(fresh.table()->find(950), nullptr);
  bool abi = false, init = false, entry = false, dup = false;
  for (const auto& r : refusals) {
    abi |= r.find("wrong_abi.so") != std::string::npos;
    init |= r.find("database unreachable") != std::string::npos;
    entry |= r.find("no_entry.so") != std::string::npos;
    dup |= r.find("already loaded") != std::string::npos;  // versioned_v2 after v1
  }
  EXPECT_TRUE(abi && init && entry && dup) << ::testing::PrintToString(refusals);
}

TEST_F(LoaderTest, UnloadRemovesTheRoute) {
  ASSERT_TRUE(registry.unload("default"));
  EXPECT_EQ(registry.table()->find(101), nullptr);
  EXPECT_FALSE(registry.unload("default"));
}

}  // namespace
}  // namespace prism::plugins
