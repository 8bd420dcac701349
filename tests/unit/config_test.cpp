// Unit tests for host/config: defaults, every validation rule of prism.yaml, the
// file:line:column + key path in each error, and UDP endpoint parsing.
#include "config/config.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "temp_dir_test.hpp"

namespace prism::config {
namespace {

namespace fs = std::filesystem;

// A substring check with gtest alone (the unit tests do not link gmock).
::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// The error load_string gives for `yaml`, read as if from etc/prism.yaml.
std::string error_of(std::string_view yaml) {
  auto loaded = load_string(yaml, "etc/prism.yaml");
  EXPECT_FALSE(loaded.ok()) << "accepted:\n" << yaml;
  return loaded.ok() ? std::string() : loaded.error();
}

Config loaded(std::string_view yaml) {
  auto config = load_string(yaml, "etc/prism.yaml");
  EXPECT_TRUE(config.ok()) << config.error();
  return config.ok() ? *config : Config{};
}

Config defaults_from(std::string source) {
  Config config;
  config.source = std::move(source);
  return config;
}

// A private directory for load_file cases, removed after each test.
class ConfigFileTest : public testing::TempDirTest {};

TEST(ConfigTest, ShippedConfigMatchesDefaults) {
  const fs::path path = PRISM_SOURCE_DIR "/etc/prism.yaml";
  auto config = load_file(path);
  ASSERT_TRUE(config.ok()) << config.error();
  EXPECT_EQ(*config, defaults_from(path.string()));
}

TEST(ConfigTest, DefaultsMatchTheContract) {
  const Config config;
  EXPECT_EQ(config.source, "");
  EXPECT_EQ(config.udp.host, "127.0.0.1");
  EXPECT_EQ(config.udp.port, 7777);
  EXPECT_EQ(config.workers, 0u);
  EXPECT_EQ(config.request_timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(config.max_datagram_size, 1400u);
  EXPECT_EQ(config.plugins_dir, "/usr/lib/prism/plugins");
  EXPECT_EQ(config.plugins_config_dir, "/etc/prism/plugins.d");
  EXPECT_EQ(config.state_dir, "/var/lib/prism");
  EXPECT_EQ(config.log_level, "info");
  EXPECT_EQ(config.metrics_interval, std::chrono::seconds(60));
}

TEST(ConfigTest, CommentOnlyFileGivesDefaults) {
  EXPECT_EQ(loaded("# nothing set\n\n   # still nothing\n"), defaults_from("etc/prism.yaml"));
}

TEST(ConfigTest, EmptySectionGivesDefaults) {
  EXPECT_EQ(loaded("server:\n  # udp: 0.0.0.0:7777\nlog:\n"), defaults_from("etc/prism.yaml"));
}

TEST(ConfigTest, MissingKeysKeepDefaults) {
  Config expected = defaults_from("etc/prism.yaml");
  expected.workers = 4;
  EXPECT_EQ(loaded("server:\n  workers: 4\n"), expected);
}

TEST(ConfigTest, EveryKeyIsRead) {
  const Config config = loaded(R"(
server:
  udp: "[::1]:0"
  workers: 8
  request_timeout_ms: 250
  max_datagram: 1200
  key_file: /etc/prism/server.key
  idle_timeout_ms: 5000
  max_message_size: 65536
  max_sessions: 10
  max_sessions_per_ip: 5
  max_handshakes_per_ip: 3
  handshake_rate_per_ip: 7
  handshake_timeout_ms: 900
  receive_budget_per_session: 100000
  receive_budget_per_worker: 2000000
  max_send_backlog: 131072
  max_topics_per_session: 9
  max_subscribers_per_topic: 11
plugins:
  dir: build/plugins
  config_dir: etc/plugins.d
state_dir: ./state
log:
  level: debug
metrics:
  snapshot_interval_s: 0
)");
  EXPECT_EQ(config.udp, (Endpoint{"::1", 0}));
  EXPECT_EQ(config.workers, 8u);
  EXPECT_EQ(config.request_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(config.max_datagram_size, 1200u);
  EXPECT_EQ(config.key_file, "/etc/prism/server.key");
  EXPECT_EQ(config.idle_timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(config.max_message_size, 65536u);
  EXPECT_EQ(config.max_sessions, 10u);
  EXPECT_EQ(config.max_sessions_per_ip, 5u);
  EXPECT_EQ(config.max_handshakes_per_ip, 3u);
  EXPECT_EQ(config.handshake_rate_per_ip, 7u);
  EXPECT_EQ(config.handshake_timeout, std::chrono::milliseconds(900));
  EXPECT_EQ(config.receive_budget_per_session, 100000u);
  EXPECT_EQ(config.receive_budget_per_worker, 2000000u);
  EXPECT_EQ(config.max_send_backlog, 131072u);
  EXPECT_EQ(config.max_topics_per_session, 9u);
  EXPECT_EQ(config.max_subscribers_per_topic, 11u);
  EXPECT_EQ(config.plugins_dir, "build/plugins");
  EXPECT_EQ(config.plugins_config_dir, "etc/plugins.d");
  EXPECT_EQ(config.state_dir, "./state");
  EXPECT_EQ(config.log_level, "debug");
  EXPECT_EQ(config.metrics_interval, std::chrono::seconds(0));
}

TEST(ConfigTest, ErrorFollowsTheDocumentedForm) {
  EXPECT_EQ(error_of("server:\n  udp: 127.0.0.1:7777\n  workers: lots\n"),
            "etc/prism.yaml:3:12: server.workers: expected \"auto\" or an integer 1..255, got \"lots\"");
}

TEST(ConfigTest, WebSocketTlsNeedsTheCertificateAndItsKey) {
  auto both = load_string("ws:\n  tls:\n    cert: /etc/prism/ws.crt\n    key: /etc/prism/ws.key\n",
                          "etc/prism.yaml");
  ASSERT_TRUE(both) << both.error();
  EXPECT_EQ(both->ws_tls_cert, "/etc/prism/ws.crt");
  EXPECT_EQ(both->ws_tls_key, "/etc/prism/ws.key");
  EXPECT_EQ(error_of("ws:\n  listen: 127.0.0.1:4000\n  tls:\n    cert: /etc/prism/ws.crt\n"),
            "etc/prism.yaml:4:5: ws.tls: cert and key go together (both files, or neither)");
}

TEST(ConfigTest, UnknownKeyNamesFileLineAndKey) {
  const std::string error = error_of("server:\n  workers: 2\n  listn: 0.0.0.0:7777\n");
  EXPECT_TRUE(contains(error, "prism.yaml:3:3: "));
  EXPECT_TRUE(contains(error, "unknown key 'listn' in 'server'"));
  EXPECT_TRUE(contains(error, "known keys: udp workers request_timeout_ms max_datagram"));
}

TEST(ConfigTest, UnknownTopLevelKeyIsRejected) {
  const std::string error = error_of("log:\n  level: info\nx: 1\n");
  EXPECT_TRUE(contains(error, "prism.yaml:3:1: unknown key 'x' ("));
  EXPECT_TRUE(contains(error_of("\"\": 1\n"), "prism.yaml:1:1: expected a key name, got the string \"\""));
}

TEST(ConfigTest, TypoInNestedKeyIsRejected) {
  EXPECT_TRUE(contains(error_of("metrics:\n  snapshot_interval: 10\n"),
              "prism.yaml:2:3: unknown key 'snapshot_interval' in 'metrics'"));
  EXPECT_TRUE(contains(error_of("plugins:\n  dri: /tmp\n"), "unknown key 'dri' in 'plugins'"));
}

TEST(ConfigTest, KeyDeeperThanAnySettingIsRejected) {
  EXPECT_TRUE(contains(error_of("log:\n  level:\n    name: info\n"),
              "prism.yaml:3:5: log.level: expected one of trace|debug|info|warn|error|off, got a map"));
}

TEST(ConfigTest, WrongTypeNamesKey) {
  const std::string error = error_of("server:\n  workers: {count: 2}\n");
  EXPECT_TRUE(contains(error, "prism.yaml:2:"));
  EXPECT_TRUE(contains(error, "server.workers: "));
  EXPECT_TRUE(contains(error, "got a map"));
  EXPECT_TRUE(contains(error_of("plugins:\n  dir: [a, b]\n"), "plugins.dir: expected a path, got a list"));
}

TEST(ConfigTest, StringWhereIntegerExpectedIsRejected) {
  EXPECT_TRUE(contains(error_of("server:\n  request_timeout_ms: soon\n"),
              "prism.yaml:2:23: server.request_timeout_ms: expected an integer 1..600000, got \"soon\""));
  EXPECT_TRUE(contains(error_of("server:\n  request_timeout_ms: 2.5\n"), "server.request_timeout_ms"));
}

TEST(ConfigTest, QuotedNumberIsAString) {
  EXPECT_TRUE(contains(error_of("server:\n  max_datagram: \"1400\"\n"),
              "server.max_datagram: expected an integer 576..65507, got the string \"1400\""));
}

TEST(ConfigTest, NegativeNumberIsRejected) {
  EXPECT_TRUE(contains(error_of("metrics:\n  snapshot_interval_s: -1\n"),
              "prism.yaml:2:24: metrics.snapshot_interval_s: expected an integer 0..86400, got \"-1\""));
  EXPECT_TRUE(contains(error_of("server:\n  workers: -4\n"), "server.workers"));
}

TEST(ConfigTest, OutOfRangeIsRejected) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"server:\n  workers: 0\n", "server.workers"},
      {"server:\n  workers: 257\n", "server.workers"},
      {"server:\n  request_timeout_ms: 0\n", "server.request_timeout_ms"},
      {"server:\n  request_timeout_ms: 600001\n", "server.request_timeout_ms"},
      {"server:\n  max_datagram: 575\n", "server.max_datagram"},
      {"server:\n  max_datagram: 65508\n", "server.max_datagram"},
      {"server:\n  max_datagram: 99999999999999999999999\n", "server.max_datagram"},
      {"metrics:\n  snapshot_interval_s: 86401\n", "metrics.snapshot_interval_s"},
      {"server:\n  idle_timeout_ms: 999\n", "server.idle_timeout_ms"},
      {"server:\n  max_message_size: 1023\n", "server.max_message_size"},
      {"server:\n  max_sessions: 0\n", "server.max_sessions"},
      {"server:\n  max_sessions_per_ip: 0\n", "server.max_sessions_per_ip"},
      {"server:\n  max_handshakes_per_ip: 0\n", "server.max_handshakes_per_ip"},
      {"server:\n  handshake_rate_per_ip: 0\n", "server.handshake_rate_per_ip"},
      {"server:\n  handshake_timeout_ms: 99\n", "server.handshake_timeout_ms"},
      {"server:\n  receive_budget_per_session: 65535\n", "server.receive_budget_per_session"},
      {"server:\n  receive_budget_per_worker: 1000\n", "server.receive_budget_per_worker"},
      {"server:\n  max_send_backlog: 65535\n", "server.max_send_backlog"},
      {"ws:\n  idle_timeout_ms: 999\n", "ws.idle_timeout_ms"},
      {"ws:\n  max_frame_bytes: 1023\n", "ws.max_frame_bytes"},
      {"ws:\n  max_connections: 0\n", "ws.max_connections"},
      {"ws:\n  max_connections_per_ip: 0\n", "ws.max_connections_per_ip"},
      {"ws:\n  messages_per_second: 0\n", "ws.messages_per_second"},
      {"ws:\n  listen: nowhere\n", "ws.listen"},
      {"server:\n  max_topics_per_session: 0\n", "server.max_topics_per_session"},
      {"server:\n  max_subscribers_per_topic: 0\n", "server.max_subscribers_per_topic"},
      {"server:\n  key_file: \"\"\n", "server.key_file"},
      {"server:\n  udp: 127.0.0.1:65536\n", "server.udp"},
  };
  for (const auto& [yaml, key] : cases) {
    SCOPED_TRACE(yaml);
    const std::string error = error_of(yaml);
    EXPECT_TRUE(contains(error, "prism.yaml:2:"));
    EXPECT_TRUE(contains(error, key + ": "));
  }
}

// A receive budget smaller than one message of the maximum size could never reassemble it.
TEST(ConfigTest, ReceiveBudgetsMustHoldOneMessageOfTheMaximumSize) {
  const std::string small = error_of("server:\n  max_message_size: 8388608\n"
                                     "  receive_budget_per_session: 4194304\n");
  EXPECT_TRUE(contains(small, "prism.yaml:3:")) << small;
  EXPECT_TRUE(contains(small, "server.receive_budget_per_session: 4194304 cannot hold one message "
                              "of server.max_message_size (8388608)"))
      << small;
  // Raising only max_message_size blames the section: the budget is the default.
  EXPECT_TRUE(contains(error_of("server:\n  max_message_size: 8388608\n"),
                       "server.receive_budget_per_session")) << small;
  const std::string worker = error_of("server:\n  receive_budget_per_worker: 1048576\n");
  EXPECT_TRUE(contains(worker, "server.receive_budget_per_worker: must be at least")) << worker;
  EXPECT_EQ(loaded("server:\n  max_message_size: 8388608\n  receive_budget_per_session: 9000000\n"
                   "  receive_budget_per_worker: 9000000\n").receive_budget_per_session,
            9000000u);
}

TEST(ConfigTest, RangeBoundsAreAccepted) {
  Config config = loaded("server:\n  workers: 255\n  request_timeout_ms: 600000\n  max_datagram: 65507\n"
                         "metrics:\n  snapshot_interval_s: 86400\n");
  EXPECT_EQ(config.workers, 255u);
  EXPECT_EQ(config.request_timeout, std::chrono::milliseconds(600000));
  EXPECT_EQ(config.max_datagram_size, 65507u);
  EXPECT_EQ(config.metrics_interval, std::chrono::seconds(86400));
  config = loaded("server:\n  workers: 1\n  request_timeout_ms: 1\n  max_datagram: 576\n");
  EXPECT_EQ(config.workers, 1u);
  EXPECT_EQ(config.request_timeout, std::chrono::milliseconds(1));
  EXPECT_EQ(config.max_datagram_size, 576u);
}

TEST(ConfigTest, WorkersAcceptsAuto) {
  EXPECT_EQ(loaded("server:\n  workers: 3\n").workers, 3u);
  EXPECT_EQ(loaded("server:\n  workers: auto\n").workers, 0u);
  EXPECT_EQ(loaded("server:\n  workers: \"auto\"\n").workers, 0u);
}

TEST(ConfigTest, EmptyValueNamesKey) {
  EXPECT_TRUE(contains(error_of("server:\n  workers:\n  udp: 127.0.0.1:1\n"),
              "prism.yaml:2:3: server.workers: expected \"auto\" or an integer 1..255, got nothing"));
  EXPECT_TRUE(contains(error_of("state_dir: \"\"\n"), "prism.yaml:1:12: state_dir: expected a path"));
}

TEST(ConfigTest, SectionMustBeAMap) {
  EXPECT_TRUE(contains(error_of("server: 127.0.0.1:7777\n"),
              "prism.yaml:1:9: server: expected a map, got \"127.0.0.1:7777\""));
}

TEST(ConfigTest, TopLevelMustBeAMap) {
  EXPECT_TRUE(contains(error_of("- server\n"), "prism.yaml:1:1: expected a map of settings at the top level"));
}

TEST(ConfigTest, DuplicateKeyIsRejected) {
  EXPECT_TRUE(contains(error_of("log:\n  level: info\nlog:\n  level: off\n"), "prism.yaml:3:1: log: duplicate key"));
}

TEST(ConfigTest, LogLevelMustBeKnown) {
  EXPECT_EQ(loaded("log:\n  level: off\n").log_level, "off");
  EXPECT_TRUE(contains(error_of("log:\n  level: loud\n"), "prism.yaml:2:10: log.level: expected one of"));
}

TEST(ConfigTest, SyntaxErrorNamesLine) {
  const std::string error = error_of("server:\n  workers: 4\n   bad: x\n");
  EXPECT_TRUE(contains(error, "etc/prism.yaml:3:7: "));
  EXPECT_TRUE(contains(error, "illegal map value"));
}

TEST(ConfigTest, UnquotedIpv6IsASyntaxErrorAndQuotedIsRead) {
  EXPECT_TRUE(contains(error_of("server:\n  udp: [::1]:7777\n"), "prism.yaml:2:"));
  EXPECT_EQ(loaded("server:\n  udp: \"[::1]:7777\"\n").udp, (Endpoint{"::1", 7777}));
}

TEST(ConfigTest, BadEndpointNamesKey) {
  EXPECT_TRUE(contains(error_of("server:\n  udp: localhost:7777\n"),
              "prism.yaml:2:8: server.udp: \"localhost\" is not an IPv4 address"));
}

TEST_F(ConfigFileTest, EmptyFileGivesDefaults) {
  const fs::path path = write("empty.yaml", "");
  auto config = load_file(path);
  ASSERT_TRUE(config.ok()) << config.error();
  EXPECT_EQ(*config, defaults_from(path.string()));
}

TEST_F(ConfigFileTest, FileErrorsNameThePath) {
  const fs::path path = write("prism.yaml", "server:\n  max_datagram: 100\n");
  auto config = load_file(path);
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(contains(config.error(), path.string() + ":2:17: server.max_datagram: "));
}

TEST_F(ConfigFileTest, MissingFileIsAnError) {
  const fs::path path = dir_ / "absent.yaml";
  auto config = load_file(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error(), path.string() + ": cannot read config file: No such file or directory");
}

TEST_F(ConfigFileTest, DirectoryIsAnError) {
  auto config = load_file(dir_);
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(contains(config.error(), dir_.string() + ": cannot read config file: "));
}

TEST(EndpointTest, EndpointParsesIpv4) {
  auto endpoint = parse_endpoint("0.0.0.0:7777");
  ASSERT_TRUE(endpoint.ok()) << endpoint.error();
  EXPECT_EQ(*endpoint, (Endpoint{"0.0.0.0", 7777}));
}

TEST(EndpointTest, EndpointParsesIpv6) {
  auto endpoint = parse_endpoint("[::1]:7777");
  ASSERT_TRUE(endpoint.ok()) << endpoint.error();
  EXPECT_EQ(*endpoint, (Endpoint{"::1", 7777}));
  ASSERT_TRUE(parse_endpoint("[2001:db8::5]:65535").ok());
}

TEST(EndpointTest, PortZeroMeansAnyPort) {
  auto endpoint = parse_endpoint("127.0.0.1:0");
  ASSERT_TRUE(endpoint.ok()) << endpoint.error();
  EXPECT_EQ(endpoint->port, 0);
}

TEST(EndpointTest, MalformedEndpointsAreRejected) {
  for (const char* text : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:-1", "127.0.0.1:65536", "127.0.0.1:80x",
                           "127.0.0.1: 80", "localhost:7777", "256.0.0.1:1", "::1:7777", "[::1]", "[::1]7777",
                           "[127.0.0.1]:7777", "[]:1", ":7777"}) {
    EXPECT_FALSE(parse_endpoint(text).ok()) << text;
  }
}

TEST(EndpointTest, UnbracketedIpv6SaysToUseBrackets) {
  auto endpoint = parse_endpoint("::1:7777");
  ASSERT_FALSE(endpoint.ok());
  EXPECT_TRUE(contains(endpoint.error(), "[::1]:PORT"));
}

TEST(EndpointTest, ToStringRoundTrips) {
  for (const char* text : {"127.0.0.1:7777", "[::1]:0", "[2001:db8::5]:65535"}) {
    auto endpoint = parse_endpoint(text);
    ASSERT_TRUE(endpoint.ok()) << endpoint.error();
    EXPECT_EQ(to_string(*endpoint), text);
  }
}

}  // namespace
}  // namespace prism::config

