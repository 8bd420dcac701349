// prismd's configuration (etc/prism.yaml): the settings, their defaults, and the
// loader that validates them, naming file:line:column and the key path in every error.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.hpp"

namespace prism::config {

// A listening address: server.udp (UDP), ws.listen (TCP).
struct Endpoint {
  std::string host = "127.0.0.1";  // an IPv4 or IPv6 literal, without brackets
  uint16_t port = 7777;            // 0 = any free port

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// An address range for allow-lists: "127.0.0.0/8", "::1/128", or one address.
struct Cidr {
  std::string text;                    // as written, for messages
  std::array<uint8_t, 16> bytes{};     // network address, 4 or 16 bytes used
  uint8_t length = 0;                  // 4 (IPv4) or 16 (IPv6)
  uint8_t prefix = 0;                  // bits that must match

  // `address` is the raw address (4 or 16 bytes, as net::PeerAddress::host_key()). An
  // IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 ranges.
  bool contains(std::string_view address) const;
  friend bool operator==(const Cidr& a, const Cidr& b) { return a.text == b.text; }
};

Expected<Cidr> parse_cidr(std::string_view text);

// Loopback only: 127.0.0.0/8 and ::1.
std::vector<Cidr> default_admin_allow();

// Where the storage facade keeps each facet (DESIGN.md §6, docs/operations.md "Storage").
enum class StoreEngine : uint8_t { kSqlite, kRedis, kPostgres };
std::string_view to_string(StoreEngine engine);

enum class StoreFacet : uint8_t { kDocuments, kCounters, kLeaderboards, kPresence };
inline constexpr std::array<std::string_view, 4> kStoreFacetNames{"documents", "counters",
                                                                  "leaderboards", "presence"};

struct StoreConfig {
  StoreEngine backend = StoreEngine::kSqlite;             // store.backend: every facet's default
  std::array<std::optional<StoreEngine>, 4> facets;       // store.<facet>: overrides, by StoreFacet
  std::string sqlite_file;                 // store.sqlite.file: "" = <state_dir>/prism.db
  bool sqlite_synchronous_full = false;    // store.sqlite.synchronous: normal | full
  std::string redis_host = "127.0.0.1";    // store.redis.address: "HOST:PORT"
  uint16_t redis_port = 6379;
  std::string redis_password_file;         // store.redis.password_file: AUTH with its first line
  unsigned redis_database = 0;             // store.redis.database: 0..255
  std::string redis_key_prefix = "prism:"; // store.redis.key_prefix
  std::string postgres_conninfo;           // store.postgres.conninfo: required when used
  unsigned postgres_connections = 4;       // store.postgres.connections: 1..64

  StoreEngine engine(StoreFacet facet) const {
    return facets[static_cast<size_t>(facet)].value_or(backend);
  }
  bool uses(StoreEngine e) const {
    for (size_t i = 0; i < facets.size(); ++i) {
      if (engine(static_cast<StoreFacet>(i)) == e) return true;
    }
    return false;
  }
  friend bool operator==(const StoreConfig&, const StoreConfig&) = default;
};

// cluster.*: this node's place in its region's cluster (DESIGN.md §7, docs/operations.md
// "Clustering"). Without a cluster section the node runs alone.
struct ClusterConfig {
  bool enabled = false;                     // the file has a cluster section
  std::string redis_host = "127.0.0.1";     // cluster.redis.address: "HOST:PORT"
  uint16_t redis_port = 6379;
  std::string redis_password_file;          // cluster.redis.password_file: AUTH with its first line
  unsigned redis_database = 0;              // cluster.redis.database: 0..255
  std::string key_prefix = "prism:";        // cluster.redis.key_prefix
  std::string node_id;                      // cluster.node_id: "" = generated, kept in <state_dir>/node_id
  std::string region = "default";           // cluster.region
  std::chrono::milliseconds heartbeat{1000};  // cluster.heartbeat_ms: 50..60000
  std::chrono::milliseconds ttl{5000};        // cluster.ttl_ms: 150..600000, at least 3 heartbeats

