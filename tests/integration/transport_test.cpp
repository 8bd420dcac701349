// The secure transport end to end (docs/protocol.md §5): a real prismd, libprism-client,
// and an impairment proxy between them that loses, duplicates and reorders datagrams.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "impairment_proxy.hpp"
#include "base/token_hash.hpp"
#include "net/datagram.hpp"
#include "net/session/handshake.hpp"
#include "prism/client.hpp"
#include "prismd_process.hpp"

namespace prism::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kEcho = 101;  // default.echo

client::ConnectOptions options_for(const PrismdProcess& prismd,
                                   std::chrono::milliseconds timeout = 5s) {
  client::ConnectOptions options;
  options.server_key = prismd.server_key();
  options.timeout = timeout;
  return options;
}

sockaddr_storage loopback(uint16_t port, socklen_t& len) {
  sockaddr_storage storage{};
  auto* a = reinterpret_cast<sockaddr_in*>(&storage);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &a->sin_addr);
  len = sizeof(sockaddr_in);
  return storage;
}

TEST(TransportLogin, ServiceWithATokenNeedsALoginAndFailuresAreRateLimited) {
  PrismdOptions options;
  options.workers = 1;  // failures are counted per worker (docs/security.md)
  options.plugin_configs["default"] =
      "token_hash: \"" + prism::hash_token("s3cret") + "\"\n";
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = client::Client::connect({"127.0.0.1", prismd.port()}, options_for(prismd));
  ASSERT_TRUE(c) << c.error();

  auto before = c->call(kEcho, "hi");
  ASSERT_TRUE(before) << before.error();
  EXPECT_EQ(before->status, v1::STATUS_LOGIN_REQUIRED) << before->message;
  // Host (admin) requests need the admin login, not the service's.
  auto list = c->list_plugins();
  ASSERT_FALSE(list);
  EXPECT_NE(list.error().find("LOGIN_REQUIRED"), std::string::npos) << list.error();

  auto unknown = c->login("nosuch", "x");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, v1::STATUS_INVALID_SERVICE);
  auto wrong = c->login("default", "guess");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, v1::STATUS_INVALID_CREDENTIALS);
  auto right = c->login("default", "s3cret");
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, v1::STATUS_OK) << right->message;
  auto after = c->call(kEcho, "hi");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, v1::STATUS_OK);
  EXPECT_EQ(after->payload, "hi");

  // prismctl holds the admin login, which may call every service (operations.md §3.2);
  // with a service token it logs in to the service itself.
  const std::string prismctl = std::string(PRISM_BINARY_DIR) + "/prismctl";
  auto as_admin = run_command({prismctl, "--server", prismd.endpoint(), "--config",
                               prismd.config_path().string(), "call", "default", "echo", "x"});
  EXPECT_EQ(as_admin.exit_code, 0) << as_admin.output;
  // The token need not sit in argv, where other local users read it: standard input, a
  // file, or the environment.
  const std::string call_echo = "'" + prismctl + "' --server " + prismd.endpoint() +
                                " --config '" + prismd.config_path().string() +
                                "' call default echo viasecret";
  auto from_stdin =
      run_command({"/bin/sh", "-c", "echo s3cret | " + call_echo + " --service-token-file -"});
  EXPECT_EQ(from_stdin.exit_code, 0) << from_stdin.output;
  EXPECT_NE(from_stdin.output.find("viasecret"), std::string::npos) << from_stdin.output;
  const auto token_file = prismd.dir() / "service.token";
  std::ofstream(token_file) << "s3cret\n";
  auto from_file = run_command(
      {"/bin/sh", "-c", call_echo + " --service-token-file '" + token_file.string() + "'"});
  EXPECT_EQ(from_file.exit_code, 0) << from_file.output;
  auto from_env = run_command({"/bin/sh", "-c", "PRISM_SERVICE_TOKEN=s3cret " + call_echo});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.output;
  auto hashed = run_command({"/bin/sh", "-c", "echo s3cret | '" + prismctl + "' hash-token"});
  EXPECT_NE(hashed.output.find(prism::hash_token("s3cret")), std::string::npos)
      << hashed.output;

  // A login belongs to its session: a second session starts logged out.
  auto other = client::Client::connect({"127.0.0.1", prismd.port()}, options_for(prismd));
  ASSERT_TRUE(other) << other.error();
  EXPECT_EQ(other->call(kEcho, "x")->status, v1::STATUS_LOGIN_REQUIRED);
  // Failures from one address are limited: after five (two above, three here), wrong
  // guesses are answered RATE_LIMITED, uncounted, for a while...
  for (int i = 0; i < 3; ++i) EXPECT_EQ(other->login("default", "guess")->status, v1::STATUS_INVALID_CREDENTIALS);
  EXPECT_EQ(other->login("default", "guess")->status, v1::STATUS_RATE_LIMITED);
  // ...but the right token still logs in: a neighbour's failures must not lock it out.
  EXPECT_EQ(other->login("default", "s3cret")->status, v1::STATUS_OK);
  // And the admin's failures are counted apart: the admin can log in too.
  ASSERT_EQ(other->login("admin", prismd.admin_token())->status, v1::STATUS_OK);
  EXPECT_TRUE(other->server_status());
}

