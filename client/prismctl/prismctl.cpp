// prismctl: the admin CLI for a running prismd (ping, plugins, status, call).
// Every failure is one line on stderr and a non-zero exit; --json makes stdout
// machine-readable.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "net/crypto/key_file.hpp"
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

Expected<Client> open_client(const Options& opts) {
  auto endpoint = prism::client::parse_endpoint(opts.server);
  if (!endpoint) return prism::Error{endpoint.error()};
  return Client::connect(*endpoint, std::chrono::milliseconds(opts.timeout_ms));
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

  auto* ping = app.add_subcommand("ping", "Measure the round-trip time to prismd");
  auto* plugins = app.add_subcommand("plugins", "List loaded plugins: name, version, packet ids, counters");
  auto* status = app.add_subcommand("status", "Show server version, uptime, workers and counters");
  auto* call = app.add_subcommand("call", "Send one request to SERVICE.METHOD and print the reply");
  call->add_option("service", opts.service, "Plugin name, as listed by `prismctl plugins`")->required();
  call->add_option("method", opts.method, "Method name within the plugin")->required();
  call->add_option("payload", opts.payload, "Request payload as text (default: empty)");

  auto* keygen = app.add_subcommand(
      "keygen", "Write a new server key pair (server.key, mode 0600, and server.pub) to a directory");
  std::string key_dir = ".";
  keygen->add_option("--out-dir", key_dir, "Directory for server.key and server.pub")
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  // keygen works offline: no server involved.
  if (keygen->parsed()) return run_keygen(key_dir, opts);

  auto client = open_client(opts);
  if (!client) return fail(client.error());
  if (ping->parsed()) return run_ping(*client, opts);
  if (plugins->parsed()) return run_plugins(*client, opts);
  if (status->parsed()) return run_status(*client, opts);
  if (call->parsed()) return run_call(*client, opts);
  return fail("no command given (see --help)");
}
