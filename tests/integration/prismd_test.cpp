// prismd end to end: a real process on a free loopback port, driven through
// libprism-client and the prismctl binary exactly as a user would.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "net/datagram.hpp"
#include "net/session/handshake.hpp"
#include "prism/client.hpp"
#include "prismd_process.hpp"
#include "support/prometheus_text.hpp"

namespace prism::testing {
namespace {

namespace fs = std::filesystem;

client::ConnectOptions options_for(const PrismdProcess& prismd,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  client::ConnectOptions options;
  options.server_key = prismd.server_key();
  options.timeout = timeout;
  return options;
}

// A session logged in as admin, as prismctl on the server's machine would be.
client::Client connect_to(const PrismdProcess& prismd) {
  auto c = client::Client::connect({"127.0.0.1", prismd.port()}, options_for(prismd));
  EXPECT_TRUE(c) << c.error();
  auto login = c->login("admin", prismd.admin_token());
  EXPECT_TRUE(login && login->status == v1::STATUS_OK) << (login ? login->message : login.error());
  return std::move(*c);
}

// A UDP socket connected to prismd, for sending bytes no client would send. -1 on error.
int raw_socket_to(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

CommandResult prismctl(const PrismdProcess& prismd, std::vector<std::string> args) {
  std::vector<std::string> argv{std::string(PRISM_BINARY_DIR) + "/prismctl", "--server",
                                prismd.endpoint(), "--config", prismd.config_path().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

class PrismdTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(prismd.ready()) << prismd.log(); }
  PrismdProcess prismd;
};

TEST_F(PrismdTest, LogsOneLinePerLoadedPlugin) {
  EXPECT_NE(prismd.log().find("event=plugin_loaded name=default version=1.0.0 range=100-199 file="),
            std::string::npos)
      << prismd.log();
}

TEST_F(PrismdTest, PingIsAnswered) {
  auto c = connect_to(prismd);
  auto rtt = c.ping();
  ASSERT_TRUE(rtt) << rtt.error();
  EXPECT_GT(rtt->count(), 0);
}

TEST_F(PrismdTest, EchoReturnsThePayload) {
  auto c = connect_to(prismd);
  auto reply = c.call(101, "{\"x\":1}");
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_OK);
  EXPECT_EQ(reply->payload, "{\"x\":1}");
}

TEST_F(PrismdTest, UnownedPacketIdGetsInvalidPacket) {
  auto c = connect_to(prismd);
  auto reply = c.call(4242, "");
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_INVALID_PACKET);
  EXPECT_NE(reply->message.find("4242"), std::string::npos);
}

TEST_F(PrismdTest, PluginListShowsTheDefaultPluginAndItsMethods) {
  auto c = connect_to(prismd);
  auto echo = c.call(101, "count me");
  ASSERT_TRUE(echo);
  auto list = c.list_plugins();
  ASSERT_TRUE(list) << list.error();
  ASSERT_GE(list->plugins_size(), 1);  // in packet-id order: default (100-199) first
  const auto& p = list->plugins(0);
  EXPECT_EQ(p.name(), "default");
  EXPECT_EQ(p.first_packet_id(), 100u);
  EXPECT_EQ(p.last_packet_id(), 199u);
  EXPECT_GE(p.requests(), 1u);
  auto id = c.resolve("default", "echo");
  ASSERT_TRUE(id) << id.error();
  EXPECT_EQ(*id, 101u);
}

TEST_F(PrismdTest, InfoReportsVersionWorkersAndPlugins) {
  auto c = connect_to(prismd);
  auto id = c.resolve("default", "info");
  ASSERT_TRUE(id) << id.error();
  auto reply = c.call(*id, "");
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_OK);
  EXPECT_NE(reply->payload.find("\"workers\":2"), std::string::npos) << reply->payload;
  EXPECT_NE(reply->payload.find("\"name\":\"default\""), std::string::npos) << reply->payload;
}

// `top -H`, perf and gdb show what each thread is (docs/operations.md, "Threads").
TEST_F(PrismdTest, EachThreadIsNamedForWhatItDoes) {
  auto c = connect_to(prismd);  // a handshake starts the worker's ephemeral key thread
  std::multiset<std::string> names;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(prismd.pid()) + "/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  std::string all;
  for (const auto& name : names) all += name + " ";
  for (const char* expected : {"worker-0", "worker-1", "sqlite-writer", "sqlite-reader",
                               "sqlite-ckpt", "ephemeral-keys"}) {
    EXPECT_EQ(names.count(expected), 1u) << expected << " in: " << all;
  }
}

