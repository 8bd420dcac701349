// Proves the impairment proxy does what integration tests rely on: a clean path is
// clean, and loss, duplication, reordering, delay and pause do what they say.
#include "impairment_proxy.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace prism::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr size_t kPayloadSize = 32;  // a sequence number, then padding
constexpr size_t kReplySize = kPayloadSize + 2;  // the echo appends the source port it saw
// Datagrams a client keeps unanswered: well under any socket buffer, so the kernel
// never drops and every loss the tests see is the proxy's.
constexpr uint32_t kWindow = 64;
constexpr auto kDeadline = 20s;
// How often a waiting client re-reads the proxy's counters when no reply wakes it.
constexpr auto kCounterTick = 5ms;

sockaddr_storage loopback(int family, uint16_t port, socklen_t& len) {
  sockaddr_storage addr{};
  if (family == AF_INET) {
    auto& v4 = reinterpret_cast<sockaddr_in&>(addr);
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof v4;
  } else {
    auto& v6 = reinterpret_cast<sockaddr_in6&>(addr);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    v6.sin6_addr = in6addr_loopback;
    len = sizeof v6;
  }
  return addr;
}

uint16_t port_of(const sockaddr_storage& addr) {
  return ntohs(addr.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in&>(addr).sin_port
                                         : reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
}

// A UDP echo server on its own thread. Each reply is the datagram followed by the
// source port it came from, so a test can see which upstream socket the proxy used.
class EchoServer {
 public:
  explicit EchoServer(int family = AF_INET) {
    fd_ = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("echo server: socket failed");
    socklen_t len = 0;
    address_ = loopback(family, 0, len);
    if (bind(fd_, reinterpret_cast<const sockaddr*>(&address_), len) != 0) {
      close(fd_);
      throw std::runtime_error("echo server: bind failed");
    }
    address_len_ = sizeof address_;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address_), &address_len_);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    thread_ = std::thread([this] { run(); });
  }
  ~EchoServer() {
    stopping_.store(true);
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = write(wake_fd_, &one, sizeof one);
    thread_.join();
    close(fd_);
    close(wake_fd_);
  }
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  const sockaddr_storage& address() const { return address_; }
  socklen_t address_len() const { return address_len_; }
  uint64_t echoed() const { return echoed_.load(); }

 private:
  void run() {
    std::vector<uint8_t> buf(ImpairmentProxy::kMaxDatagram);
    while (!stopping_.load()) {
      pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {fd_, POLLIN, 0}};
      if (poll(fds, 2, -1) <= 0 || fds[0].revents != 0) continue;
      for (;;) {
        sockaddr_storage from{};
        socklen_t from_len = sizeof from;
        const ssize_t n = recvfrom(fd_, buf.data(), buf.size() - 2, 0,
                                   reinterpret_cast<sockaddr*>(&from), &from_len);
        if (n < 0) break;
        const uint16_t port = htons(port_of(from));
        std::memcpy(buf.data() + n, &port, sizeof port);
        echoed_.fetch_add(1);  // before the reply, so a client holding it sees it counted
        sendto(fd_, buf.data(), static_cast<size_t>(n) + 2, 0,
               reinterpret_cast<const sockaddr*>(&from), from_len);
      }
    }
  }

  int fd_ = -1;
  int wake_fd_ = -1;
  sockaddr_storage address_{};
  socklen_t address_len_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> echoed_{0};
  std::thread thread_;
};

struct Arrival {
  uint32_t seq = 0;
  uint16_t upstream_port = 0;  // the source port the echo server saw
};