  friend bool operator==(const ClusterConfig&, const ClusterConfig&) = default;
};

// A node id or region name: 1..64 of A-Z a-z 0-9 _ . -, so that it fits a Redis key and a
// log line as it is. Empty when valid, else why not.
std::string check_node_name(std::string_view name);

// Each member names its YAML key; the initialisers are the defaults that
// etc/prism.yaml repeats. Every section and every key is optional.
struct Config {
  std::string source;                                       // path loaded from ("" for defaults)
  Endpoint udp;                                          // server.udp: "HOST:PORT" or "[V6]:PORT"
  unsigned workers = 0;                                     // server.workers: "auto" (0, one per core) or 1..256
  std::chrono::milliseconds request_timeout{5000};          // server.request_timeout_ms: 1..600000
  size_t max_datagram_size = 1400;                          // server.max_datagram: 576..65507 bytes of UDP payload
  std::string key_file;                                     // server.key_file: "" = <state_dir>/server.key, created on first start
  std::chrono::milliseconds idle_timeout{30000};            // server.idle_timeout_ms: 1000..3600000
  size_t max_message_size = 1 << 20;                        // server.max_message_size: 1024..64 MiB, after reassembly
  size_t max_sessions = 100000;                             // server.max_sessions: 1..10000000, over all workers
  size_t max_sessions_per_ip = 1024;                        // server.max_sessions_per_ip: 1..10000000, one IPv4 address or IPv6 /64
  size_t max_handshakes_per_ip = 64;                        // server.max_handshakes_per_ip: 1..1000000, unconfirmed at once
  size_t handshake_rate_per_ip = 100;                       // server.handshake_rate_per_ip: 1..1000000 INITIALs with a cookie per second
  std::chrono::milliseconds handshake_timeout{5000};        // server.handshake_timeout_ms: 100..60000, until the client confirms
  size_t receive_budget_per_session = 4 << 20;              // server.receive_budget_per_session: 64 KiB..1 GiB held for one peer
  size_t receive_budget_per_worker = 64 << 20;              // server.receive_budget_per_worker: 64 KiB..64 GiB for all of a worker's peers
  size_t max_send_backlog = 8 << 20;                        // server.max_send_backlog: 64 KiB..1 GiB queued + unacknowledged for one peer
  size_t max_topics_per_session = 64;                       // server.max_topics_per_session: 1..100000
  size_t max_subscribers_per_topic = 100000;                // server.max_subscribers_per_topic: 1..10000000, per worker
  std::optional<Endpoint> ws_listen;                        // ws.listen: "HOST:PORT" (TCP) or "off"; unset = off
  std::chrono::milliseconds ws_idle_timeout{60000};         // ws.idle_timeout_ms: 1000..3600000, as Phoenix
  size_t ws_max_frame_bytes = 1 << 20;                      // ws.max_frame_bytes: 1024..64 MiB per message
  size_t ws_max_connections = 10000;                        // ws.max_connections: 1..10000000 WebSockets, over all workers
  size_t ws_max_connections_per_ip = 256;                   // ws.max_connections_per_ip: 1..1000000, over all workers
  std::string ws_tls_cert;  // ws.tls.cert: PEM certificate chain file; with ws.tls.key, the listener speaks TLS only
  std::string ws_tls_key;   // ws.tls.key: PEM private key file of that certificate
  size_t ws_messages_per_second = 100;                      // ws.messages_per_second: 1..1000000 per connection, bursts as many
  std::string plugins_dir = "/usr/lib/prism/plugins";       // plugins.dir
  std::string plugins_config_dir = "/etc/prism/plugins.d";  // plugins.config_dir
  std::string state_dir = "/var/lib/prism";                 // state_dir
  std::string log_level = "info";                           // log.level: trace|debug|info|warn|error|off
  std::chrono::seconds metrics_interval{60};                // metrics.snapshot_interval_s: 0..86400 (0 = off)
  std::string admin_token_file;                             // admin.token_file: "" = <state_dir>/admin.token, created on first start
  std::vector<Cidr> admin_allow = default_admin_allow();    // admin.allow: address ranges admin logins may come from
  StoreConfig store;                                        // store.*
  ClusterConfig cluster;                                    // cluster.*

  friend bool operator==(const Config&, const Config&) = default;
};

// The smallest server.receive_budget_per_session that holds one message of
// `max_message_size` in fragments: the bytes, a 16-byte record per fragment (fragments
// carry at least 490 bytes, docs/protocol.md §5.7) and one per message, rounded up.
constexpr size_t min_receive_budget(size_t max_message_size) {
  return max_message_size + max_message_size / 16 + 4096;
}

// Reads and validates a config file. Errors read "<path>:<line>:<column>: <key.path>: <what>".
Expected<Config> load_file(const std::filesystem::path& path);

// As load_file, for YAML already in memory; source_name stands in for the path in errors.
Expected<Config> load_string(std::string_view yaml, std::string_view source_name);

// Parses "127.0.0.1:7777" or "[::1]:7777" (IP literals only; no name lookup).
Expected<Endpoint> parse_endpoint(std::string_view text);

// The inverse of parse_endpoint, for logs: "127.0.0.1:7777", "[::1]:7777".
std::string to_string(const Endpoint& endpoint);

}  // namespace prism::config
