// impairment_proxy: tests/integration/impairment_proxy.hpp as a program, for the impaired
// rows of `make bench` (tests/bench/run_impaired_bench.sh): one UDP proxy in front of a
// server, the same loss, duplication and reordering both ways, until SIGTERM or SIGINT.
#include <CLI/CLI.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>

#include "impairment_proxy.hpp"

namespace {

struct Upstream {
  sockaddr_storage address{};
  socklen_t len = 0;
};

// "A.B.C.D:PORT" or "[v6]:PORT", numeric only: the proxy's upstream is a local server.
std::optional<Upstream> parse_upstream(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  std::string host = text.substr(0, colon);
  const std::string port_text = text.substr(colon + 1);
  if (port_text.find_first_not_of("0123456789") != std::string::npos || port_text.size() > 5) {
    return std::nullopt;
  }
  const unsigned long port = std::stoul(port_text);
  if (port == 0 || port > 65535) return std::nullopt;

  Upstream u;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    auto& v6 = reinterpret_cast<sockaddr_in6&>(u.address);
    if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) != 1) return std::nullopt;
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(static_cast<uint16_t>(port));
    u.len = sizeof v6;
    return u;
  }
  auto& v4 = reinterpret_cast<sockaddr_in&>(u.address);
  if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) != 1) return std::nullopt;
  v4.sin_family = AF_INET;
  v4.sin_port = htons(static_cast<uint16_t>(port));
  u.len = sizeof v4;
  return u;
}

}  // namespace

int main(int argc, char** argv) {
  std::string upstream_text;
  prism::test::Impairment impairment;
  int64_t delay_us = 0;
  int64_t jitter_us = 0;
  CLI::App app{
      "impairment_proxy: a UDP proxy on loopback in front of --upstream that loses,\n"
      "duplicates, reorders and delays datagrams, the same in both directions. Prints\n"
      "event=listening udp=HOST:PORT on stderr once bound, runs until SIGTERM or SIGINT,\n"
      "then prints its counters on stderr as one event=stopped line."};
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "impairment_proxy: " + std::string(e.what()) + " (see --help)\n";
  });
  app.add_option("--upstream", upstream_text, "The server, numeric HOST:PORT ([v6]:PORT for IPv6)")
      ->required();
  app.add_option("--loss", impairment.loss, "Fraction of datagrams dropped")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--duplicate", impairment.duplicate, "Fraction of datagrams sent twice")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--reorder", impairment.reorder,
                 "Fraction of datagrams held back until a later one of their direction leaves\n"
                 "(at most 20 ms)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--delay-us", delay_us, "Microseconds added to every datagram")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--jitter-us", jitter_us,
                 "Up to this many microseconds more, uniform per datagram (reorders by itself)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--spare-first", impairment.spare_first,
                 "The first N datagrams of each client address, each way, pass untouched\n"
                 "(connection setup)")
      ->capture_default_str();
  app.add_option("--seed", impairment.seed,
                 "Seed of the client-to-server draws; server to client uses seed + 1")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const auto upstream = parse_upstream(upstream_text);
  if (!upstream) {
    std::fprintf(stderr, "impairment_proxy: --upstream must be numeric HOST:PORT, got '%s'\n",
                 upstream_text.c_str());
    return 2;
  }
  impairment.delay = std::chrono::microseconds(delay_us);
  impairment.jitter = std::chrono::microseconds(jitter_us);
  prism::test::Impairment back = impairment;
  back.seed = impairment.seed + 1;

  // Blocked before the proxy's thread starts, so it inherits the mask and the signals
  // wait for sigwait below instead of ending the process mid-datagram.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr); rc != 0) {
    std::fprintf(stderr, "impairment_proxy: pthread_sigmask: %s\n", std::strerror(rc));
    return 1;
  }

  std::optional<prism::test::ImpairmentProxy> proxy;
  try {
    proxy.emplace(upstream->address, upstream->len, impairment, back);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "impairment_proxy: %s\n", e.what());
    return 1;
  }
  const char* listen_host = upstream->address.ss_family == AF_INET6 ? "[::1]" : "127.0.0.1";
  std::fprintf(stderr,
               "event=listening udp=%s:%u upstream=%s loss=%g duplicate=%g reorder=%g "
               "delay_us=%lld jitter_us=%lld seed=%llu\n",
               listen_host, static_cast<unsigned>(proxy->port()), upstream_text.c_str(),
               impairment.loss, impairment.duplicate, impairment.reorder,
               static_cast<long long>(delay_us), static_cast<long long>(jitter_us),
               static_cast<unsigned long long>(impairment.seed));

  int received = 0;
  if (const int rc = sigwait(&stop_signals, &received); rc != 0) {
    std::fprintf(stderr, "impairment_proxy: sigwait: %s\n", std::strerror(rc));
    return 1;
  }
  const auto c = proxy->counters();
  proxy.reset();  // stops and joins the proxy's thread
  std::fprintf(stderr,
               "event=stopped signal=%s dropped=%llu duplicated=%llu reordered=%llu "
               "c2s_in=%llu c2s_out=%llu s2c_in=%llu s2c_out=%llu\n",
               received == SIGINT ? "SIGINT" : "SIGTERM", static_cast<unsigned long long>(c.dropped),
               static_cast<unsigned long long>(c.duplicated),
               static_cast<unsigned long long>(c.reordered),
               static_cast<unsigned long long>(c.c2s_in), static_cast<unsigned long long>(c.c2s_out),
               static_cast<unsigned long long>(c.s2c_in),
               static_cast<unsigned long long>(c.s2c_out));
  return 0;
}