// A client socket connected to the proxy.
class Client {
 public:
  Client(int family, uint16_t proxy_port) {
    fd_ = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    socklen_t len = 0;
    const sockaddr_storage proxy = loopback(family, proxy_port, len);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<const sockaddr*>(&proxy), len) != 0) {
      throw std::runtime_error("client: socket/connect failed");
    }
  }
  ~Client() { close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void send_seq(uint32_t seq) const {
    uint8_t payload[kPayloadSize] = {};
    const uint32_t wire = htonl(seq);
    std::memcpy(payload, &wire, sizeof wire);
    ASSERT_EQ(send(fd_, payload, sizeof payload, 0), static_cast<ssize_t>(sizeof payload));
  }

  // Waits up to `wait` for the socket to become readable, then reads all there is.
  void receive(std::chrono::milliseconds wait, std::vector<Arrival>& out) const {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(wait.count())) <= 0) return;
    uint8_t reply[kReplySize + 1];
    for (;;) {
      const ssize_t n = recv(fd_, reply, sizeof reply, 0);
      if (n < 0) return;
      if (n != static_cast<ssize_t>(kReplySize)) continue;
      uint32_t seq = 0;
      uint16_t port = 0;
      std::memcpy(&seq, reply, sizeof seq);
      std::memcpy(&port, reply + kPayloadSize, sizeof port);
      out.push_back({ntohl(seq), ntohs(port)});
    }
  }

 private:
  int fd_ = -1;
};

// Sends `count` numbered datagrams through the proxy, never more than kWindow
// unaccounted for, and returns the replies in arrival order. A datagram is accounted
// for once its reply arrived or the proxy counted a drop; the exchange ends when all
// are, or at kDeadline.
std::vector<Arrival> exchange(const Client& client, const ImpairmentProxy& proxy,
                              uint32_t count) {
  const uint64_t dropped_before = proxy.counters().dropped;
  std::vector<Arrival> arrivals;
  std::set<uint32_t> answered;
  uint32_t sent = 0;
  const auto end = Clock::now() + kDeadline;
  while (Clock::now() < end) {
    const uint64_t accounted = answered.size() + (proxy.counters().dropped - dropped_before);
    if (sent == count && accounted >= count) break;
    while (sent < count && sent - accounted < kWindow) client.send_seq(sent++);
    const size_t before = arrivals.size();
    client.receive(std::chrono::duration_cast<std::chrono::milliseconds>(kCounterTick), arrivals);
    for (size_t i = before; i < arrivals.size(); ++i) answered.insert(arrivals[i].seq);
  }
  return arrivals;
}

std::map<uint32_t, int> times_seen(const std::vector<Arrival>& arrivals) {
  std::map<uint32_t, int> seen;
  for (const auto& a : arrivals) ++seen[a.seq];
  return seen;
}

bool in_send_order(const std::vector<Arrival>& arrivals) {
  return std::is_sorted(arrivals.begin(), arrivals.end(),
                        [](const Arrival& a, const Arrival& b) { return a.seq < b.seq; });
}

class ImpairmentProxyTest : public ::testing::Test {
 protected:
  EchoServer echo_;
};

TEST_F(ImpairmentProxyTest, CleanPathDeliversEveryDatagramOnceInOrder) {
  ImpairmentProxy proxy(echo_.address(), echo_.address_len(), {}, {});
  Client client(AF_INET, proxy.port());
  const auto arrivals = exchange(client, proxy, 1000);

  ASSERT_EQ(arrivals.size(), 1000u);
  for (uint32_t i = 0; i < arrivals.size(); ++i) ASSERT_EQ(arrivals[i].seq, i);
  const auto c = proxy.counters();
  EXPECT_EQ(c.c2s_in, 1000u);
  EXPECT_EQ(c.c2s_out, 1000u);
  EXPECT_EQ(c.s2c_in, 1000u);
  EXPECT_EQ(c.s2c_out, 1000u);
  EXPECT_EQ(c.dropped, 0u);
  EXPECT_EQ(c.duplicated, 0u);
  EXPECT_EQ(c.reordered, 0u);
}