// The INITIAL a client without a cookie sends (protocol.md §5.2), for raw-socket tests.
std::vector<uint8_t> fresh_initial(const PrismdProcess& prismd, uint64_t client_id) {
  net::session::HandshakeClient hs(prismd.server_key(), client_id);
  return hs.initial();
}

// Garbage is counted and dropped, never answered: the first datagram that comes back
// on this socket is the RETRY to the INITIAL sent after the garbage.
TEST_F(PrismdTest, GarbageIsCountedAndNeverAnswered) {
  auto c = connect_to(prismd);
  auto before = c.server_status();
  ASSERT_TRUE(before) << before.error();

  const int fd = raw_socket_to(prismd.port());
  ASSERT_GE(fd, 0);
  constexpr int kGarbage = 200;
  std::vector<uint8_t> junk(300);
  for (int i = 0; i < kGarbage; ++i) {
    junk.resize(static_cast<size_t>(i % 50) * 7);
    for (size_t j = 0; j < junk.size(); ++j) junk[j] = static_cast<uint8_t>(i * 31 + j);
    if (i % 4 == 0 && junk.size() > net::kHeaderSize) {
      junk[0] = net::kWireVersion;  // a header that parses, with a payload that does not
      junk[1] = static_cast<uint8_t>(i % 8 == 0 ? 0x20 : 0x01);
    }
    send(fd, junk.data(), junk.size(), 0);
  }
  const auto initial = fresh_initial(prismd, 4711);
  send(fd, initial.data(), initial.size(), 0);

  std::vector<uint8_t> buf(2048);
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
  ASSERT_EQ(n, static_cast<ssize_t>(net::session::kRetrySize));
  net::DatagramHeader header;
  ASSERT_EQ(net::read_header({buf.data(), static_cast<size_t>(n)}, buf.size(), header),
            net::DropReason::kNone);
  EXPECT_EQ(header.type, net::DatagramType::kRetry);
  EXPECT_EQ(header.connection_id, 4711u);
  close(fd);

  auto after = c.server_status();
  ASSERT_TRUE(after) << after.error();
  EXPECT_GE(after->datagrams_dropped() - before->datagrams_dropped(),
            static_cast<uint64_t>(kGarbage));
}

// prismd's count of datagrams dropped as oversized, read as `prismctl stats` reads it.
double dropped_oversized(client::Client& c) {
  auto text = c.stats();
  if (!text) return -1;
  return parse_prometheus(*text)
      .value("prism_datagrams_dropped_total", {{"reason", "oversized"}})
      .value_or(0);
}

// A datagram longer than server.max_datagram (1400 here) is dropped as oversized, whatever
// it holds, up to UDP's largest; the datagram read in the same batch after them is served.
// (A receive path that read into slots of max_datagram bytes would parse the cut-off
// bytes instead: this failed on one.)
TEST_F(PrismdTest, DatagramsLongerThanMaxDatagramAreDroppedAsOversized) {
  auto c = connect_to(prismd);
  const double before = dropped_oversized(c);
  ASSERT_GE(before, 0);

  const int fd = raw_socket_to(prismd.port());
  ASSERT_GE(fd, 0);
  const auto initial = fresh_initial(prismd, 4712);
  constexpr size_t kSizes[] = {1401, 1500, 9000, 65507};
  for (const size_t size : kSizes) {
    // A valid INITIAL's bytes, padded past the limit: only the length is wrong.
    std::vector<uint8_t> long_one(initial);
    long_one.resize(size, 0);
    ASSERT_EQ(send(fd, long_one.data(), long_one.size(), 0), static_cast<ssize_t>(size));
  }
  send(fd, initial.data(), initial.size(), 0);

  std::vector<uint8_t> buf(2048);
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
  ASSERT_EQ(n, static_cast<ssize_t>(net::session::kRetrySize));  // to the INITIAL alone
  close(fd);
  EXPECT_EQ(dropped_oversized(c) - before, static_cast<double>(std::size(kSizes)));
}

