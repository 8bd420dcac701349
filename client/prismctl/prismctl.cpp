// prismctl: the admin CLI for a running prismd (ping, plugins, status, call).
// Every failure is one line on stderr and a non-zero exit; --json makes stdout
// machine-readable.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "net/crypto/key_file.hpp"
#include "base/token_hash.hpp"
#include "prism/client.hpp"
#include "server_files.hpp"

namespace {

using prism::Expected;
using prism::client::Client;
using json = nlohmann::json;

// Exit codes, also listed in --help.
constexpr int kExitFailure = 1;  // no answer, bad arguments, unknown service or method
constexpr int kExitNotOk = 2;    // the server answered with a status other than OK

struct Options {
  std::string server = "127.0.0.1:7777";
  std::string server_key;   // --server-key: "prism1:<hex>" or a server.pub file
  std::string config_path;  // --config: the server's prism.yaml, to find its public key
  std::string token;        // --token: log in to the called service first (visible in ps)
  std::string token_source;  // --service-token-file: the same from a file, "-" = stdin
  std::string token_file;   // --token-file: the admin token (default: found through the config)
  int timeout_ms = 2000;
  bool json = false;
  std::string service;
  std::string method;
  std::string payload;
};

int fail(std::string_view reason) {
  std::cerr << "prismctl: " << reason << "\n";
  return kExitFailure;
}

// Non-UTF-8 bytes in a payload are replaced rather than failing the whole output.
void print_json(const json& value) {
  std::cout << value.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
}

using prism::tools::read_secret;
using prism::tools::read_text;

Expected<prism::client::ServerKey> find_server_key(const Options& opts) {
  return prism::tools::find_server_key(opts.server_key, opts.config_path);
}

// The admin token: --token-file, else the server's own file when this user can read it.
// Empty when there is none: admin commands then fail with LOGIN_REQUIRED.
Expected<std::string> find_admin_token(const Options& opts) {
  std::filesystem::path path = opts.token_file;
  if (path.empty()) {
    auto files = prism::tools::locate_server_files(opts.config_path);
    std::error_code ec;  // a directory this user cannot enter: no token, not a crash
    if (!files || !std::filesystem::exists(files->admin_token, ec)) return std::string();
    path = files->admin_token;
  }
  auto token = read_text(path);
  if (!token) return prism::make_error("admin token: " + token.error());
  return token;
}

// The token `call` logs in with: --token, --service-token-file or $PRISM_SERVICE_TOKEN.
Expected<std::string> service_token(const Options& opts) {
  if (!opts.token.empty()) {
    std::cerr << "prismctl: warning: --token puts the token where other users of this machine "
                 "can read it (ps); prefer --service-token-file FILE, --service-token-file - "
                 "(standard input) or $PRISM_SERVICE_TOKEN\n";
    return opts.token;
  }
  auto token = read_secret(opts.token_source, "PRISM_SERVICE_TOKEN");
  if (!token) return prism::make_error("service token: " + token.error());
  return token;
}

// `admin`: the command sends host requests, so log in with the admin token if one is found.
Expected<Client> open_client(const Options& opts, bool admin) {
  auto endpoint = prism::client::parse_endpoint(opts.server);
  if (!endpoint) return endpoint.failure();
  auto key = find_server_key(opts);
  if (!key) return key.failure();
  prism::client::ConnectOptions options;
  options.server_key = *key;
  options.timeout = std::chrono::milliseconds(opts.timeout_ms);
  auto client = Client::connect(*endpoint, options);
  if (!client || !admin) return client;
  auto token = find_admin_token(opts);
  if (!token) return token.failure();
  if (token->empty()) return client;
  // Host requests (plugins, status, the lookups of `call`) need an admin login.
  auto login = client->login("admin", *token);
  if (!login) return prism::Error{"admin login: " + login.error()};
  if (login->status != prism::v1::STATUS_OK) {
    return prism::make_error("admin login to " + opts.server + " answered " +
                             std::string(prism::client::status_name(login->status)) + ": " +
                             login->message);
  }
  return client;
}

int run_ping(Client& client, const Options& opts) {
  auto rtt = client.ping();
  const std::string peer = prism::client::to_string(client.endpoint());
  if (!rtt) {
    // Socket errors already name the server; a timeout does not.
    const bool named = rtt.error().find(peer) != std::string::npos;
    return fail((named ? "ping: " : "ping " + peer + ": ") + rtt.error());
  }
  const double ms = std::chrono::duration<double, std::milli>(*rtt).count();
  if (opts.json) {
    print_json({{"rtt_ms", std::round(ms * 1000.0) / 1000.0}});
  } else {
    std::printf("pong from %s in %.3f ms\n", peer.c_str(), ms);
  }
  return 0;
}

json plugin_json(const prism::v1::PluginInfo& p) {
  json methods = json::array();
  for (const auto& m : p.methods()) methods.push_back({{"name", m.name()}, {"packet_id", m.packet_id()}});
  return {{"name", p.name()},
          {"version", p.version()},
          {"first_packet_id", p.first_packet_id()},
          {"last_packet_id", p.last_packet_id()},
          {"file", p.file()},
          {"requests", p.requests()},
          {"errors", p.errors()},
          {"concurrent", p.concurrent()},
          {"loaded_at_ms", p.loaded_at_ms()},
          {"state", p.state()},
          {"last_error", p.last_error()},
          {"reloads", p.reloads()},
          {"p99_us", p.p99_us()},
          {"methods", std::move(methods)}};
}

// Columns as wide as their widest cell, two spaces apart; the last one is not padded.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

std::string format_time(uint64_t unix_ms);

int run_plugins(Client& client, const Options& opts) {
  auto list = client.list_plugins();
  if (!list) return fail(list.error());
  if (opts.json) {
    json plugins = json::array();
    for (const auto& p : list->plugins()) plugins.push_back(plugin_json(p));
    print_json({{"plugins", std::move(plugins)}});
    return 0;
  }
  std::vector<std::vector<std::string>> rows{
      {"NAME", "STATE", "VERSION", "RANGE", "REQUESTS", "ERRORS", "P99", "LOADED", "FILE"}};
  for (const auto& p : list->plugins()) {
    rows.push_back({p.name(), p.state().empty() ? "serving" : p.state(), p.version(),
                    std::to_string(p.first_packet_id()) + "-" + std::to_string(p.last_packet_id()),
                    std::to_string(p.requests()), std::to_string(p.errors()),
                    std::to_string(p.p99_us()) + "us", format_time(p.loaded_at_ms()), p.file()});
  }
  print_table(rows);
  if (list->plugins().empty()) std::cout << "(no plugins loaded)\n";
  for (const auto& p : list->plugins()) {
    if (!p.last_error().empty()) {
      std::cout << p.name() << ": last load or reload failed: " << p.last_error() << "\n";
    }
  }
  return 0;
}

// Loaded-at times as local "YYYY-MM-DD HH:MM:SS".
std::string format_time(uint64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return text;
}

// load / reload print the plugin as `plugins` would; unload and config check print a line.
// A refusal the server answered exits 2, like `call`.
int fail_command(const prism::Error& error) {
  fail(error.message);
  return error.code == prism::ErrorCode::kServerStatus ? kExitNotOk : kExitFailure;
}

int print_plugin(const Expected<prism::v1::PluginInfo>& info, const Options& opts,
                 std::string_view verb) {
  if (!info) return fail_command(info.failure());
  if (opts.json) {
    print_json(plugin_json(*info));
  } else {
    std::cout << verb << " " << info->name() << " " << info->version() << " (packet ids "
              << info->first_packet_id() << "-" << info->last_packet_id() << ") from "
              << info->file() << "\n";
  }
  return 0;
}

int print_done(const Expected<void>& done, const Options& opts, const std::string& what) {
  if (!done) return fail_command(done.failure());
  if (opts.json) {
    print_json({{"ok", true}});
  } else {
    std::cout << what << "\n";
  }
  return 0;
}

std::string format_uptime(uint64_t ms) {
  const uint64_t s = ms / 1000;
  char text[64];
  if (s >= 86400) {
    std::snprintf(text, sizeof text, "%llud %02lluh %02llum %02llus", (unsigned long long)(s / 86400),
                  (unsigned long long)(s / 3600 % 24), (unsigned long long)(s / 60 % 60),
                  (unsigned long long)(s % 60));
  } else if (s >= 3600) {
    std::snprintf(text, sizeof text, "%lluh %02llum %02llus", (unsigned long long)(s / 3600),
                  (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
  } else {
    std::snprintf(text, sizeof text, "%llum %02llus", (unsigned long long)(s / 60),
                  (unsigned long long)(s % 60));
  }
  return text;
}

int run_status(Client& client, const Options& opts) {
  auto status = client.server_status();
  if (!status) return fail(status.error());
  if (opts.json) {
    nlohmann::json store = nlohmann::json::array();
    for (const auto& facet : status->store()) {
      store.push_back({{"facet", facet.facet()}, {"backend", facet.backend()}, {"healthy", facet.healthy()}});
    }
    print_json({{"version", status->version()},
                {"uptime_ms", status->uptime_ms()},
                {"workers", status->workers()},
                {"datagrams_received", status->datagrams_received()},
                {"datagrams_dropped", status->datagrams_dropped()},
                {"requests", status->requests()},
                {"cluster", status->cluster()},
                {"store", std::move(store)}});
    return 0;
  }
  std::vector<std::vector<std::string>> rows{
      {"server", prism::client::to_string(client.endpoint())},
      {"version", status->version()},
      {"uptime", format_uptime(status->uptime_ms())},
      {"workers", std::to_string(status->workers())},
      {"datagrams received", std::to_string(status->datagrams_received())},
      {"datagrams dropped", std::to_string(status->datagrams_dropped())},
      {"requests", std::to_string(status->requests())},
      {"cluster", status->cluster() == "degraded" ? "DEGRADED: Redis away, serving alone" : status->cluster()}};
  for (const auto& facet : status->store()) {
    rows.push_back({"store " + facet.facet(),
                    facet.backend() + (facet.healthy() ? " (ok)" : " (DEGRADED: calls fail UNAVAILABLE)")});
  }
  print_table(rows);
  return 0;
}

// `prismctl cluster nodes`: the node registry as the asked node last read it.
int run_cluster_nodes(Client& client, const Options& opts) {
  auto reply = client.call(prism::v1::HOST_CLUSTER_NODES, {});
  if (!reply) return fail("cluster nodes: " + reply.error());
  if (reply->status != prism::v1::STATUS_OK) {
    fail("cluster nodes answered " + std::string(prism::client::status_name(reply->status)) + ": " +
         reply->message);
    return kExitNotOk;
  }
  prism::v1::ClusterNodes nodes;
  if (!nodes.ParseFromString(reply->payload)) return fail("cluster nodes: the reply is not a ClusterNodes");
  if (opts.json) {
    json list = json::array();
    for (const auto& n : nodes.nodes()) {
      list.push_back({{"id", n.id()},
                      {"region", n.region()},
                      {"udp", n.udp()},
                      {"ws", n.ws()},
                      {"version", n.version()},
                      {"started_at_ms", n.started_at_ms()},
                      {"age_ms", n.age_ms()},
                      {"sessions", n.sessions()},
                      {"requests_per_s", n.requests_per_s()},
                      {"plugins", std::vector<std::string>(n.plugins().begin(), n.plugins().end())}});
    }
    print_json({{"clustered", nodes.clustered()},
                {"self", nodes.self_id()},
                {"healthy", nodes.healthy()},
                {"redis", nodes.redis()},
                {"nodes", std::move(list)}});
    return 0;
  }
  if (!nodes.clustered()) {
    std::cout << "this node runs alone (no cluster section in its prism.yaml)\n";
    return 0;
  }
  std::cout << "node " << nodes.self_id() << ", redis " << nodes.redis()
            << (nodes.healthy() ? "" : " (DEGRADED: not registered, serving alone)") << "\n";
  std::vector<std::vector<std::string>> rows{
      {"ID", "REGION", "UDP", "WS", "VERSION", "AGE", "SESSIONS", "REQ/S", "STARTED", "PLUGINS"}};
  for (const auto& n : nodes.nodes()) {
    std::string plugins;
    for (const auto& p : n.plugins()) plugins += (plugins.empty() ? "" : ",") + p;
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.0f", n.requests_per_s());
    rows.push_back({n.id(), n.region(), n.udp(), n.ws().empty() ? "-" : n.ws(), n.version(),
                    std::to_string(n.age_ms()) + "ms", std::to_string(n.sessions()), rate,
                    format_time(n.started_at_ms()), plugins});
  }
  print_table(rows);
  return 0;
}

int run_call(Client& client, const Options& opts) {
  auto packet_id = client.resolve(opts.service, opts.method);
  if (!packet_id) return fail(packet_id.error());
  auto token = service_token(opts);
  if (!token) return fail(token.error());
  if (!token->empty()) {
    auto login = client.login(opts.service, *token);
    if (!login) return fail("login to " + opts.service + ": " + login.error());
    if (login->status != prism::v1::STATUS_OK) {
      fail("login to " + opts.service + " answered " +
           std::string(prism::client::status_name(login->status)) + ": " + login->message);
      return kExitNotOk;
    }
  }
  auto reply = client.call(*packet_id, opts.payload);
  if (!reply) return fail(opts.service + "." + opts.method + ": " + reply.error());
  const std::string_view status = prism::client::status_name(reply->status);
  if (opts.json) {
    print_json({{"status", status},
                {"packet_id", *packet_id},
                {"message", reply->message},
                {"payload", reply->payload}});
  } else {
    std::cout << "status=" << status << "\n" << reply->payload << "\n";
  }
  std::cout.flush();
  if (reply->status == prism::v1::STATUS_OK) return 0;
  std::string reason = opts.service + "." + opts.method + " (packet " + std::to_string(*packet_id) +
                       ") answered " + std::string(status);
  if (!reply->message.empty()) reason += ": " + reply->message;
  fail(reason);
  return kExitNotOk;
}

// What `prismctl rooms ...` asks of the rooms service (docs/rooms.md "Managing
// instances"), with the admin login, which may call every service.
struct RoomsArgs {
  std::string id, type = "default", name, body;
  std::vector<std::string> channels;  // NAME:TYPE
};

int run_rooms(Client& client, const std::string& action, const RoomsArgs& args, const Options& opts) {
  json payload = json::object();
  if (action == "create") {
    if (!args.body.empty()) {
      payload = json::parse(args.body, nullptr, false);
      if (!payload.is_object()) return fail("rooms create: the JSON is not an object");
    }
    if (!args.id.empty()) payload["id"] = args.id;
    if (!payload.contains("type")) payload["type"] = args.type;
    if (!args.name.empty()) payload["name"] = args.name;
    for (const std::string& c : args.channels) {
      const size_t colon = c.find(':');
      if (colon == std::string::npos) return fail("--channel " + c + ": expected NAME:TYPE");
      payload["channels"].push_back({{"name", c.substr(0, colon)}, {"type", c.substr(colon + 1)}});
    }
  } else if (action != "list") {
    payload["id"] = args.id;
  }
  auto packet_id = client.resolve("rooms", action);
  if (!packet_id) return fail(packet_id.error());
  auto reply = client.call(*packet_id, payload.dump());
  if (!reply) return fail("rooms " + action + ": " + reply.error());
  if (reply->status != prism::v1::STATUS_OK) {
    fail("rooms " + action + " answered " + std::string(prism::client::status_name(reply->status)) +
         ": " + reply->message);
    return kExitNotOk;
  }
  const json out = json::parse(reply->payload, nullptr, false);
  if (opts.json || action != "list") {
    std::cout << out.dump(opts.json ? -1 : 2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"ID", "NAME", "TYPE", "STATE", "USERS", "CHANNELS"}};
  for (const json& i : out.value("instances", json::array())) {
    std::string channels;
    for (const json& c : i.value("channels", json::array())) {
      channels += (channels.empty() ? "" : ",") + c.value("name", std::string());
    }
    std::string state = i.value("state", std::string());
    if (!i.value("failure", std::string()).empty()) state += " (" + i.value("failure", std::string()) + ")";
    rows.push_back({i.value("id", std::string()), i.value("name", std::string()),
                    i.value("type", std::string()), state, std::to_string(i.value("users", 0)),
                    channels});
  }
  print_table(rows);
  return 0;
}

// Subscribes this admin session to `topic` and prints each message published to it, one
// line each ("TOPIC PAYLOAD", or a JSON object with --json), until `count` messages
// (0: until interrupted) or the session ends.
int run_subscribe(Client& client, const std::string& topic, uint64_t count, const Options& opts) {
  uint64_t seen = 0;
  client.on_topic(topic, [&](const prism::v1::Message& m) {
    ++seen;
    if (opts.json) {
      print_json({{"topic", m.topic()}, {"packet_id", m.packet_id()}, {"payload", m.payload()}});
    } else {
      std::cout << m.topic() << " " << m.payload() << "\n";
    }
    std::cout.flush();  // a pipe reader sees each message as it arrives
  });
  if (auto subscribed = client.subscribe(topic); !subscribed) return fail_command(subscribed.failure());
  // On stderr, so stdout holds only the messages; scripts wait for it before publishing.
  std::cerr << "prismctl: subscribed to " << topic << "\n";
  while (count == 0 || seen < count) {
    if (auto polled = client.poll(std::chrono::seconds(1)); !polled) return fail(polled.error());
    if (!client.connected()) return fail("session closed: " + client.close_reason());
  }
  return 0;
}

int run_keygen(const std::string& dir, const Options& opts) {
  namespace crypto = prism::net::crypto;
  const std::filesystem::path out(dir);
  const auto pair = crypto::KeyPair::generate();
  if (auto written = crypto::write_key_pair(out / crypto::kServerPrivateKeyFile,
                                            out / crypto::kServerPublicKeyFile, pair);
      !written) {
    return fail(written.error());
  }
  const std::string public_key = crypto::encode_public_key(pair.public_key);
  if (opts.json) {
    std::cout << nlohmann::json{{"public_key", public_key},
                                {"private_key_file", (out / crypto::kServerPrivateKeyFile).string()}}
                     .dump()
              << "\n";
  } else {
    std::cout << "wrote " << (out / crypto::kServerPrivateKeyFile).string() << " (mode 0600) and "
              << (out / crypto::kServerPublicKeyFile).string() << "\npublic key " << public_key
              << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  CLI::App app{"prismctl: query and manage a running prismd over its UDP port."};
  app.footer(
      "Exit status: 0 on success, 1 when there was no usable answer (server unreachable,\n"
      "bad arguments, unknown service or method), 2 when the server answered a status\n"
      "other than OK.\n");
  app.require_subcommand(1);
  // Global options are accepted after the command too (prismctl ping --json).
  app.fallthrough();
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "prismctl: " + std::string(e.what()) + " (see --help)\n";
  });

  app.add_option("--server", opts.server, "prismd's UDP address, HOST:PORT or [IPV6]:PORT")
      ->capture_default_str();
  app.add_option("--timeout-ms", opts.timeout_ms, "How long to wait for each reply")
      ->check(CLI::Range(1, 3'600'000))
      ->capture_default_str();
  app.add_flag("--json", opts.json, "Print machine-readable JSON on stdout");
  app.add_option("--server-key", opts.server_key,
                 "The server's public key, prism1:<hex>, or its server.pub file "
                 "(default: $PRISM_SERVER_KEY, else found through --config)");
  app.add_option("--token-file", opts.token_file,
                 "The admin token file (default: the server's, found through --config)");
  app.add_option("--config", opts.config_path,
                 "The server's prism.yaml: its public key is server.pub beside server.key "
                 "(default: build/state/ beside this prismctl, else /etc/prism/prism.yaml)");

  auto* ping = app.add_subcommand("ping", "Measure the round-trip time to prismd");
  auto* plugins = app.add_subcommand("plugins", "List loaded plugins: name, version, packet ids, counters");
  auto* status = app.add_subcommand("status", "Show server version, uptime, workers and counters");
  auto* call = app.add_subcommand("call", "Send one request to SERVICE.METHOD and print the reply");
  call->add_option("service", opts.service, "Plugin name, as listed by `prismctl plugins`")->required();
  call->add_option("method", opts.method, "Method name within the plugin")->required();
  call->add_option("payload", opts.payload, "Request payload as text (default: empty)");
  call->add_option("--service-token-file", opts.token_source,
                   "Log in to SERVICE first with the token in this file; - reads a line from "
                   "standard input (default: $PRISM_SERVICE_TOKEN, if set)");
  call->add_option("--token", opts.token,
                   "The same with the token itself (other local users can see it in ps)");

  auto* hash = app.add_subcommand(
      "hash-token",
      "Print the token_hash line for etc/plugins.d/<plugin>.yaml of the token read from "
      "standard input (or from FILE)");
  std::string token_file_to_hash = "-";
  hash->add_option("file", token_file_to_hash, "A file holding the token; - or none: standard input");

  std::string plugin_path;
  std::string plugin_name;
  auto* load = app.add_subcommand("load", "Load a plugin .so (a path on the server's machine)");
  load->add_option("path", plugin_path, "Path of the .so on the server")->required();
  auto* unload = app.add_subcommand("unload", "Unload a plugin once its requests finish");
  unload->add_option("name", plugin_name, "Plugin name")->required();
  auto* reload = app.add_subcommand(
      "reload", "Replace a plugin with a new version without dropping a request");
  reload->add_option("name", plugin_name, "Plugin name")->required();
  reload->add_option("path", plugin_path, "New .so (default: the file it was loaded from)");
  auto* stats = app.add_subcommand("stats", "Print the server's metrics (Prometheus text)");
  std::string topic;
  uint64_t count = 0;
  auto* subscribe = app.add_subcommand(
      "subscribe", "Print every message published to TOPIC, one line each, as it arrives");
  subscribe->add_option("topic", topic, "The topic: 1-200 printable ASCII characters, no spaces")
      ->required();
  subscribe->add_option("--count", count, "Exit after this many messages (default: never)");
  std::string message;
  auto* publish = app.add_subcommand("publish", "Publish one message to TOPIC");
  publish->add_option("topic", topic, "The topic")->required();
  publish->add_option("message", message, "The message as text (default: empty)");
  RoomsArgs rooms_args;
  auto* rooms = app.add_subcommand("rooms", "Manage the rooms service's instances (docs/rooms.md)");
  rooms->require_subcommand(1);
  auto* rooms_create = rooms->add_subcommand("create", "Create an instance");
  rooms_create->add_option("json", rooms_args.body,
                           R"(The instance as JSON ({"type","name","id","limits","channels",...}))");
  rooms_create->add_option("--id", rooms_args.id, "Its id (default: a UUID)");
  rooms_create->add_option("--type", rooms_args.type, "Its type (default: default)");
  rooms_create->add_option("--name", rooms_args.name, "Its name (default: the id)");
  rooms_create->add_option("--channel", rooms_args.channels,
                           "A channel NAME:TYPE (accumulative or collaborative); repeatable");
  auto* rooms_list = rooms->add_subcommand("list", "List the instances");
  std::vector<std::pair<CLI::App*, std::string>> rooms_by_id;
  for (const char* action : {"show", "stop", "start", "delete"}) {
    auto* sub = rooms->add_subcommand(action, std::string(action) + " one instance");
    sub->add_option("id", rooms_args.id, "The instance's id")->required();
    rooms_by_id.emplace_back(sub, action);
  }
  auto* config = app.add_subcommand("config", "Configuration commands");
  auto* config_check = config->add_subcommand(
      "check", "Validate the server's config file and plugins.d as they are on disk now");
  config->require_subcommand(1);

  auto* cluster = app.add_subcommand("cluster", "The cluster this node belongs to (docs/operations.md)");
  cluster->require_subcommand(1);
  auto* cluster_nodes = cluster->add_subcommand(
      "nodes", "List the live nodes: id, region, addresses, version, age of the last heartbeat, load");

  auto* keygen = app.add_subcommand(
      "keygen", "Write a new server key pair (server.key, mode 0600, and server.pub) to a directory");
  std::string key_dir = ".";
  keygen->add_option("--out-dir", key_dir, "Directory for server.key and server.pub")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 1 as the footer says.
    return app.exit(e) == 0 ? 0 : kExitFailure;
  }

  // keygen works offline: no server involved.
  if (keygen->parsed()) return run_keygen(key_dir, opts);
  if (hash->parsed()) {
    auto token = read_secret(token_file_to_hash, nullptr);
    if (!token) return fail(token.error());
    if (token->empty()) return fail("the token is empty");
    // docs/security.md: a locked-out address still logs in with the right token, so the
    // lockout does not bound guessing; only a token's length does.
    if (token->size() < 16) {
      std::cerr << "prismctl: warning: a token of " << token->size()
                << " characters can be guessed; use 16 or more random characters\n";
    }
    std::cout << "token_hash: \"" << prism::hash_token(*token) << "\"\n";
    return 0;
  }

  auto client = open_client(opts, !ping->parsed());
  if (!client) return fail(client.error());
  if (ping->parsed()) return run_ping(*client, opts);
  if (plugins->parsed()) return run_plugins(*client, opts);
  if (status->parsed()) return run_status(*client, opts);
  if (call->parsed()) return run_call(*client, opts);
  if (cluster_nodes->parsed()) return run_cluster_nodes(*client, opts);
  if (rooms_create->parsed()) return run_rooms(*client, "create", rooms_args, opts);
  if (rooms_list->parsed()) return run_rooms(*client, "list", rooms_args, opts);
  for (const auto& [sub, action] : rooms_by_id) {
    if (sub->parsed()) return run_rooms(*client, action, rooms_args, opts);
  }
  if (load->parsed()) return print_plugin(client->load_plugin(plugin_path), opts, "loaded");
  if (reload->parsed()) {
    return print_plugin(client->reload_plugin(plugin_name, plugin_path), opts, "reloaded");
  }
  if (unload->parsed()) return print_done(client->unload_plugin(plugin_name), opts, "unloaded " + plugin_name);
  if (config_check->parsed()) return print_done(client->config_check(), opts, "configuration is valid");
  if (subscribe->parsed()) return run_subscribe(*client, topic, count, opts);
  if (publish->parsed()) return print_done(client->publish(topic, message), opts, "published to " + topic);
  if (stats->parsed()) {
    auto text = client->stats();
    if (!text) return fail(text.error());
    if (opts.json) {
      print_json({{"prometheus", *text}});
    } else {
      std::cout << *text;
    }
    return 0;
  }
  return fail("no command given (see --help)");
}