TEST_F(ImpairmentProxyTest, OneWayLossDropsABinomialShareAndDuplicatesNothing) {
  ImpairmentProxy proxy(echo_.address(), echo_.address_len(), {.loss = 0.3, .seed = 7}, {});
  Client client(AF_INET, proxy.port());
  const auto arrivals = exchange(client, proxy, 1000);

  // 700 expected, standard deviation about 14.5: a band of roughly seven deviations.
  EXPECT_GE(arrivals.size(), 600u);
  EXPECT_LE(arrivals.size(), 800u);
  for (const auto& [seq, n] : times_seen(arrivals)) EXPECT_EQ(n, 1) << "seq=" << seq;
  EXPECT_TRUE(in_send_order(arrivals));
  const auto c = proxy.counters();
  EXPECT_EQ(c.dropped, 1000u - arrivals.size());
  EXPECT_EQ(c.s2c_in, arrivals.size());
  EXPECT_EQ(echo_.echoed(), arrivals.size());
}

TEST_F(ImpairmentProxyTest, DuplicationDeliversSomeDatagramsTwice) {
  ImpairmentProxy proxy(echo_.address(), echo_.address_len(), {.duplicate = 0.5, .seed = 3}, {});
  Client client(AF_INET, proxy.port());
  const auto arrivals = exchange(client, proxy, 1000);

  const auto seen = times_seen(arrivals);
  ASSERT_EQ(seen.size(), 1000u);
  const auto twice = std::count_if(seen.begin(), seen.end(), [](const auto& s) { return s.second == 2; });
  const auto more = std::count_if(seen.begin(), seen.end(), [](const auto& s) { return s.second > 2; });
  EXPECT_GT(twice, 0);
  EXPECT_EQ(more, 0);
  const auto c = proxy.counters();
  EXPECT_GT(c.duplicated, 0u);
  EXPECT_LE(static_cast<uint64_t>(twice), c.duplicated);
  EXPECT_EQ(c.dropped, 0u);
}

TEST_F(ImpairmentProxyTest, ReorderingChangesArrivalOrderButLosesNothing) {
  ImpairmentProxy proxy(echo_.address(), echo_.address_len(), {.reorder = 0.3, .seed = 11}, {});
  Client client(AF_INET, proxy.port());
  const auto arrivals = exchange(client, proxy, 1000);

  ASSERT_EQ(arrivals.size(), 1000u);
  for (const auto& [seq, n] : times_seen(arrivals)) EXPECT_EQ(n, 1) << "seq=" << seq;
  EXPECT_EQ(times_seen(arrivals).size(), 1000u);
  EXPECT_FALSE(in_send_order(arrivals));
  EXPECT_GT(proxy.counters().reordered, 0u);
  EXPECT_EQ(proxy.counters().dropped, 0u);
}

TEST_F(ImpairmentProxyTest, DelayAndJitterDeliverEverythingButNotInOrder) {
  const Impairment jittery{.delay = 1ms, .jitter = 3ms, .seed = 5};
  ImpairmentProxy proxy(echo_.address(), echo_.address_len(), jittery, jittery);
  Client client(AF_INET, proxy.port());
  const auto arrivals = exchange(client, proxy, 1000);

  ASSERT_EQ(arrivals.size(), 1000u);
  EXPECT_EQ(times_seen(arrivals).size(), 1000u);
  EXPECT_FALSE(in_send_order(arrivals));
}

TEST_F(ImpairmentProxyTest, EachClientAddressGetsItsOwnUpstreamPort) {
  ImpairmentProxy proxy(echo_.address(), echo_.address_len(), {}, {});
  Client first(AF_INET, proxy.port());
  Client second(AF_INET, proxy.port());
  const auto a = exchange(first, proxy, 10);
  const auto b = exchange(second, proxy, 10);
  const auto a_again = exchange(first, proxy, 10);

  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), 10u);
  ASSERT_EQ(a_again.size(), 10u);
  for (const auto& r : a) EXPECT_EQ(r.upstream_port, a.front().upstream_port);
  for (const auto& r : b) EXPECT_EQ(r.upstream_port, b.front().upstream_port);
  // A returning client keeps its upstream socket; a new source port is a new one.
  for (const auto& r : a_again) EXPECT_EQ(r.upstream_port, a.front().upstream_port);
  EXPECT_NE(a.front().upstream_port, b.front().upstream_port);
  EXPECT_NE(a.front().upstream_port, proxy.port());
}