TEST_F(PrismdTest, PrismctlPingPluginsAndCall) {
  auto ping = prismctl(prismd, {"ping"});
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  EXPECT_NE(ping.output.find("pong from " + prismd.endpoint()), std::string::npos) << ping.output;

  auto plugins = prismctl(prismd, {"plugins"});
  EXPECT_EQ(plugins.exit_code, 0) << plugins.output;
  EXPECT_NE(plugins.output.find("default"), std::string::npos) << plugins.output;
  EXPECT_NE(plugins.output.find("100-199"), std::string::npos) << plugins.output;

  auto call = prismctl(prismd, {"call", "default", "echo", "{\"x\":1}"});
  EXPECT_EQ(call.exit_code, 0) << call.output;
  EXPECT_NE(call.output.find("status=OK"), std::string::npos) << call.output;
  EXPECT_NE(call.output.find("{\"x\":1}"), std::string::npos) << call.output;
}

TEST_F(PrismdTest, PrismctlFailsClearlyOnAnUnknownService) {
  auto call = prismctl(prismd, {"call", "nosuch", "echo"});
  EXPECT_NE(call.exit_code, 0);
  EXPECT_NE(call.output.find("nosuch"), std::string::npos) << call.output;
}

TEST_F(PrismdTest, SigtermStopsCleanly) {
  // A session (its timers) and a request served first, so the workers have handles.
  auto call = prismctl(prismd, {"call", "default", "echo", "x"});
  ASSERT_EQ(call.exit_code, 0) << call.output;
  EXPECT_EQ(prismd.stop(SIGTERM), 0) << prismd.log();
  EXPECT_NE(prismd.log().find("event=stopped"), std::string::npos) << prismd.log();
  // Every libuv handle was closed before its loop (uv_loop_close succeeded).
  EXPECT_EQ(prismd.log().find("event=loop_close_failed"), std::string::npos) << prismd.log();
}

// Broken plugins beside a good one: each refusal is logged with its reason and the
// host serves the rest.
TEST(PrismdPlugins, RefusedPluginsAreLoggedAndTheHostKeepsServing) {
  char tmpl[] = "/tmp/prism-plugins-XXXXXX";
  const fs::path dir = mkdtemp(tmpl);
  const fs::path test_plugins = PRISM_TEST_PLUGIN_DIR;
  fs::copy_file(fs::path(PRISM_PLUGIN_DIR) / "default.so", dir / "default.so");
  for (const char* name : {"c_plugin.so", "wrong_abi.so", "overlap.so", "no_entry.so",
                           "init_fails.so"}) {
    fs::copy_file(test_plugins / name, dir / name);
  }
  std::ofstream(dir / "truncated.so") << "\x7f" "ELF truncated";

  PrismdOptions options;
  options.plugins_dir = dir;
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  const std::string& log = prismd.log();
  EXPECT_NE(log.find("wrong_abi.so) refused: built for plugin ABI 2."), std::string::npos) << log;
  EXPECT_NE(log.find("overlaps plugin default (100-199)"), std::string::npos) << log;
  EXPECT_NE(log.find("no_entry.so) refused: no prism_plugin_entry symbol"), std::string::npos)
      << log;
  EXPECT_NE(log.find("database unreachable"), std::string::npos) << log;
  EXPECT_NE(log.find("truncated.so) refused: cannot load shared object"), std::string::npos)
      << log;

  auto c = connect_to(prismd);
  auto echo = c.call(101, "still here");
  ASSERT_TRUE(echo) << echo.error();
  EXPECT_EQ(echo->payload, "still here");
  auto hello = c.call(900, "");
  ASSERT_TRUE(hello) << hello.error();
  EXPECT_EQ(hello->status, v1::STATUS_OK);
  EXPECT_EQ(hello->payload, "hello from C");
  auto list = c.list_plugins();
  ASSERT_TRUE(list);
  EXPECT_EQ(list->plugins_size(), 2);
  prismd.stop();
  fs::remove_all(dir);
}

// The host's TIMEOUT must leave at once, not wait in the send batch until some other
// datagram wakes the worker: the client would then only see its own, later timeout.
TEST(PrismdDeadlines, TimeoutReplyComesFromTheServerOnTime) {
  char tmpl[] = "/tmp/prism-plugins-XXXXXX";
  const fs::path dir = mkdtemp(tmpl);
  fs::copy_file(fs::path(PRISM_TEST_PLUGIN_DIR) / "deferred.so", dir / "deferred.so");
  PrismdOptions options;
  options.plugins_dir = dir;
  options.request_timeout_ms = 300;
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  auto c = client::Client::connect({"127.0.0.1", prismd.port()},
                                   options_for(prismd, std::chrono::seconds(10)));
  ASSERT_TRUE(c) << c.error();
  auto reply = c->call(950, "");  // deferred.hold: the plugin never answers by itself
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->status, v1::STATUS_TIMEOUT);
  EXPECT_NE(reply->message.find("plugin did not answer within 300 ms"), std::string::npos)
      << reply->message;
  prismd.stop();
  fs::remove_all(dir);
}