// The admin service: its token is created in the state dir on first start, prismctl on
// the same machine finds it through the config, and wrong tokens, malformed commands
// and unknown host ids get a clear status.
TEST(TransportAdmin, AdminRequestsNeedTheAdminTokenFromAnAllowedAddress) {
  PrismdOptions options;
  options.workers = 1;  // failed logins are counted per worker
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  EXPECT_TRUE(prismd.wait_for_log("event=admin_token")) << prismd.log();
  ASSERT_EQ(prismd.admin_token().size(), 64u);

  auto c = client::Client::connect({"127.0.0.1", prismd.port()}, options_for(prismd));
  ASSERT_TRUE(c) << c.error();
  auto before = c->server_status();
  ASSERT_FALSE(before);
  EXPECT_NE(before.error().find("LOGIN_REQUIRED"), std::string::npos) << before.error();
  EXPECT_EQ(c->login("admin", "not the token")->status, v1::STATUS_INVALID_CREDENTIALS);
  EXPECT_FALSE(c->server_status());
  ASSERT_EQ(c->login("admin", prismd.admin_token())->status, v1::STATUS_OK);
  EXPECT_TRUE(c->server_status());
  EXPECT_TRUE(c->list_plugins());
  auto unknown = c->call(99, "");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, v1::STATUS_INVALID_PACKET) << unknown->message;
  auto malformed = c->call(v1::HOST_LOGIN, "\xff\xff not a LoginRequest");
  ASSERT_TRUE(malformed);
  EXPECT_EQ(malformed->status, v1::STATUS_INVALID_ARGUMENT) << malformed->message;

  // prismctl finds the token through the config; --token-file with a wrong one fails.
  const std::string prismctl = std::string(PRISM_BINARY_DIR) + "/prismctl";
  auto status = run_command({prismctl, "--server", prismd.endpoint(), "--config",
                             prismd.config_path().string(), "status"});
  EXPECT_EQ(status.exit_code, 0) << status.output;
  const auto wrong = prismd.dir() / "wrong.token";
  std::ofstream(wrong) << "0123456789abcdef0123456789abcdef\n";
  auto refused = run_command({prismctl, "--server", prismd.endpoint(), "--config",
                              prismd.config_path().string(), "--token-file", wrong.string(),
                              "status"});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("INVALID_CREDENTIALS"), std::string::npos) << refused.output;
}

