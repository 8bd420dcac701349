// Unit tests for service login: token hashes (host/base/token_hash), plugins.d/*.yaml
// loading with the file:line:column + key in each error (host/plugins/plugin_settings), and
// LOGIN verdicts with lockout and a bounded address table (host/plugins/login_guard).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/token_hash.hpp"
#include "plugins/login_guard.hpp"
#include "plugins/plugin_settings.hpp"
#include "temp_dir_test.hpp"

namespace prism {
namespace {

namespace fs = std::filesystem;
using prism::hash_token;
using prism::token_digest;
using prism::parse_token_hash;
using prism::TokenHash;
using prism::token_matches;
using plugins::LoginGuard;
using plugins::LoginLimits;
using plugins::LoginVerdict;
using plugins::PluginSettings;
using namespace std::chrono_literals;

// FIPS 180-2 appendix B.1: SHA-256("abc").
constexpr std::string_view kAbcHash =
    "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// ---- token_hash ----

TEST(TokenHash, HashTokenGivesTheSha256TestVector) { EXPECT_EQ(hash_token("abc"), kAbcHash); }

TEST(TokenHash, HashOfEmptyTokenIsTheEmptySha256) {
  EXPECT_EQ(hash_token(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(TokenHash, ParseAcceptsLowerAndUpperHex) {
  auto lower = parse_token_hash(kAbcHash);
  ASSERT_TRUE(lower.ok()) << lower.error();
  EXPECT_EQ(lower->digest[0], 0xba);
  EXPECT_EQ(lower->digest[31], 0xad);

  std::string upper = "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
  auto parsed = parse_token_hash(upper);
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed->digest, lower->digest);
}

TEST(TokenHash, ParseRejectsMissingPrefix) {
  auto parsed = parse_token_hash(kAbcHash.substr(7));
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(contains(parsed.error(), "expected sha256:<64 hex digits>"));
}

TEST(TokenHash, ParseRejectsOtherAlgorithmNames) {
  EXPECT_FALSE(parse_token_hash("SHA256:" + std::string(64, 'a')).ok());
  EXPECT_FALSE(parse_token_hash("sha512:" + std::string(64, 'a')).ok());
}

TEST(TokenHash, ParseRejectsWrongLength) {
  for (size_t digits : {0u, 63u, 65u, 128u}) {
    auto parsed = parse_token_hash("sha256:" + std::string(digits, 'a'));
    ASSERT_FALSE(parsed.ok()) << digits;
    EXPECT_TRUE(contains(parsed.error(), "expected sha256:<64 hex digits>"));
    EXPECT_TRUE(contains(parsed.error(), std::to_string(digits) + " characters"));
  }
}

TEST(TokenHash, ParseRejectsNonHexDigits) {
  std::string text(kAbcHash);
  text[7 + 10] = 'g';
  auto parsed = parse_token_hash(text);
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(contains(parsed.error(), "non-hex character at digit 11"));
  EXPECT_FALSE(parse_token_hash("sha256: " + std::string(63, 'a')).ok());
  EXPECT_FALSE(parse_token_hash(std::string(kAbcHash) + "\n").ok());
}

TEST(TokenHash, DigestIsWhatItsTextFormParsesTo) {
  auto parsed = parse_token_hash(kAbcHash);
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(token_digest("abc").digest, parsed->digest);
}

TEST(TokenHash, MatchesOnlyTheSameToken) {
  const TokenHash stored = token_digest("correct horse");
  EXPECT_TRUE(token_matches(stored, "correct horse"));
  EXPECT_FALSE(token_matches(stored, "correct hors"));
  EXPECT_FALSE(token_matches(stored, "correct horsf"));
  EXPECT_FALSE(token_matches(stored, ""));
  EXPECT_FALSE(token_matches(stored, hash_token("correct horse")));  // the hash is not the token
}

// ---- plugin settings ----

// A private directory under the system temp dir, removed after each test.
class PluginSettingsTest : public testing::TempDirTest {
 protected:
  // The error load_plugin_settings_file gives for `yaml` in chat.yaml.
  std::string error_of(std::string_view yaml) {
    const fs::path path = write("chat.yaml", yaml);
    auto loaded = plugins::load_plugin_settings_file(path);
    EXPECT_FALSE(loaded.ok()) << "accepted:\n" << yaml;
    return loaded.ok() ? std::string() : loaded.error();
  }

  std::string at(int line, int column) const {
    return (dir_ / "chat.yaml").string() + ":" + std::to_string(line) + ":" +
           std::to_string(column) + ": ";
  }

};

TEST_F(PluginSettingsTest, EmptyFileGivesDefaults) {
  auto loaded = plugins::load_plugin_settings_file(write("chat.yaml", "# nothing yet\n"));
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(loaded->name, "chat");
  EXPECT_EQ(loaded->source, (dir_ / "chat.yaml").string());
  EXPECT_TRUE(loaded->enabled);
  EXPECT_FALSE(loaded->token.has_value());
  EXPECT_FALSE(loaded->range.has_value());
  EXPECT_TRUE(loaded->settings.IsNull());
}

TEST_F(PluginSettingsTest, ReadsEveryKey) {
  const std::string yaml = "enabled: false\n"
                           "token_hash: " + std::string(kAbcHash) + "\n"
                           "range: 100..199\n"
                           "settings:\n"
                           "  rooms: 12\n"
                           "  greeting: hello\n";
  auto loaded = plugins::load_plugin_settings_file(write("chat-v2_x.yaml", yaml));
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(loaded->name, "chat-v2_x");
  EXPECT_FALSE(loaded->enabled);
  ASSERT_TRUE(loaded->token.has_value());
  EXPECT_TRUE(token_matches(*loaded->token, "abc"));
  ASSERT_TRUE(loaded->range.has_value());
  EXPECT_EQ(loaded->range->first, 100u);
  EXPECT_EQ(loaded->range->second, 199u);
  ASSERT_TRUE(loaded->settings.IsMap());
  EXPECT_EQ(loaded->settings["rooms"].as<int>(), 12);
  EXPECT_EQ(loaded->settings["greeting"].as<std::string>(), "hello");
}

TEST_F(PluginSettingsTest, RangeMayBeQuotedAndSingleId) {
  auto loaded = plugins::load_plugin_settings_file(write("chat.yaml", "range: \"65535..65535\"\n"));
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(*loaded->range, std::make_pair(65535u, 65535u));
}

TEST_F(PluginSettingsTest, EmptySettingsSectionIsNull) {
  auto loaded = plugins::load_plugin_settings_file(write("chat.yaml", "settings:\n  # later\n"));
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_TRUE(loaded->settings.IsNull());
}

TEST_F(PluginSettingsTest, UnknownKeyIsNamedWithItsLine) {
  const std::string error = error_of("enabled: true\ntoken: abc\n");
  EXPECT_TRUE(contains(error, at(2, 1) + "token: unknown key"));
  EXPECT_TRUE(contains(error, "known keys: enabled token_hash range settings"));
}

TEST_F(PluginSettingsTest, DuplicateKeyIsRefused) {
  EXPECT_TRUE(contains(error_of("enabled: true\nenabled: false\n"), at(2, 1) + "enabled: duplicate key"));
}

TEST_F(PluginSettingsTest, EnabledMustBeABool) {
  EXPECT_TRUE(contains(error_of("\nenabled: maybe\n"), at(2, 10) + "enabled: expected true or false"));
  EXPECT_TRUE(contains(error_of("enabled: \"true\"\n"), at(1, 10) + "enabled: expected true or false, got the string"));
  EXPECT_TRUE(contains(error_of("enabled: [true]\n"), at(1, 10) + "enabled: expected true or false, got a list"));
  EXPECT_TRUE(contains(error_of("enabled:\n"), at(1, 1) + "enabled: expected true or false, got nothing"));
}

TEST_F(PluginSettingsTest, TokenHashMustBeSha256Hex) {
  EXPECT_TRUE(contains(error_of("enabled: true\ntoken_hash: hunter2\n"),
                       at(2, 13) + "token_hash: expected sha256:<64 hex digits>"));
  EXPECT_TRUE(contains(error_of("token_hash: {a: 1}\n"),
                       at(1, 13) + "token_hash: expected sha256:<64 hex digits>, got a map"));
}

TEST_F(PluginSettingsTest, RangeMustBeFirstDotDotLast) {
  for (std::string_view bad : {"100", "100-200", "a..200", "100..", "..200", "-1..200", "100..200.5",
                               " 100..200x"}) {
    const std::string error = error_of("range: \"" + std::string(bad) + "\"\n");
    EXPECT_TRUE(contains(error, at(1, 8) + "range: expected \"FIRST..LAST\"")) << bad;
  }
  EXPECT_TRUE(contains(error_of("range: [100, 200]\n"), at(1, 8) + "range: expected \"FIRST..LAST\""));
}

TEST_F(PluginSettingsTest, RangeBelowOneHundredBelongsToTheHost) {
  const std::string error = error_of("enabled: true\n\nrange: 99..200\n");
  EXPECT_TRUE(contains(error, at(3, 8) + "range: "));
  EXPECT_TRUE(contains(error, "ids below 100 belong to the host"));
}

TEST_F(PluginSettingsTest, RangeMustBeOrderedAndWithinSixteenBits) {
  EXPECT_TRUE(contains(error_of("range: 300..200\n"), at(1, 8) + "range: ") );
  EXPECT_TRUE(contains(error_of("range: 300..200\n"), "FIRST 300 above LAST 200"));
  EXPECT_TRUE(contains(error_of("range: 100..65536\n"), "got LAST 65536"));
  EXPECT_TRUE(contains(error_of("range: 100..99999999999\n"), at(1, 8) + "range: expected"));
}

TEST_F(PluginSettingsTest, SettingsMustBeAMap) {
  EXPECT_TRUE(contains(error_of("settings: [1, 2]\n"), at(1, 11) + "settings: expected a map, got a list"));
  EXPECT_TRUE(contains(error_of("settings: on\n"), at(1, 11) + "settings: expected a map"));
}

TEST_F(PluginSettingsTest, TopLevelMustBeAMap) {
  EXPECT_TRUE(contains(error_of("- enabled\n"), at(1, 1) + "expected a map of settings at the top level"));
}

TEST_F(PluginSettingsTest, SyntaxErrorsCarryTheirPosition) {
  const std::string error = error_of("enabled: true\nrange: [100\n");
  EXPECT_TRUE(contains(error, (dir_ / "chat.yaml").string() + ":")) << error;
}

TEST_F(PluginSettingsTest, BadFileNameIsNamed) {
  const std::vector<std::string> names{"Chat.yaml", "chat room.yaml", "chat.v2.yaml",
                                       std::string(65, 'a') + ".yaml"};
  for (const std::string& name : names) {
    const fs::path path = write(name, "");
    auto loaded = plugins::load_plugin_settings_file(path);
    ASSERT_FALSE(loaded.ok()) << name;
    EXPECT_TRUE(contains(loaded.error(), path.string() + ": the file name must be")) << name;
  }
  EXPECT_TRUE(plugins::load_plugin_settings_file(write(std::string(64, 'a') + ".yaml", "")).ok());
}

// The review: an empty plugins.d/admin.yaml opened the admin service to anyone.
TEST_F(PluginSettingsTest, AdminEntryIsRefusedWithTheReason) {
  const fs::path path = write("admin.yaml", "");
  auto loaded = plugins::load_plugin_settings_file(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_TRUE(contains(loaded.error(), path.string() + ": 'admin' is the built-in admin service"))
      << loaded.error();
  auto all = plugins::load_plugin_settings_dir(dir_);
  ASSERT_FALSE(all.ok());
  EXPECT_TRUE(contains(all.error(), "admin.token_file")) << all.error();
}

TEST_F(PluginSettingsTest, MissingFileIsAnError) {
  auto loaded = plugins::load_plugin_settings_file(dir_ / "absent.yaml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_TRUE(contains(loaded.error(), (dir_ / "absent.yaml").string() + ": cannot read"));
}

TEST_F(PluginSettingsTest, MissingDirectoryGivesNoPlugins) {
  auto loaded = plugins::load_plugin_settings_dir(dir_ / "plugins.d");
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_TRUE(loaded->empty());
}

TEST_F(PluginSettingsTest, DirectoryIsReadSortedAndOnlyYaml) {
  write("zeta.yaml", "range: 300..399\n");
  write("alpha.yaml", "enabled: false\n");
  write("mid.yaml", "");
  write("README.md", "not: [yaml\n");
  write("beta.yml", "garbage: 1\n");
  write("gamma.yaml.bak", "garbage: 1\n");
  fs::create_directory(dir_ / "sub.yaml");
  auto loaded = plugins::load_plugin_settings_dir(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  ASSERT_EQ(loaded->size(), 3u);
  EXPECT_EQ((*loaded)[0].name, "alpha");
  EXPECT_FALSE((*loaded)[0].enabled);
  EXPECT_EQ((*loaded)[1].name, "mid");
  EXPECT_EQ((*loaded)[2].name, "zeta");
  EXPECT_EQ((*loaded)[2].range->first, 300u);
}

TEST_F(PluginSettingsTest, DirectoryStopsAtTheFirstBadFile) {
  write("alpha.yaml", "");
  write("beta.yaml", "enabled: sometimes\n");
  write("gamma.yaml", "nope: 1\n");
  auto loaded = plugins::load_plugin_settings_dir(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_TRUE(contains(loaded.error(), (dir_ / "beta.yaml").string() + ":1:10: enabled:"));
}

TEST_F(PluginSettingsTest, DirectoryRefusesABadFileName) {
  write("Bad Name.yaml", "");
  auto loaded = plugins::load_plugin_settings_dir(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_TRUE(contains(loaded.error(), "Bad Name.yaml: the file name must be"));
}

TEST_F(PluginSettingsTest, DirectoryThatIsAFileIsAnError) {
  const fs::path file = write("plugins.d", "");
  auto loaded = plugins::load_plugin_settings_dir(file);
  ASSERT_FALSE(loaded.ok());
  EXPECT_TRUE(contains(loaded.error(), file.string() + ": cannot list"));
}

// ---- LoginGuard ----

PluginSettings plugin(std::string name, std::optional<std::string_view> token) {
  PluginSettings settings;
  settings.name = std::move(name);
  if (token) settings.token = token_digest(*token);
  return settings;
}

class LoginGuardTest : public ::testing::Test {
 protected:
  LoginGuard guard(LoginLimits limits = {}) const {
    return LoginGuard({plugin("chat", "s3cret"), plugin("lobby", std::nullopt)},
                      token_digest(kAdminToken), limits);
  }
  static constexpr std::string_view kAdminToken = "the-admin-token-0123456789";
  // Fails `times` logins to chat from `address`, one millisecond apart starting at `t`.
  static void fail(LoginGuard& g, std::string_view address, int times,
                   LoginGuard::Clock::time_point& t) {
    for (int i = 0; i < times; ++i) {
      EXPECT_EQ(g.check("chat", "wrong", address, t), LoginVerdict::kBadToken) << i;
      t += 1ms;
    }
  }

  LoginGuard::Clock::time_point t0_ = LoginGuard::Clock::time_point{} + 1000h;
};

TEST_F(LoginGuardTest, RightTokenIsOk) {
  LoginGuard g = guard();
  EXPECT_EQ(g.check("chat", "s3cret", "10.0.0.1", t0_), LoginVerdict::kOk);
  EXPECT_EQ(g.tracked_addresses(), 0u);
}

TEST_F(LoginGuardTest, OpenServiceTakesAnyToken) {
  LoginGuard g = guard();
  EXPECT_EQ(g.check("lobby", "", "10.0.0.1", t0_), LoginVerdict::kOk);
  EXPECT_EQ(g.check("lobby", "whatever", "10.0.0.1", t0_), LoginVerdict::kOk);
}

TEST_F(LoginGuardTest, RequiresLoginOnlyWhereATokenIsSet) {
  LoginGuard g = guard();
  EXPECT_TRUE(g.requires_login("chat"));
  EXPECT_FALSE(g.requires_login("lobby"));
  EXPECT_FALSE(g.requires_login("nowhere"));
}

TEST_F(LoginGuardTest, UnknownServiceCountsAsAFailure) {
  LoginGuard g = guard();
  EXPECT_EQ(g.check("nowhere", "s3cret", "10.0.0.1", t0_), LoginVerdict::kUnknownService);
  EXPECT_EQ(g.tracked_addresses(), 1u);
}

TEST_F(LoginGuardTest, WrongTokenIsBadToken) {
  LoginGuard g = guard();
  EXPECT_EQ(g.check("chat", "s3cre", "10.0.0.1", t0_), LoginVerdict::kBadToken);
  EXPECT_EQ(g.check("chat", "", "10.0.0.1", t0_), LoginVerdict::kBadToken);
  EXPECT_EQ(g.tracked_addresses(), 1u);
}

TEST_F(LoginGuardTest, LockoutRefusesWrongGuessesButNeverTheRightToken) {
  LoginGuard g = guard({.max_failures = 3});
  auto t = t0_;
  fail(g, "10.0.0.1", 3, t);
  EXPECT_EQ(g.check("chat", "wrong", "10.0.0.1", t), LoginVerdict::kRateLimited);
  EXPECT_EQ(g.check("nowhere", "", "10.0.0.1", t), LoginVerdict::kRateLimited);
  // The review: five bad logins from an address locked out the correct token for 30 s,
  // so anyone sharing an address could shut its owner out.
  EXPECT_EQ(g.check("chat", "s3cret", "10.0.0.1", t), LoginVerdict::kOk);
  EXPECT_EQ(g.check("lobby", "", "10.0.0.1", t), LoginVerdict::kOk);
  // Another address is not affected.
  EXPECT_EQ(g.check("chat", "wrong", "10.0.0.2", t), LoginVerdict::kBadToken);
}

TEST_F(LoginGuardTest, ServiceFailuresNeverLockTheAdminOut) {
  LoginGuard g = guard({.max_failures = 2});
  auto t = t0_;
  fail(g, "10.0.0.1", 2, t);
  EXPECT_EQ(g.check("chat", "wrong", "10.0.0.1", t), LoginVerdict::kRateLimited);
  EXPECT_EQ(g.check("admin", kAdminToken, "10.0.0.1", t), LoginVerdict::kOk);
  EXPECT_EQ(g.check("admin", "guess", "10.0.0.1", t), LoginVerdict::kBadToken);
  EXPECT_EQ(g.check("admin", "guess", "10.0.0.1", t), LoginVerdict::kBadToken);
  EXPECT_EQ(g.check("admin", "guess", "10.0.0.1", t), LoginVerdict::kRateLimited);
  EXPECT_EQ(g.check("admin", kAdminToken, "10.0.0.1", t), LoginVerdict::kOk);
}

// The review: with an empty plugins.d/admin.yaml, LOGIN admin took any token.
TEST_F(LoginGuardTest, OnlyTheAdminTokenOpensTheAdminService) {
  LoginGuard g({plugin("admin", std::nullopt), plugin("chat", "s3cret")},
               token_digest(kAdminToken));
  EXPECT_TRUE(g.requires_login("admin"));
  EXPECT_EQ(g.check("admin", "anything", "10.0.0.1", t0_), LoginVerdict::kBadToken);
  EXPECT_EQ(g.check("admin", "", "10.0.0.1", t0_, true), LoginVerdict::kBadToken);
  EXPECT_EQ(g.check("admin", kAdminToken, "10.0.0.1", t0_), LoginVerdict::kOk);
  LoginGuard without({plugin("admin", std::nullopt)}, std::nullopt);
  EXPECT_TRUE(without.requires_login("admin"));
  EXPECT_EQ(without.check("admin", kAdminToken, "10.0.0.1", t0_), LoginVerdict::kBadToken);
}

// The review: a successful login to a plugin without a plugins.d file counted as a failure.
TEST_F(LoginGuardTest, LoadedPluginWithoutSettingsIsOpenAndNoFailure) {
  LoginGuard g = guard({.max_failures = 1});
  EXPECT_EQ(g.check("inventory", "any", "10.0.0.1", t0_, true), LoginVerdict::kOk);
  EXPECT_EQ(g.check("inventory", "any", "10.0.0.1", t0_, true), LoginVerdict::kOk);
  EXPECT_EQ(g.tracked_addresses(), 0u);
  EXPECT_EQ(g.check("chat", "wrong", "10.0.0.1", t0_), LoginVerdict::kBadToken);
}

TEST_F(LoginGuardTest, MixedUnknownServiceAndBadTokenFailuresLockOut) {
  LoginGuard g = guard({.max_failures = 2});
  EXPECT_EQ(g.check("nowhere", "", "10.0.0.1", t0_), LoginVerdict::kUnknownService);
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", t0_), LoginVerdict::kBadToken);
  EXPECT_EQ(g.check("chat", "y", "10.0.0.1", t0_), LoginVerdict::kRateLimited);
}

TEST_F(LoginGuardTest, SuccessDoesNotResetFailures) {
  LoginGuard g = guard({.max_failures = 3});
  auto t = t0_;
  fail(g, "10.0.0.1", 2, t);
  EXPECT_EQ(g.check("chat", "s3cret", "10.0.0.1", t), LoginVerdict::kOk);
  fail(g, "10.0.0.1", 1, t);
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", t), LoginVerdict::kRateLimited);
}

TEST_F(LoginGuardTest, LockoutEndsAfterItsDuration) {
  LoginGuard g = guard({.max_failures = 2, .window = 10s, .lockout = 30s});
  auto t = t0_;
  fail(g, "10.0.0.1", 2, t);
  const auto locked_at = t - 1ms;
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", locked_at + 30s - 1ms), LoginVerdict::kRateLimited);
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", locked_at + 30s), LoginVerdict::kBadToken);
  // A fresh start: that one failure did not lock it again; a second in the window does.
  EXPECT_EQ(g.check("chat", "s3cret", "10.0.0.1", locked_at + 31s), LoginVerdict::kOk);
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", locked_at + 31s), LoginVerdict::kBadToken);
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", locked_at + 31s), LoginVerdict::kRateLimited);
}

TEST_F(LoginGuardTest, RateLimitedAttemptsDoNotExtendTheLockout) {
  LoginGuard g = guard({.max_failures = 1, .lockout = 5s});
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", t0_), LoginVerdict::kBadToken);
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", t0_ + 4s), LoginVerdict::kRateLimited);
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", t0_ + 5s), LoginVerdict::kBadToken);
}

TEST_F(LoginGuardTest, FailuresOutsideTheWindowDoNotCount) {
  LoginGuard g = guard({.max_failures = 3, .window = 10s});
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", t0_), LoginVerdict::kBadToken);
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", t0_ + 5s), LoginVerdict::kBadToken);
  // The first failure has aged out by now: two in the window, not three.
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", t0_ + 10s), LoginVerdict::kBadToken);
  // The third within ten seconds of the second locks it.
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", t0_ + 14s), LoginVerdict::kBadToken);
  EXPECT_EQ(g.check("chat", "x", "10.0.0.1", t0_ + 14s), LoginVerdict::kRateLimited);
}

TEST_F(LoginGuardTest, TableNeverGrowsPastItsBound) {
  LoginGuard g = guard({.max_failures = 5, .max_tracked_addresses = 8});
  auto t = t0_;
  for (int i = 0; i < 100; ++i) fail(g, "10.0.1." + std::to_string(i), 1, t);
  EXPECT_EQ(g.tracked_addresses(), 8u);
}

TEST_F(LoginGuardTest, FullTableEvictsTheOldestFailingAddress) {
  LoginGuard g = guard({.max_failures = 2, .max_tracked_addresses = 2});
  auto t = t0_;
  fail(g, "a", 1, t);
  fail(g, "b", 1, t);
  fail(g, "c", 1, t);  // evicts a
  EXPECT_EQ(g.tracked_addresses(), 2u);
  fail(g, "a", 1, t);  // a starts again from one failure (evicts b)
  EXPECT_EQ(g.check("chat", "s3cret", "a", t), LoginVerdict::kOk);
  fail(g, "c", 1, t);  // c kept its first failure: now locked
  EXPECT_EQ(g.check("chat", "x", "c", t), LoginVerdict::kRateLimited);
}

TEST_F(LoginGuardTest, FullTableSweepsExpiredEntriesFirst) {
  LoginGuard g = guard({.max_failures = 2, .window = 10s, .lockout = 60s, .max_tracked_addresses = 2});
  auto t = t0_;
  fail(g, "locked", 2, t);  // locked until t0 + 60s
  fail(g, "old", 1, t);     // expires at about t0 + 10s
  t = t0_ + 20s;
  fail(g, "new", 1, t);  // sweeps "old"; the lockout stays
  EXPECT_EQ(g.tracked_addresses(), 2u);
  EXPECT_EQ(g.check("chat", "x", "locked", t), LoginVerdict::kRateLimited);
}

TEST_F(LoginGuardTest, FullTableKeepsLockoutsOverFailingAddresses) {
  LoginGuard g = guard({.max_failures = 2, .window = 10s, .lockout = 60s, .max_tracked_addresses = 3});
  auto t = t0_;
  fail(g, "locked", 2, t);
  for (int i = 0; i < 50; ++i) fail(g, "flood" + std::to_string(i), 1, t);
  EXPECT_EQ(g.tracked_addresses(), 3u);
  EXPECT_EQ(g.check("chat", "x", "locked", t), LoginVerdict::kRateLimited);
}

TEST_F(LoginGuardTest, FullTableOfLockoutsEvictsTheOldestLockout) {
  LoginGuard g = guard({.max_failures = 1, .lockout = 60s, .max_tracked_addresses = 2});
  auto t = t0_;
  fail(g, "a", 1, t);
  fail(g, "b", 1, t);
  fail(g, "c", 1, t);  // all three locked; a, the oldest, is forgotten
  EXPECT_EQ(g.tracked_addresses(), 2u);
  EXPECT_EQ(g.check("chat", "x", "b", t), LoginVerdict::kRateLimited);
  EXPECT_EQ(g.check("chat", "x", "c", t), LoginVerdict::kRateLimited);
  EXPECT_EQ(g.check("chat", "x", "a", t), LoginVerdict::kBadToken);
}

}  // namespace
}  // namespace prism