// prismctl subscribe prints each published message as it arrives and exits after --count;
// prismctl publish is the other end.
TEST_F(PrismdTest, PrismctlSubscribePrintsWhatIsPublished) {
  const std::string command = std::string(PRISM_BINARY_DIR) + "/prismctl --server " +
                              prismd.endpoint() + " --config " + prismd.config_path().string() +
                              " subscribe news --count 2 2>&1";
  FILE* out = popen(command.c_str(), "r");
  ASSERT_NE(out, nullptr);
  char line[512];
  std::vector<std::string> lines;
  auto read_line = [&] {
    if (std::fgets(line, sizeof line, out) == nullptr) return false;
    lines.emplace_back(line);
    return true;
  };
  // Published only once it is subscribed, or the message would go to no one.
  ASSERT_TRUE(read_line());
  ASSERT_EQ(lines.back(), "prismctl: subscribed to news\n");
  auto published = prismctl(prismd, {"publish", "news", "hello world"});
  EXPECT_EQ(published.exit_code, 0) << published.output;
  EXPECT_EQ(published.output, "published to news\n");
  auto c = connect_to(prismd);
  ASSERT_TRUE(c.publish("news", "second"));
  ASSERT_TRUE(c.publish("other", "not for it"));
  while (read_line()) {
  }
  const int status = pclose(out);
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
  EXPECT_EQ(lines, (std::vector<std::string>{"prismctl: subscribed to news\n",
                                             "news hello world\n", "news second\n"}));
}

// prismctl stats is valid Prometheus text, checked by a parser of the format, also once
// a plugin loaded after start added series to families that already had some.
TEST_F(PrismdTest, StatsAreValidPrometheusTextAfterALateLoad) {
  auto c = connect_to(prismd);
  ASSERT_TRUE(c.load_plugin(std::string(PRISM_TEST_PLUGIN_DIR) + "/c_plugin.so"));
  ASSERT_TRUE(c.call(900, ""));
  auto stats = prismctl(prismd, {"stats"});
  ASSERT_EQ(stats.exit_code, 0) << stats.output;
  const auto parsed = parse_prometheus(stats.output);
  ASSERT_TRUE(parsed.error.empty()) << parsed.error;
  const auto* requests = parsed.find("prism_plugin_requests_total");
  ASSERT_NE(requests, nullptr);
  EXPECT_EQ(requests->type, "counter");
  EXPECT_EQ(parsed.value("prism_plugin_requests_total", {{"plugin", "cplug"}}), 1.0);
  EXPECT_NE(parsed.find("prism_pushes_total"), nullptr);
}

// Plugin copies (tens of MiB) live in state_dir: what a SIGKILLed prismd left there is
// removed by the next start, and a clean stop leaves nothing.
TEST(PrismdPlugins, CopiesAKilledServerLeftAreRemovedByTheNextStart) {
  char tmpl[] = "/tmp/prism-state-XXXXXX";
  const fs::path state = mkdtemp(tmpl);
  fs::permissions(state, fs::perms::owner_all, fs::perm_options::replace);
  const auto copy_dirs = [&] {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(state / "plugin-copies")) {
      if (e.path().filename().string().starts_with("prism-plugins-")) dirs.push_back(e.path());
    }
    return dirs;
  };
  PrismdOptions options;
  options.state_dir = state;
  fs::path left;
  {
    PrismdProcess killed(options);
    ASSERT_TRUE(killed.ready()) << killed.log();
    ASSERT_EQ(copy_dirs().size(), 1u);
    left = copy_dirs().front();
    EXPECT_EQ(killed.stop(SIGKILL), 128 + SIGKILL);
  }
  ASSERT_TRUE(fs::exists(left));

  PrismdProcess next(options);
  ASSERT_TRUE(next.ready()) << next.log();
  EXPECT_NE(next.log().find("event=plugin_copies_swept count=1"), std::string::npos)
      << next.log();
  EXPECT_FALSE(fs::exists(left));
  ASSERT_EQ(copy_dirs().size(), 1u);
  EXPECT_EQ(next.stop(SIGTERM), 0) << next.log();
  EXPECT_TRUE(copy_dirs().empty());
  fs::remove_all(state);
}

