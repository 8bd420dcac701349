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
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "net/crypto/key_file.hpp"
#include "net/crypto/token_hash.hpp"
#include "prism/client.hpp"

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
  std::string token;        // --token: log in to the called service first
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

Expected<std::string> read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return prism::make_error(path.string() + ": cannot read");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

// "prism1:<hex>" as given, or the contents of a server.pub file.
Expected<prism::client::ServerKey> key_from(const std::string& text_or_path) {
  if (text_or_path.starts_with("prism1:")) return prism::net::crypto::decode_public_key(text_or_path);
  auto text = read_text(text_or_path);
  if (!text) return prism::Error{text.error()};
  auto key = prism::net::crypto::decode_public_key(*text);
  if (!key) return prism::make_error(text_or_path + ": " + key.error());
  return key;
}

// The public key next to the private key a config names (server.key → server.pub).
std::filesystem::path public_key_of(const prism::config::Config& config) {
  if (config.key_file.empty()) {
    return std::filesystem::path(config.state_dir) / prism::net::crypto::kServerPublicKeyFile;
  }
  return std::filesystem::path(config.key_file).replace_extension(".pub");
}

Expected<prism::client::ServerKey> key_from_config(const std::filesystem::path& config_path) {
  auto config = prism::config::load_file(config_path);
  if (!config) return prism::Error{config.error()};
  const auto pub = public_key_of(*config);
  auto key = key_from(pub.string());
  if (!key) return prism::make_error(key.error() + " (the public key of " + config_path.string() + ")");
  return key;
}

// docs/operations.md "Server key": where prismctl looks for the server's public key.
Expected<prism::client::ServerKey> find_server_key(const Options& opts) {
  if (!opts.server_key.empty()) return key_from(opts.server_key);
  if (const char* env = std::getenv("PRISM_SERVER_KEY"); env != nullptr && *env != '\0') {
    return key_from(env);
  }
  if (!opts.config_path.empty()) return key_from_config(opts.config_path);
  std::vector<std::filesystem::path> tried;
  // `make run` keeps prismd's state in build/state, beside build/prismctl.
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto dev = exe.parent_path() / "state" / prism::net::crypto::kServerPublicKeyFile;
    if (std::filesystem::exists(dev)) return key_from(dev.string());
    tried.push_back(dev);
  }
  const std::filesystem::path system_config = "/etc/prism/prism.yaml";
  if (std::filesystem::exists(system_config)) return key_from_config(system_config);
  tried.push_back(system_config);
  std::string where;
  for (const auto& t : tried) where += (where.empty() ? "" : ", ") + t.string();
  return prism::make_error(
      "no server key: pass --server-key prism1:... (prismd logs it at start as "
      "event=server_key) or --config with the server's prism.yaml; looked in " + where);
}

Expected<Client> open_client(const Options& opts) {
  auto endpoint = prism::client::parse_endpoint(opts.server);
  if (!endpoint) return prism::Error{endpoint.error()};
  auto key = find_server_key(opts);
  if (!key) return prism::Error{key.error()};
  prism::client::ConnectOptions options;
  options.server_key = *key;
  options.timeout = std::chrono::milliseconds(opts.timeout_ms);
  return Client::connect(*endpoint, options);
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

int run_plugins(Client& client, const Options& opts) {
  auto list = client.list_plugins();
  if (!list) return fail(list.error());
  if (opts.json) {
    json plugins = json::array();
    for (const auto& p : list->plugins()) plugins.push_back(plugin_json(p));
    print_json({{"plugins", std::move(plugins)}});
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"NAME", "VERSION", "RANGE", "REQUESTS", "ERRORS", "FILE"}};
  for (const auto& p : list->plugins()) {
    rows.push_back({p.name(), p.version(),
                    std::to_string(p.first_packet_id()) + "-" + std::to_string(p.last_packet_id()),
                    std::to_string(p.requests()), std::to_string(p.errors()), p.file()});
  }
  print_table(rows);
  if (list->plugins().empty()) std::cout << "(no plugins loaded)\n";
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
    print_json({{"version", status->version()},
                {"uptime_ms", status->uptime_ms()},
                {"workers", status->workers()},
                {"datagrams_received", status->datagrams_received()},
                {"datagrams_dropped", status->datagrams_dropped()},
                {"requests", status->requests()}});
    return 0;
  }
  print_table({{"server", prism::client::to_string(client.endpoint())},
               {"version", status->version()},
               {"uptime", format_uptime(status->uptime_ms())},
               {"workers", std::to_string(status->workers())},
               {"datagrams received", std::to_string(status->datagrams_received())},
               {"datagrams dropped", std::to_string(status->datagrams_dropped())},
               {"requests", std::to_string(status->requests())}});
  return 0;
}

int run_call(Client& client, const Options& opts) {
  auto packet_id = client.resolve(opts.service, opts.method);
  if (!packet_id) return fail(packet_id.error());
  if (!opts.token.empty()) {
    auto login = client.login(opts.service, opts.token);
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
  call->add_option("--token", opts.token, "Log in to SERVICE with this token before calling");

  auto* hash = app.add_subcommand(
      "hash-token", "Print the token_hash line for etc/plugins.d/<plugin>.yaml of a token");
  std::string token_to_hash;
  hash->add_option("token", token_to_hash, "The token clients will present")->required();

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
    std::cout << "token_hash: \"" << prism::net::crypto::hash_token(token_to_hash) << "\"\n";
    return 0;
  }

  auto client = open_client(opts);
  if (!client) return fail(client.error());
  if (ping->parsed()) return run_ping(*client, opts);
  if (plugins->parsed()) return run_plugins(*client, opts);
  if (status->parsed()) return run_status(*client, opts);
  if (call->parsed()) return run_call(*client, opts);
  return fail("no command given (see --help)");
}