TEST_F(ImpairmentProxyTest, PauseDropsEverythingUntilResumed) {
  ImpairmentProxy proxy(echo_.address(), echo_.address_len(), {}, {});
  Client client(AF_INET, proxy.port());
  proxy.pause(true);
  for (uint32_t i = 0; i < 20; ++i) client.send_seq(i);
  std::vector<Arrival> arrivals;
  const auto end = Clock::now() + kDeadline;
  while (proxy.counters().dropped < 20 && Clock::now() < end) {
    client.receive(std::chrono::duration_cast<std::chrono::milliseconds>(kCounterTick), arrivals);
  }
  EXPECT_EQ(proxy.counters().dropped, 20u);
  EXPECT_EQ(proxy.counters().c2s_out, 0u);
  EXPECT_TRUE(arrivals.empty());
  EXPECT_EQ(echo_.echoed(), 0u);

  proxy.pause(false);
  const auto resumed = exchange(client, proxy, 100);
  ASSERT_EQ(resumed.size(), 100u);
  EXPECT_TRUE(in_send_order(resumed));
  EXPECT_EQ(proxy.counters().dropped, 20u);
}

TEST_F(ImpairmentProxyTest, SameSeedLosesTheSameDatagrams) {
  const auto survivors = [this](uint64_t seed) {
    ImpairmentProxy proxy(echo_.address(), echo_.address_len(), {.loss = 0.3, .seed = seed}, {});
    Client client(AF_INET, proxy.port());
    std::vector<uint32_t> seqs;
    for (const auto& a : exchange(client, proxy, 300)) seqs.push_back(a.seq);
    return seqs;
  };
  const auto first = survivors(42);
  EXPECT_EQ(first, survivors(42));
  EXPECT_NE(first, survivors(43));
}

// A connection's setup passes untouched: the first spare_first datagrams of each client
// address, each way; the loss applies from the next one on.
TEST_F(ImpairmentProxyTest, TheFirstDatagramsOfEachClientAreSpared) {
  ImpairmentProxy proxy(echo_.address(), echo_.address_len(), {.loss = 1.0, .spare_first = 5}, {});
  Client a(AF_INET, proxy.port()), b(AF_INET, proxy.port());
  EXPECT_EQ(exchange(a, proxy, 20).size(), 5u);
  EXPECT_EQ(exchange(b, proxy, 20).size(), 5u);
  const auto c = proxy.counters();
  EXPECT_EQ(c.c2s_out, 10u);
  EXPECT_EQ(c.dropped, 30u);
}

TEST_F(ImpairmentProxyTest, SetImpairmentAppliesToLaterDatagrams) {
  ImpairmentProxy proxy(echo_.address(), echo_.address_len(), {}, {});
  Client client(AF_INET, proxy.port());
  ASSERT_EQ(exchange(client, proxy, 100).size(), 100u);
  proxy.set_impairment({}, {.loss = 1.0});
  EXPECT_TRUE(exchange(client, proxy, 50).empty());
  EXPECT_EQ(proxy.counters().dropped, 50u);
  proxy.set_impairment({}, {});
  EXPECT_EQ(exchange(client, proxy, 100).size(), 100u);
}

TEST(ImpairmentProxyIpv6Test, IPv6UpstreamIsServedOnLoopbackV6) {
  std::unique_ptr<EchoServer> echo;
  try {
    echo = std::make_unique<EchoServer>(AF_INET6);
  } catch (const std::exception&) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  ImpairmentProxy proxy(echo->address(), echo->address_len(), {}, {});
  Client client(AF_INET6, proxy.port());
  const auto arrivals = exchange(client, proxy, 200);
  ASSERT_EQ(arrivals.size(), 200u);
  EXPECT_TRUE(in_send_order(arrivals));
}

}  // namespace
}  // namespace prism::test