TEST(TransportAdmin, AdminLoginsFromOutsideTheAllowListAreRefused) {
  PrismdOptions options;
  options.extra_yaml = "admin:\n  allow: [\"10.0.0.0/8\"]\n";  // loopback not allowed
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = client::Client::connect({"127.0.0.1", prismd.port()}, options_for(prismd));
  ASSERT_TRUE(c) << c.error();
  auto login = c->login("admin", prismd.admin_token());  // the right token, wrong place
  ASSERT_TRUE(login);
  EXPECT_EQ(login->status, v1::STATUS_INVALID_CREDENTIALS);
  EXPECT_NE(login->message.find("admin.allow"), std::string::npos) << login->message;
  EXPECT_FALSE(c->server_status());
  EXPECT_TRUE(prismd.wait_for_log("event=admin_login_refused")) << prismd.log();
}

// server.key_file names a key made by prismctl keygen; prismctl finds its public half
// through the same config. A key file others can read is refused.
TEST(TransportKeys, KeyFileFromTheConfigIsUsedAndItsModeChecked) {
  char tmpl[] = "/tmp/prism-keys-XXXXXX";
  const std::filesystem::path dir = mkdtemp(tmpl);
  const std::string prismctl = std::string(PRISM_BINARY_DIR) + "/prismctl";
  auto keygen = run_command({prismctl, "keygen", "--out-dir", dir.string()});
  ASSERT_EQ(keygen.exit_code, 0) << keygen.output;
  PrismdOptions options;
  options.key_file = dir / "server.key";
  {
    PrismdProcess prismd(options);
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    EXPECT_NE(prismd.log().find("file=" + options.key_file.string()), std::string::npos);
    auto ping = run_command({prismctl, "--server", prismd.endpoint(), "--config",
                             prismd.config_path().string(), "ping"});
    EXPECT_EQ(ping.exit_code, 0) << ping.output;
    // A client holding another key cannot complete a handshake.
    auto other = run_command({prismctl, "--server", prismd.endpoint(), "--timeout-ms", "300",
                              "--server-key", "prism1:" + std::string(64, '7'), "ping"});
    EXPECT_EQ(other.exit_code, 1) << other.output;
    EXPECT_NE(other.output.find("no handshake"), std::string::npos) << other.output;
  }
  std::filesystem::permissions(options.key_file, std::filesystem::perms::group_read,
                               std::filesystem::perm_options::add);
  PrismdProcess refused(options);
  EXPECT_FALSE(refused.ready());
  EXPECT_EQ(refused.stop(), 2) << refused.log();
  EXPECT_NE(refused.log().find("event=server_key_failed"), std::string::npos) << refused.log();
  std::filesystem::remove_all(dir);
}

TEST(TransportPaths, ClientChangingItsSourcePortKeepsTheSession) {
  PrismdProcess prismd;
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = client::Client::connect({"127.0.0.1", prismd.port()}, options_for(prismd));
  ASSERT_TRUE(c) << c.error();
  ASSERT_EQ(c->call(kEcho, "before")->payload, "before");
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c->rebind());
    auto reply = c->call(kEcho, "after " + std::to_string(i));
    ASSERT_TRUE(reply) << reply.error();
    EXPECT_EQ(reply->status, v1::STATUS_OK) << reply->message;
    EXPECT_EQ(reply->payload, "after " + std::to_string(i));
  }
  EXPECT_TRUE(c->connected());
  EXPECT_TRUE(prismd.wait_for_log("event=session_migrated")) << prismd.log();
}