// SO_REUSEPORT would let a second prismd share the port and take half of the traffic.
TEST(PrismdCommandLine, SecondServerOnATakenPortIsRefused) {
  PrismdProcess first;
  ASSERT_TRUE(first.ready()) << first.log();
  PrismdOptions options;
  options.port = first.port();
  PrismdProcess second(options);
  EXPECT_FALSE(second.ready());
  EXPECT_EQ(second.stop(), 1) << second.log();
  EXPECT_NE(second.log().find("bind 127.0.0.1:" + std::to_string(first.port())),
            std::string::npos)
      << second.log();
  EXPECT_NE(second.log().find("Address already in use"), std::string::npos) << second.log();
}

std::string logged_public_key(const std::string& log) {
  const std::string marker = "event=server_key public_key=";
  const size_t at = log.find(marker);
  return at == std::string::npos ? "" : log.substr(at + marker.size(), 7 + 64);
}

// make run needs no manual step: the first start creates the server key, later starts
// reuse it, and a key others can read is refused.
TEST(PrismdServerKey, CreatedOnFirstStartThenReused) {
  char tmpl[] = "/tmp/prism-state-XXXXXX";
  const fs::path state = fs::path(mkdtemp(tmpl)) / "state";
  PrismdOptions options;
  options.state_dir = state;
  std::string first_key;
  {
    PrismdProcess prismd(options);
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    EXPECT_NE(prismd.log().find("created=true"), std::string::npos) << prismd.log();
    first_key = logged_public_key(prismd.log());
    EXPECT_EQ(first_key.rfind("prism1:", 0), 0u) << prismd.log();
    EXPECT_EQ(fs::status(state / "server.key").permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
  }
  {
    PrismdProcess prismd(options);
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    EXPECT_NE(prismd.log().find("created=false"), std::string::npos) << prismd.log();
    EXPECT_EQ(logged_public_key(prismd.log()), first_key);
  }
  fs::permissions(state / "server.key", fs::perms::group_read | fs::perms::others_read,
                  fs::perm_options::add);
  PrismdProcess refused(options);
  EXPECT_FALSE(refused.ready());
  EXPECT_EQ(refused.stop(), 2) << refused.log();
  EXPECT_NE(refused.log().find("chmod 600"), std::string::npos) << refused.log();
  fs::remove_all(state.parent_path());
}

TEST(PrismctlKeygen, WritesAKeyPairAndNeverOverwritesOne) {
  char tmpl[] = "/tmp/prism-keygen-XXXXXX";
  const fs::path dir = mkdtemp(tmpl);
  const std::string prismctl = std::string(PRISM_BINARY_DIR) + "/prismctl";
  auto first = run_command({prismctl, "keygen", "--out-dir", dir.string()});
  EXPECT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("public key prism1:"), std::string::npos) << first.output;
  EXPECT_EQ(fs::status(dir / "server.key").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  std::string pub;
  std::getline(std::ifstream(dir / "server.pub"), pub);
  EXPECT_NE(first.output.find(pub), std::string::npos) << pub;

  auto again = run_command({prismctl, "keygen", "--out-dir", dir.string()});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.output.find("server.key"), std::string::npos) << again.output;
  std::string pub_after;
  std::getline(std::ifstream(dir / "server.pub"), pub_after);
  EXPECT_EQ(pub_after, pub);
  fs::remove_all(dir);
}

TEST(PrismdCommandLine, CheckConfigNamesFileLineAndKey) {
  char tmpl[] = "/tmp/prism-config-XXXXXX";
  const fs::path dir = mkdtemp(tmpl);
  std::ofstream(dir / "bad.yaml") << "server:\n  workers: lots\n";
  auto r = run_command({std::string(PRISM_BINARY_DIR) + "/prismd", "--check-config", "--config",
                        (dir / "bad.yaml").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("bad.yaml:2:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("server.workers"), std::string::npos) << r.output;

  auto ok = run_command({std::string(PRISM_BINARY_DIR) + "/prismd", "--check-config", "--config",
                         std::string(PRISM_SOURCE_DIR) + "/etc/prism.yaml"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  fs::remove_all(dir);
}

TEST(PrismdCommandLine, VersionIsPrinted) {
  auto r = run_command({std::string(PRISM_BINARY_DIR) + "/prismd", "--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("prismd 0."), std::string::npos) << r.output;
}

}  // namespace
}  // namespace prism::testing
