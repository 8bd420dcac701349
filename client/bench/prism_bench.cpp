// prism-bench: load generator for prismd over the secure transport (libprism-client
// sessions, docs/protocol.md §5), for a plain UDP echo server (--baseline), and for the
// handshake path (--handshakes), or holds idle sessions open for a memory measurement
// (--hold). Prints one result line per run. The loads live in
// baseline_load.hpp, secure_load.hpp and handshake_load.hpp, what they share in load.hpp.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "baseline_load.hpp"
#include "handshake_load.hpp"
#include "load.hpp"
#include "prism/client.hpp"
#include "secure_load.hpp"
#include "workload.hpp"

namespace {

using namespace prism::bench;

int fail(std::string_view reason) {
  std::cerr << "prism-bench: " << reason << "\n";
  return 1;
}

// For the result line.
std::string_view mode_name(Mode mode) {
  switch (mode) {
    case Mode::kSecure: return "secure";
    case Mode::kBaseline: return "baseline";
    case Mode::kHandshake: return "handshake";
  }
  return "?";
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  double connect_timeout_s = 2.0;  // prism::client::ConnectOptions' default
  CLI::App app{
      "prism-bench: load generator for prismd. By default, --clients sessions over the\n"
      "secure transport (libprism-client) each keep --inflight requests in flight. With\n"
      "--baseline, the same load as raw datagrams against a plain UDP echo server\n"
      "(udp_echo_baseline). With --handshakes, --clients threads open and close sessions."};
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "prism-bench: " + std::string(e.what()) + " (see --help)\n";
  });
  app.add_option("--server", opts.server, "Target HOST:PORT")->capture_default_str();
  app.add_option("--server-key", opts.server_key,
                 "The server's public key, prism1:<hex>, or its server.pub file (not needed "
                 "with --baseline)");
  app.add_option("--clients", opts.clients,
                 "Sessions (UDP sockets with --baseline; concurrent connects with --handshakes)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--inflight", opts.inflight, "Requests in flight per session or socket")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--duration", opts.duration_s, "Seconds measured (fractions allowed)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--warmup", opts.warmup_s, "Seconds of load before measuring")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--packet-id", opts.packet_id, "Packet id of the request (101 = default.echo)")
      ->capture_default_str();
  app.add_option("--payload-size", opts.payload_size, "Request payload bytes")
      ->check(CLI::Range(size_t{0}, size_t{60000}))
      ->capture_default_str();
  app.add_option("--delivery", opts.delivery, "Delivery mode of the requests (protocol.md §5.6)")
      ->check(CLI::IsMember({"ordered", "unordered", "unreliable"}))
      ->capture_default_str();
  app.add_option("--rate", opts.rate,
                 "Open loop: total requests/s on a fixed schedule (latency counted from the\n"
                 "scheduled time); 0: closed loop, as fast as the replies come")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--threads", opts.threads, "Threads, each driving its share of the sessions")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_flag("--baseline", opts.baseline,
               "Raw datagrams against a plain UDP echo server instead of prismd sessions");
  app.add_option("--handshakes", opts.handshakes_s,
                 "Handshake mode: open and close sessions for this many seconds (measured "
                 "after --warmup), --clients at a time, one thread each")
      ->check(CLI::PositiveNumber);
  app.add_option("--workload", opts.workload,
                 "What the requests carry: echo (--packet-id, --payload-size), practice-record\n"
                 "(a new ranked 1v1 match each), practice-top10 (a queue's top-10 Elo board)")
      ->check(CLI::IsMember(prism::bench::workload_names()))
      ->capture_default_str();
  app.add_option("--players", opts.players, "practice workloads: players created and matched")
      ->check(CLI::Range(2u, 1000000u))
      ->capture_default_str();
  app.add_option("--connect-timeout", connect_timeout_s,
                 "Seconds each session may take to connect, its INITIAL resent on a doubling\n"
                 "timer (docs/protocol.md §5.2): more for a lossy path")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--label", opts.label, "Name printed with the result")->capture_default_str();
  app.add_flag("--json", opts.json, "Print the result as one JSON object");
  bool hold = false;
  app.add_flag("--hold", hold,
               "Open --clients sessions, each confirmed by a PING, print one line, then keep\n"
               "them open without traffic until stdin ends (what an idle session costs)");
  CLI11_PARSE(app, argc, argv);

  const Mode mode = opts.mode();
  if (mode == Mode::kHandshake && opts.baseline) {
    return fail("--handshakes and --baseline exclude each other");
  }
  auto endpoint = prism::client::parse_endpoint(opts.server);
  if (!endpoint) return fail(endpoint.error());
  prism::client::ConnectOptions connect_options;
  connect_options.timeout = std::chrono::milliseconds(std::llround(connect_timeout_s * 1000.0));
  if (mode != Mode::kBaseline) {
    if (opts.server_key.empty()) {
      return fail("--server-key is required: prism1:<hex> (prismd logs it at start as "
                  "event=server_key) or the server.pub file in prismd's state directory");
    }
    auto key = prism::client::read_server_key(opts.server_key);
    if (!key) return fail(key.error());
    connect_options.server_key = *key;
  }
  const std::string peer = prism::client::to_string(*endpoint);
  if (hold) {
    if (mode != Mode::kSecure) return fail("--hold excludes --baseline and --handshakes");
    std::vector<prism::client::Client> held;
    held.reserve(static_cast<size_t>(opts.clients));
    for (int i = 0; i < opts.clients; ++i) {
      auto session = prism::client::Client::connect(*endpoint, connect_options);
      if (!session) return fail("session " + std::to_string(i) + ": " + session.error());
      if (auto pong = session->ping(); !pong) return fail("session " + std::to_string(i) + ": " + pong.error());
      held.push_back(std::move(*session));
    }
    std::printf("label=%s mode=hold sessions=%zu\n", opts.label.c_str(), held.size());
    std::fflush(stdout);
    for (std::string line; std::getline(std::cin, line);) {
    }
    return 0;  // the sessions close (CLOSE) as `held` goes
  }

  // Every mode: one runner per thread, each with its own Stats, merged at the end.
  std::vector<std::unique_ptr<BaselineLoad>> baseline_loads;
  std::vector<std::unique_ptr<SecureLoad>> secure_loads;
  std::vector<std::unique_ptr<HandshakeLoad>> handshake_loads;
  int threads = std::min(opts.threads, opts.clients);
  if (mode == Mode::kBaseline) {
    auto addresses = prism::client::resolve_addresses(*endpoint);
    if (!addresses) return fail(addresses.error());
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    std::mt19937_64 rng(seed);  // connection ids
    for (int t = 0; t < threads; ++t) {
      // Thread t drives sockets t, t + T, t + 2T, ...
      const int sockets = opts.clients / threads + (t < opts.clients % threads ? 1 : 0);
      const double rate = opts.rate * sockets / opts.clients;
      auto load = std::make_unique<BaselineLoad>(opts, peer);
      if (auto opened = load->open(addresses->front(), sockets, rate, rng); !opened) {
        return fail(opened.error());
      }
      baseline_loads.push_back(std::move(load));
    }
  } else if (mode == Mode::kSecure) {
    const prism::bench::WorkloadOptions workload = opts.workload_options();
    {
      auto session = prism::client::Client::connect(*endpoint, connect_options);
      if (!session) return fail(session.error());
      if (auto prepared = prism::bench::prepare_workload(workload, *session); !prepared) {
        return fail("preparing the " + opts.workload + " workload: " + prepared.error());
      }
    }
    for (int t = 0; t < threads; ++t) {
      const int sessions = opts.clients / threads + (t < opts.clients % threads ? 1 : 0);
      const double rate = opts.rate * sessions / opts.clients;
      auto load = std::make_unique<SecureLoad>(opts, peer);
      if (auto opened = load->open(*endpoint, connect_options, sessions, rate,
                                   prism::bench::make_workload(workload, t));
          !opened) {
        return fail(opened.error());
      }
      secure_loads.push_back(std::move(load));
    }
  } else {
    threads = opts.clients;
    for (int t = 0; t < threads; ++t) {
      handshake_loads.push_back(std::make_unique<HandshakeLoad>(*endpoint, connect_options));
    }
  }

  const double measured_s = mode == Mode::kHandshake ? opts.handshakes_s : opts.duration_s;
  Window window;
  window.start_ns = now_ns();
  window.measure_ns = window.start_ns + static_cast<int64_t>(opts.warmup_s * 1e9);
  window.end_ns = window.measure_ns + static_cast<int64_t>(measured_s * 1e9);
  std::vector<std::thread> workers;
  for (auto& load : baseline_loads) workers.emplace_back([&load, &window] { load->run(window); });
  for (auto& load : secure_loads) workers.emplace_back([&load, &window] { load->run(window); });
  for (auto& load : handshake_loads) workers.emplace_back([&load, &window] { load->run(window); });
  for (auto& w : workers) w.join();

  Stats total;
  for (const auto& load : baseline_loads) {
    if (!load->error().empty()) return fail(load->error());
    total.merge(load->stats());
  }
  for (const auto& load : secure_loads) {
    if (!load->error().empty()) return fail(load->error());
    total.merge(load->stats());
  }
  for (const auto& load : handshake_loads) total.merge(load->stats());

  const double seconds = static_cast<double>(window.end_ns - window.measure_ns) / 1e9;
  const double rps = static_cast<double>(total.completed) / seconds;
  const double p50 = total.latency.quantile_ns(0.50) / 1e3;
  const double p99 = total.latency.quantile_ns(0.99) / 1e3;
  const double p999 = total.latency.quantile_ns(0.999) / 1e3;
  auto round1 = [](double v) { return std::round(v * 10.0) / 10.0; };
  // Handshake mode counts sessions opened and closed; the others count requests.
  const char* count_key = mode == Mode::kHandshake ? "handshakes" : "requests";
  const char* rate_key = mode == Mode::kHandshake ? "handshakes_per_s" : "rps";

  if (opts.json) {
    nlohmann::json result = {
        {"label", opts.label},         {"mode", mode_name(mode)},
        {"server", opts.server},       {count_key, total.completed},
        {"seconds", seconds},          {rate_key, round1(rps)},
        {"p50_us", round1(p50)},       {"p99_us", round1(p99)},
        {"p999_us", round1(p999)},     {"timeouts", total.timeouts},
        {"errors", total.errors},      {"clients", opts.clients},
        {"threads", threads},          {"rate", opts.rate}};
    if (mode != Mode::kHandshake) {
      result["inflight"] = opts.inflight;
      result["payload_size"] = opts.payload_size;
      result["packet_id"] = opts.packet_id;
      result["workload"] = opts.workload;
      if (mode == Mode::kSecure) result["delivery"] = opts.delivery;
    }
    if (!total.first_error.empty()) result["first_error"] = total.first_error;
    std::cout << result.dump() << "\n";
  } else {
    std::printf(
        "label=%s mode=%s %s=%llu seconds=%.3f %s=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
        "timeouts=%llu errors=%llu\n",
        opts.label.c_str(), std::string(mode_name(mode)).c_str(), count_key,
        static_cast<unsigned long long>(total.completed), seconds, rate_key, rps, p50, p99, p999,
        static_cast<unsigned long long>(total.timeouts),
        static_cast<unsigned long long>(total.errors));
  }
  std::fflush(stdout);
  if (total.completed == 0) return fail("nothing completed against " + opts.server);
  if (total.errors > 0) {
    return fail(std::to_string(total.errors) + " errors against " + opts.server +
                (total.first_error.empty() ? "" : "; the first: " + total.first_error));
  }
  return 0;
}