// A server that stops answering (its path goes dead) ends the session on the client's
// idle timeout, and the request still pending completes with TIMEOUT, exactly once.
TEST(TransportPaths, DeadPathClosesTheSessionAndFailsPendingRequests) {
  PrismdProcess prismd;
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  socklen_t len = 0;
  const auto upstream = loopback(prismd.port(), len);
  test::ImpairmentProxy proxy(upstream, len);
  auto options = options_for(prismd);
  options.idle_timeout = 1s;
  auto c = client::Client::connect({"127.0.0.1", proxy.port()}, options);
  ASSERT_TRUE(c) << c.error();
  ASSERT_EQ(c->call(kEcho, "alive")->payload, "alive");
  proxy.pause(true);
  int completions = 0;
  std::optional<client::Reply> reply;
  ASSERT_TRUE(c->send_request(kEcho, "lost", v1::DELIVERY_RELIABLE_ORDERED,
                              [&](const client::Reply& r) {
                                ++completions;
                                reply = r;
                              },
                              60s));
  const auto deadline = Clock::now() + 20s;
  while (!reply && Clock::now() < deadline) ASSERT_TRUE(c->poll(100ms));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, v1::STATUS_TIMEOUT) << reply->message;
  EXPECT_NE(reply->message.find("session closed"), std::string::npos) << reply->message;
  EXPECT_FALSE(c->connected());
  EXPECT_FALSE(c->close_reason().empty());
  ASSERT_TRUE(c->poll(10ms));
  EXPECT_EQ(completions, 1);
  EXPECT_EQ(c->pending(), 0u);
}

// The acceptance test: with 10% loss, 5% duplication and reordering both ways,
// 10 000 reliable-ordered requests each get exactly one reply, in order.
TEST(TransportImpaired, TenThousandOrderedRequestsThroughALossyPath) {
  PrismdProcess prismd;
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  socklen_t len = 0;
  const auto upstream = loopback(prismd.port(), len);
  test::Impairment bad{.loss = 0.10, .duplicate = 0.05, .reorder = 0.05,
                       .delay = 200us, .jitter = 300us, .seed = 7};
  test::Impairment back = bad;
  back.seed = 11;
  test::ImpairmentProxy proxy(upstream, len, bad, back);
  auto c = client::Client::connect({"127.0.0.1", proxy.port()}, options_for(prismd, 20s));
  ASSERT_TRUE(c) << c.error();

  constexpr uint32_t kCount = 10000;
  constexpr size_t kInFlight = 32;
  std::vector<uint32_t> order;  // payload numbers in reply order
  std::vector<int> replies(kCount, 0);
  size_t failures = 0;
  uint32_t next = 0;
  const auto deadline = Clock::now() + 120s;
  while (order.size() < kCount && Clock::now() < deadline) {
    while (next < kCount && c->pending() < kInFlight) {
      const uint32_t n = next++;
      auto sent = c->send_request(
          kEcho, std::to_string(n), v1::DELIVERY_RELIABLE_ORDERED,
          [&, n](const client::Reply& r) {
            if (r.status != v1::STATUS_OK || r.payload != std::to_string(n)) ++failures;
            ++replies[n];
            order.push_back(n);
          },
          30s);
      ASSERT_TRUE(sent) << sent.error();
    }
    ASSERT_TRUE(c->poll(100ms));
  }
  ASSERT_EQ(order.size(), kCount) << "replies missing; proxy dropped " << proxy.counters().dropped;
  EXPECT_EQ(failures, 0u);
  EXPECT_TRUE(std::all_of(replies.begin(), replies.end(), [](int r) { return r == 1; }));
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));  // ordered both ways
  const auto counters = proxy.counters();
  // The path really was that bad: about 10% of all datagrams lost, some doubled, some held.
  const uint64_t total = counters.c2s_in + counters.s2c_in;
  EXPECT_GT(counters.dropped * 100, total * 7) << counters.dropped << " of " << total;
  EXPECT_GT(counters.duplicated * 100, total * 3) << counters.duplicated << " of " << total;
  EXPECT_GT(counters.reordered * 100, total * 3) << counters.reordered << " of " << total;
}