namespace prism::config {
namespace {

std::string raw(const char* text, int family) {
  std::string bytes(family == AF_INET ? 4 : 16, '\0');
  inet_pton(family, text, bytes.data());
  return bytes;
}

TEST(AdminAllowTest, DefaultsToLoopbackOnly) {
  const auto allow = default_admin_allow();
  auto allowed = [&](const std::string& address) {
    return std::any_of(allow.begin(), allow.end(), [&](const Cidr& c) { return c.contains(address); });
  };
  EXPECT_TRUE(allowed(raw("127.0.0.1", AF_INET)));
  EXPECT_TRUE(allowed(raw("127.9.8.7", AF_INET)));
  EXPECT_TRUE(allowed(raw("::1", AF_INET6)));
  EXPECT_TRUE(allowed(raw("::ffff:127.0.0.1", AF_INET6)));  // IPv4 on a dual-stack socket
  EXPECT_FALSE(allowed(raw("10.0.0.1", AF_INET)));
  EXPECT_FALSE(allowed(raw("::2", AF_INET6)));
}

TEST(AdminAllowTest, RangesFromTheConfigFile) {
  auto config = load_string("admin:\n  allow: [\"10.1.0.0/16\", \"2001:db8::/32\", 192.0.2.7]\n"
                            "  token_file: /etc/prism/admin.token\n",
                            "prism.yaml");
  ASSERT_TRUE(config) << config.error();
  ASSERT_EQ(config->admin_allow.size(), 3u);
  EXPECT_EQ(config->admin_token_file, "/etc/prism/admin.token");
  EXPECT_TRUE(config->admin_allow[0].contains(raw("10.1.200.3", AF_INET)));
  EXPECT_FALSE(config->admin_allow[0].contains(raw("10.2.0.1", AF_INET)));
  EXPECT_TRUE(config->admin_allow[1].contains(raw("2001:db8:1::5", AF_INET6)));
  EXPECT_TRUE(config->admin_allow[2].contains(raw("192.0.2.7", AF_INET)));
  EXPECT_FALSE(config->admin_allow[2].contains(raw("192.0.2.8", AF_INET)));
  EXPECT_FALSE(config->admin_allow[0].contains(raw("::1", AF_INET6)));
}

TEST(AdminAllowTest, BadRangesNameTheKey) {
  for (const char* yaml : {"admin:\n  allow: 127.0.0.1\n", "admin:\n  allow: [\"10.0.0.0/33\"]\n",
                           "admin:\n  allow: [\"nonsense\"]\n", "admin:\n  allow: [[1]]\n"}) {
    auto config = load_string(yaml, "prism.yaml");
    ASSERT_FALSE(config) << yaml;
    EXPECT_NE(config.error().find("prism.yaml:2:"), std::string::npos) << config.error();
    EXPECT_NE(config.error().find("admin.allow: "), std::string::npos) << config.error();
  }
}


// ---- store: which backend each facet uses, and their connection settings -------------

TEST(StoreConfigTest, DefaultIsSqliteForEveryFacetInTheStateDir) {
  const Config config;
  for (auto facet : {StoreFacet::kDocuments, StoreFacet::kCounters, StoreFacet::kLeaderboards,
                     StoreFacet::kPresence}) {
    EXPECT_EQ(config.store.engine(facet), StoreEngine::kSqlite);
  }
  EXPECT_EQ(config.store.sqlite_file, "");
  EXPECT_FALSE(config.store.uses(StoreEngine::kRedis));
  EXPECT_FALSE(config.store.uses(StoreEngine::kPostgres));
}

TEST(StoreConfigTest, FacetsOverrideTheBackendWhateverTheirOrder) {
  const Config config = loaded(R"(
store:
  documents: postgres
  backend: redis
  presence: sqlite
  sqlite: {file: /tmp/x.db, synchronous: full}
  redis: {address: "redis.internal:6380", database: 3, key_prefix: "game1:", password_file: /etc/pw}
  postgres: {conninfo: "host=db dbname=prism", connections: 8}
)");
  EXPECT_EQ(config.store.engine(StoreFacet::kDocuments), StoreEngine::kPostgres);
  EXPECT_EQ(config.store.engine(StoreFacet::kCounters), StoreEngine::kRedis);
  EXPECT_EQ(config.store.engine(StoreFacet::kLeaderboards), StoreEngine::kRedis);
  EXPECT_EQ(config.store.engine(StoreFacet::kPresence), StoreEngine::kSqlite);
  EXPECT_EQ(config.store.sqlite_file, "/tmp/x.db");
  EXPECT_TRUE(config.store.sqlite_synchronous_full);
  EXPECT_EQ(config.store.redis_host, "redis.internal");
  EXPECT_EQ(config.store.redis_port, 6380);
  EXPECT_EQ(config.store.redis_database, 3u);
  EXPECT_EQ(config.store.redis_key_prefix, "game1:");
  EXPECT_EQ(config.store.redis_password_file, "/etc/pw");
  EXPECT_EQ(config.store.postgres_conninfo, "host=db dbname=prism");
  EXPECT_EQ(config.store.postgres_connections, 8u);
}

TEST(StoreConfigTest, BadValuesNameFileLineAndKey) {
  EXPECT_EQ(error_of("store:\n  backend: mysql\n"),
            "etc/prism.yaml:2:12: store.backend: expected one of sqlite|redis|postgres, got \"mysql\"");
  EXPECT_EQ(error_of("store:\n  leaderboards: memcached\n"),
            "etc/prism.yaml:2:17: store.leaderboards: expected one of sqlite|redis|postgres, got \"memcached\"");
  EXPECT_EQ(error_of("store:\n  sqlite:\n    synchronous: off\n"),
            "etc/prism.yaml:3:18: store.sqlite.synchronous: expected normal or full, got \"off\"");
  EXPECT_EQ(error_of("store:\n  redis:\n    address: localhost\n"),
            "etc/prism.yaml:3:14: store.redis.address: expected \"HOST:PORT\", got \"localhost\"");
  EXPECT_EQ(error_of("store:\n  redis:\n    address: \"h:0\"\n"),
            "etc/prism.yaml:3:14: store.redis.address: expected a port 1..65535 after the colon, got the string \"h:0\"");
  EXPECT_EQ(error_of("store:\n  postgres:\n    connections: 0\n"),
            "etc/prism.yaml:3:18: store.postgres.connections: expected an integer 1..64, got \"0\"");
  EXPECT_EQ(error_of("store:\n  mongo: {}\n"),
            "etc/prism.yaml:2:3: unknown key 'mongo' in 'store' (known keys: backend documents "
            "counters leaderboards presence sqlite redis postgres)");
}

TEST(StoreConfigTest, PostgresNeedsAConnectionString) {
  EXPECT_EQ(error_of("store:\n  documents: postgres\n"),
            "etc/prism.yaml:2:3: store.postgres.conninfo: required when a facet uses postgres "
            "(e.g. \"host=127.0.0.1 dbname=prism user=prism connect_timeout=5\")");
  EXPECT_EQ(loaded("store:\n  documents: postgres\n  postgres: {conninfo: \"dbname=x\"}\n")
                .store.engine(StoreFacet::kDocuments),
            StoreEngine::kPostgres);
}

TEST(StoreConfigTest, RedisAddressTakesBracketedIpv6) {
  const Config config = loaded("store:\n  redis: {address: \"[::1]:6379\"}\n");
  EXPECT_EQ(config.store.redis_host, "::1");
  EXPECT_EQ(config.store.redis_port, 6379);
}

TEST(ClusterConfigTest, WithoutAClusterSectionTheNodeRunsAlone) {
  EXPECT_FALSE(loaded("server:\n  workers: 1\n").cluster.enabled);
  const Config config = loaded("cluster:\n");  // a section of defaults still joins
  EXPECT_TRUE(config.cluster.enabled);
  EXPECT_EQ(config.cluster.redis_port, 6379);
  EXPECT_EQ(config.cluster.region, "default");
  EXPECT_EQ(config.cluster.node_id, "");  // generated and kept in the state dir
}

TEST(ClusterConfigTest, EveryKeyIsRead) {
  const Config config = loaded(
      "cluster:\n  redis: {address: \"10.0.0.5:6380\", password_file: /etc/prism/redis.pw, database: 3,"
      " key_prefix: \"eu:\", tls: false}\n  node_id: eu-1.a\n  region: eu-1\n  heartbeat_ms: 500\n"
      "  ttl_ms: 2000\n");
  EXPECT_EQ(config.cluster.redis_host, "10.0.0.5");
  EXPECT_EQ(config.cluster.redis_port, 6380);
  EXPECT_EQ(config.cluster.redis_password_file, "/etc/prism/redis.pw");
  EXPECT_EQ(config.cluster.redis_database, 3u);
  EXPECT_EQ(config.cluster.key_prefix, "eu:");
  EXPECT_EQ(config.cluster.node_id, "eu-1.a");
  EXPECT_EQ(config.cluster.region, "eu-1");
  EXPECT_EQ(config.cluster.heartbeat, std::chrono::milliseconds(500));
  EXPECT_EQ(config.cluster.ttl, std::chrono::milliseconds(2000));
}

TEST(ClusterConfigTest, BadValuesNameFileLineAndKey) {
  EXPECT_EQ(error_of("cluster:\n  node_id: \"a b\"\n"),
            "etc/prism.yaml:2:12: cluster.node_id: expected 1..64 characters of A-Z a-z 0-9 _ . -, got the string \"a b\"");
  EXPECT_EQ(error_of("cluster:\n  redis:\n    tls: true\n"),
            "etc/prism.yaml:3:10: cluster.redis.tls: TLS to Redis needs hiredis 1.0 or later (Debian 12 "
            "ships 0.14): reach a TLS Redis through a local tunnel (stunnel, spiped) and set "
            "cluster.redis.address to it");
  EXPECT_EQ(error_of("cluster:\n  heartbeat_ms: 1000\n  ttl_ms: 2000\n"),
            "etc/prism.yaml:3:11: cluster.ttl_ms: 2000 must be at least 3 heartbeats (3 x "
            "cluster.heartbeat_ms = 3000), or a node that misses one beat would drop out");
  EXPECT_EQ(error_of("cluster:\n  zone: a\n"),
            "etc/prism.yaml:2:3: unknown key 'zone' in 'cluster' (known keys: redis node_id region "
            "heartbeat_ms ttl_ms)");
}

}  // namespace
}  // namespace prism::config
