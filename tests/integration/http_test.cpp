// HTTP on ws.listen (host/ws/gateway.hpp) through a real prismd: /metrics is valid
// Prometheus text (checked by a parser of the format), /healthz and /readyz answer JSON,
// every worker serves the port, and a port another process holds is refused at start.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <string>

#include "prism/client.hpp"
#include "prismd_process.hpp"
#include "support/http_client.hpp"
#include "support/prometheus_text.hpp"
#include "support/ws_client.hpp"

namespace prism::testing {
namespace {

PrismdOptions with_http() {
  PrismdOptions options;
  options.workers = 2;
  options.extra_yaml = "ws:\n  listen: 127.0.0.1:0\n";
  return options;
}

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    port = prismd.http_port();
    ASSERT_NE(port, 0) << prismd.log();
  }
  PrismdProcess prismd{with_http()};
  uint16_t port = 0;
};

TEST_F(HttpTest, MetricsAreValidPrometheusTextWithTheTransportsCounters) {
  // Some traffic first, so the counters are not all zero.
  client::ConnectOptions options;
  options.server_key = prismd.server_key();
  auto c = client::Client::connect({"127.0.0.1", prismd.port()}, options);
  ASSERT_TRUE(c) << c.error();
  ASSERT_TRUE(c->call(101, "hello"));
  const HttpReply reply = http_get(port, "/metrics");
  ASSERT_EQ(reply.status, 200) << reply.headers;
  EXPECT_NE(reply.headers.find("content-type: text/plain; version=0.0.4"), std::string::npos)
      << reply.headers;
  const Exposition parsed = parse_prometheus(reply.body);
  ASSERT_TRUE(parsed.error.empty()) << parsed.error;
  EXPECT_GE(parsed.value("prism_sessions_opened_total").value_or(0), 1.0);
  EXPECT_GE(parsed.value("prism_plugin_requests_total", {{"plugin", "default"}}).value_or(0), 1.0);
  const Family* latency = parsed.find("prism_plugin_request_seconds");
  ASSERT_NE(latency, nullptr);
  EXPECT_EQ(latency->type, "histogram");
}

// prism_request_seconds: request latency per transport, a UDP request and a WebSocket
// channel event each counted under their own label.
TEST_F(HttpTest, RequestLatencyIsAHistogramPerTransport) {
  client::ConnectOptions options;
  options.server_key = prismd.server_key();
  auto c = client::Client::connect({"127.0.0.1", prismd.port()}, options);
  ASSERT_TRUE(c) << c.error();
  ASSERT_TRUE(c->call(101, "hello"));
  WsClient ws(port, "/socket/websocket?vsn=2.0.0");
  ASSERT_TRUE(ws.upgraded());
  ws.send(nlohmann::json::array({"1", "1", "echo:t", "phx_join", nlohmann::json::object()}));
  ws.send(nlohmann::json::array({"1", "2", "echo:t", "echo", nlohmann::json::object()}));
  ASSERT_TRUE(replied_ok(ws.next_json()));
  ASSERT_TRUE(replied_ok(ws.next_json()));
  const Exposition parsed = parse_prometheus(http_get(port, "/metrics").body);
  ASSERT_TRUE(parsed.error.empty()) << parsed.error;
  const Family* latency = parsed.find("prism_request_seconds");
  ASSERT_NE(latency, nullptr);
  EXPECT_EQ(latency->type, "histogram");
  // The UDP session's handshake has no request; its call is one (the login-free default).
  EXPECT_GE(parsed.value("prism_request_seconds_count", {{"transport", "udp"}}).value_or(0), 1.0);
  EXPECT_EQ(parsed.value("prism_request_seconds_count", {{"transport", "websocket"}}).value_or(0), 2.0);
}

TEST_F(HttpTest, HealthzIsLiveAndReadyzReadyWithNothingDegraded) {
  const HttpReply live = http_get(port, "/healthz");
  ASSERT_EQ(live.status, 200);
  const auto health = nlohmann::json::parse(live.body);
  EXPECT_EQ(health["status"], "live");
  EXPECT_TRUE(health["degraded"].empty());
  const HttpReply ready = http_get(port, "/readyz");
  ASSERT_EQ(ready.status, 200);
  const auto readiness = nlohmann::json::parse(ready.body);
  EXPECT_EQ(readiness["status"], "ready");
  EXPECT_EQ(readiness["ready"], true);
}

TEST_F(HttpTest, AnUnknownPathIsNotFound) {
  const HttpReply reply = http_get(port, "/nope");
  EXPECT_EQ(reply.status, 404);
  EXPECT_EQ(nlohmann::json::parse(reply.body)["error"], "no such path");
}

// Both workers accept on the port (SO_REUSEPORT): many connections in a row all answer,
// whichever worker the kernel hands each to.
TEST_F(HttpTest, EveryConnectionIsAnsweredWhicheverWorkerTakesIt) {
  for (int i = 0; i < 40; ++i) ASSERT_EQ(http_get(port, "/healthz").status, 200) << i;
}

TEST(HttpListen, APortAnotherProcessHoldsIsRefusedAtStart) {
  const int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(holder, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len);
  const uint16_t taken = ntohs(addr.sin_port);
  PrismdOptions options;
  options.extra_yaml = "ws:\n  listen: 127.0.0.1:" + std::to_string(taken) + "\n";
  PrismdProcess prismd(options);
  EXPECT_FALSE(prismd.ready());
  EXPECT_EQ(prismd.stop(), 1) << prismd.log();
  EXPECT_NE(prismd.log().find("event=listen_failed error=\"ws.listen 127.0.0.1:" +
                              std::to_string(taken) + ": Address already in use\""),
            std::string::npos)
      << prismd.log();
  ::close(holder);
}

// ws.tls: a certificate file that is not there stops the start, naming the key and file.
TEST(HttpListen, AMissingTlsFileIsRefusedAtStartWithItsName) {
  PrismdOptions options;
  options.extra_yaml = "ws:\n  listen: 127.0.0.1:0\n  tls:\n    cert: /nonexistent/c.pem\n"
                       "    key: /nonexistent/k.pem\n";
  PrismdProcess prismd(options);
  EXPECT_FALSE(prismd.ready());
  EXPECT_EQ(prismd.stop(), 1) << prismd.log();
  EXPECT_NE(prismd.log().find("ws.tls.cert /nonexistent/c.pem: No such file or directory"),
            std::string::npos)
      << prismd.log();
}

// A SIGTERM with sockets open stops cleanly: exit 0, every loop closed. In the
// AddressSanitizer tree a leak fails the exit status too (libwebsockets' context on a
// foreign loop was once left half destroyed).
TEST(HttpListen, ASigtermWithSocketsOpenStopsCleanly) {
  PrismdProcess prismd(with_http());
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const uint16_t port = prismd.http_port();
  WsClient ws(port, "/socket/websocket?vsn=2.0.0");
  ASSERT_TRUE(ws.upgraded());
  ws.send(nlohmann::json::array({"1", "1", "echo:bye", "phx_join", nlohmann::json::object()}));
  ASSERT_TRUE(replied_ok(ws.next_json()));
  EXPECT_EQ(http_get(port, "/healthz").status, 200);
  EXPECT_EQ(prismd.stop(SIGTERM), 0) << prismd.log();
  EXPECT_NE(prismd.log().find("event=stopped"), std::string::npos) << prismd.log();
  EXPECT_EQ(prismd.log().find("loop_close_failed"), std::string::npos) << prismd.log();
}

}  // namespace
}  // namespace prism::testing