// Garbage, truncated and replayed datagrams and handshake floods from many source ports:
// prismd keeps serving a legitimate client and never sends more than it received.
TEST(TransportAdversarial, FloodsFromManyPortsNeitherStopNorAmplify) {
  PrismdProcess prismd;
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  // The legitimate client goes through a proxy that duplicates every datagram: every
  // packet it sends is also replayed to the server.
  socklen_t len = 0;
  const auto upstream = loopback(prismd.port(), len);
  test::ImpairmentProxy replayer(upstream, len, test::Impairment{.duplicate = 1.0}, {});
  auto legit = client::Client::connect({"127.0.0.1", replayer.port()}, options_for(prismd));
  ASSERT_TRUE(legit) << legit.error();
  ASSERT_EQ(legit->login("admin", prismd.admin_token())->status, v1::STATUS_OK);

  constexpr int kSockets = 64;
  std::vector<int> fds;
  for (int i = 0; i < kSockets; ++i) {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(prismd.port());
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
    fds.push_back(fd);
  }
  size_t sent_bytes = 0;
  size_t received_bytes = 0;
  auto drain = [&] {
    std::vector<uint8_t> buf(65536);
    for (int fd : fds) {
      for (;;) {
        const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        received_bytes += static_cast<size_t>(n);
      }
    }
  };
  auto send_bytes = [&](int fd, const std::vector<uint8_t>& bytes) {
    if (send(fd, bytes.data(), bytes.size(), 0) > 0) sent_bytes += bytes.size();
  };

  net::session::HandshakeClient hs(prismd.server_key(), 1);
  const std::vector<uint8_t> initial = hs.initial();
  std::vector<uint8_t> with_bad_cookie = initial;
  with_bad_cookie[net::kHeaderSize] = net::session::kCookieSize;  // claims a cookie of zeros
  std::vector<uint8_t> truncated(initial.begin(), initial.begin() + 600);
  std::vector<uint8_t> garbage(300);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 7 + 3);

  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < kSockets; ++i) {
      send_bytes(fds[static_cast<size_t>(i)], initial);  // handshake flood: RETRY each
      send_bytes(fds[static_cast<size_t>(i)], with_bad_cookie);
      send_bytes(fds[static_cast<size_t>(i)], truncated);
      send_bytes(fds[static_cast<size_t>(i)], garbage);
    }
    // Meanwhile the legitimate client is served.
    auto reply = legit->call(kEcho, "still here " + std::to_string(round));
    ASSERT_TRUE(reply) << reply.error();
    ASSERT_EQ(reply->status, v1::STATUS_OK) << reply->message;
    ASSERT_EQ(reply->payload, "still here " + std::to_string(round));
    drain();
  }
  // One last INITIAL per socket: its RETRY is the last answer, so once every socket has
  // it, everything sent before has been answered or dropped.
  for (int fd : fds) send_bytes(fd, initial);
  std::vector<bool> done(fds.size(), false);
  size_t finished = 0;
  const auto deadline = Clock::now() + 10s;
  std::vector<uint8_t> buf(65536);
  while (finished < fds.size() && Clock::now() < deadline) {
    std::vector<pollfd> pfds;
    for (int fd : fds) pfds.push_back({fd, POLLIN, 0});
    poll(pfds.data(), pfds.size(), 100);
    for (size_t i = 0; i < fds.size(); ++i) {
      for (;;) {
        const ssize_t n = recv(fds[i], buf.data(), buf.size(), 0);
        if (n <= 0) break;
        received_bytes += static_cast<size_t>(n);
        if (!done[i]) {
          done[i] = true;
          ++finished;
        }
      }
    }
  }
  for (int fd : fds) close(fd);
  EXPECT_GT(received_bytes, 0u);  // the RETRYs
  EXPECT_LT(received_bytes * 10, sent_bytes) << "sent " << sent_bytes << " received " << received_bytes;
  EXPECT_TRUE(legit->connected());
  auto status = legit->server_status();
  ASSERT_TRUE(status) << status.error();
  // Three of the four kinds are dropped and counted; the kernel may itself drop some of
  // the flood when the socket buffer overflows, so only a share is certain to arrive.
  EXPECT_GT(status->datagrams_dropped(), static_cast<uint64_t>(kSockets) * 20);
}

}  // namespace
}  // namespace prism::testing
