// ws_bench: the WebSocket load of `make bench` (tests/bench/run_ws_bench.sh), one thread
// and one epoll set over non-blocking connections, each an RFC 6455 client written here
// (masked text frames), against lws_echo_baseline (raw echo), prismd's Phoenix gateway or
// a rooms instance behind it (docs/rooms.md).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "histogram.hpp"

namespace {

using prism::bench::LatencyHistogram;

constexpr int64_t kSetupTimeoutNs = 15'000'000'000;  // every connection open (and joined)
constexpr int64_t kReplyTimeoutNs = 5'000'000'000;  // a message unanswered after this fails the run
constexpr int64_t kScanEveryNs = 100'000'000;       // how often in-flight messages are checked
constexpr size_t kReadChunk = 65536;
// RFC 6455 §1.3: the server hashes the client's key with this GUID.
constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
// RFC 6455 §5.2 opcodes.
constexpr uint8_t kOpText = 0x1, kOpClose = 0x8, kOpPing = 0x9, kOpPong = 0xA;

enum class Mode {
  kEcho,         // raw text echo (lws_echo_baseline): K messages in flight per connection
  kPhoenix,      // join echo:bench<i>, then K `echo` events in flight (phx_reply)
  kFanout,       // S sockets joined to one topic; P of them keep K `shout`s in flight
  kEchoConnect,  // connect, upgrade, one echo, close (RST), again
  kPhoenixJoin,  // connect, upgrade, phx_join, close (RST), again
  kRoomsJoin,    // the same at /socket/<instance>/websocket, joining its --channel
  kRoomsFanout,  // S members of --instance's --channel; P of them keep K `push`es in flight
};

struct Options {
  std::string mode_name = "echo";
  std::string server = "127.0.0.1:4000";
  std::string path = "/socket/websocket?vsn=2.0.0";
  int connections = 4;
  int inflight = 16;
  double duration_s = 5;
  double warmup_s = 0.5;
  double rate = 0;  // open loop: messages per second over all connections; 0: closed loop
  int subscribers = 10;
  int publishers = 1;
  size_t payload_bytes = 32;
  std::string label = "ws";
  std::string instance;         // rooms modes: the instance's id
  std::string channel = "chat";  // rooms modes: its channel (accumulative)
  int rss_pid = 0;              // the server's pid: its RSS growth while the sockets connect
  bool server_heap = false;     // prismd's heap growth meanwhile, from its /metrics
  Mode mode = Mode::kEcho;
};

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// SHA-1 (FIPS 180-4), only for Sec-WebSocket-Accept (RFC 6455 §4.2.2).
std::array<uint8_t, 20> sha1(std::string_view data) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::string m(data);
  m += static_cast<char>(0x80);
  while (m.size() % 64 != 56) m += '\0';
  const uint64_t bits = uint64_t{data.size()} * 8;
  for (int i = 7; i >= 0; --i) m += static_cast<char>(bits >> (i * 8));
  for (size_t at = 0; at < m.size(); at += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const uint8_t*>(m.data() + at + 4 * i);
      w[i] = uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
    }
    for (int i = 16; i < 80; ++i) w[i] = std::rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d), k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d, k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d, k = 0xCA62C1D6;
      }
      const uint32_t t = std::rotl(a, 5) + f + e + k + w[i];
      e = d, d = c, c = std::rotl(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  std::array<uint8_t, 20> out{};
  for (int i = 0; i < 20; ++i) out[i] = static_cast<uint8_t>(h[i / 4] >> (24 - 8 * (i % 4)));
  return out;
}

std::string base64(const uint8_t* data, size_t len) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < len; i += 3) {
    const uint32_t n = uint32_t{data[i]} << 16 | (i + 1 < len ? uint32_t{data[i + 1]} << 8 : 0) |
                       (i + 2 < len ? data[i + 2] : 0);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < len ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < len ? kAlphabet[n & 63] : '=';
  }
  return out;
}

// xoshiro-style generator for masking keys and handshake nonces: RFC 6455 §10.3 wants
// keys a proxy cannot predict; a load generator needs them cheap. Seeded from the OS.
class Rng {
 public:
  Rng() {
    std::random_device rd;
    state_ = (uint64_t{rd()} << 32 | rd()) | 1;
  }
  uint64_t next() {
    state_ ^= state_ >> 12, state_ ^= state_ << 25, state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1DULL;
  }

 private:
  uint64_t state_;
};

// Appends one masked, final text frame carrying `text` (RFC 6455 §5.2, §5.3).
void append_frame(std::string& out, uint8_t opcode, std::string_view text, Rng& rng) {
  const size_t n = text.size();
  out += static_cast<char>(0x80 | opcode);
  if (n < 126) {
    out += static_cast<char>(0x80 | n);
  } else if (n <= 0xffff) {
    out += static_cast<char>(0x80 | 126);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xff);
  } else {
    out += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; --i) out += static_cast<char>(uint64_t{n} >> (8 * i));
  }
  const auto key = static_cast<uint32_t>(rng.next());
  uint8_t mask[4];
  std::memcpy(mask, &key, 4);
  out.append(reinterpret_cast<const char*>(mask), 4);
  const size_t at = out.size();
  out.append(text);
  for (size_t i = 0; i < n; ++i) out[at + i] = static_cast<char>(out[at + i] ^ mask[i % 4]);
}

// The first four elements of a Phoenix v2 frame [join_ref, ref, topic, event, payload]
// (docs/protocol.md §7) and the payload's text. The strings this bench compares are
// its own (refs, topics, events: no escapes), so a string is read up to its quote.
struct PhoenixView {
  std::optional<std::string_view> join_ref, ref;
  std::string_view topic, event, payload;
};

std::optional<PhoenixView> parse_phoenix(std::string_view text) {
  size_t at = 0;
  auto element = [&](bool nullable) -> std::optional<std::optional<std::string_view>> {
    if (nullable && text.substr(at, 4) == "null") {
      at += 4;
      return std::optional<std::string_view>{};
    }
    if (at >= text.size() || text[at] != '"') return std::nullopt;
    const size_t end = text.find('"', at + 1);
    if (end == std::string_view::npos) return std::nullopt;
    std::optional<std::string_view> value = text.substr(at + 1, end - at - 1);
    at = end + 1;
    return value;
  };
  auto comma = [&] { return at < text.size() && text[at++] == ','; };
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') return std::nullopt;
  at = 1;
  PhoenixView v;
  auto join_ref = element(true);
  if (!join_ref || !comma()) return std::nullopt;
  auto ref = element(true);
  if (!ref || !comma()) return std::nullopt;
  auto topic = element(false);
  if (!topic || !comma()) return std::nullopt;
  auto event = element(false);
  if (!event || !comma()) return std::nullopt;
  v.join_ref = *join_ref, v.ref = *ref, v.topic = **topic, v.event = **event;
  v.payload = text.substr(at, text.size() - 1 - at);
  return v;
}

// Whether a phx_reply payload says "status":"ok". prismd writes object keys in
// alphabetical order ("response" before "status"), so the common case is a suffix test;
// anything else is parsed properly.
bool reply_ok(std::string_view payload) {
  if (payload.ends_with(R"(,"status":"ok"})")) return true;
  const auto j = nlohmann::json::parse(payload, nullptr, false);
  return j.is_object() && j.value("status", "") == "ok";
}

std::optional<uint64_t> to_number(std::string_view text) {
  uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return n;
}

// The number after `"key":` in a payload this bench wrote ({"pub":P,"seq":N}).
std::optional<uint64_t> number_after(std::string_view payload, std::string_view key) {
  const size_t at = payload.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  size_t end = at + key.size();
  while (end < payload.size() && payload[end] >= '0' && payload[end] <= '9') ++end;
  return to_number(payload.substr(at + key.size(), end - at - key.size()));
}

struct InFlight {
  uint64_t ref;
  int64_t sent_ns;    // when it left (closed loop) or was scheduled to (open loop)
  int remaining = 1;  // fan-out: subscribers that have not received it yet
};

struct Connection {
  enum class State { kIdle, kConnecting, kUpgrading, kJoining, kReady };
  int fd = -1;
  State state = State::kIdle;
  int index = 0;
  std::string key;    // Sec-WebSocket-Key, base64 of 16 random bytes
  std::string path;   // the upgrade request's
  std::string topic;  // echo:bench<i>, echo:fanout, or a rooms channel
  std::string in;
  size_t in_at = 0;
  std::string out;
  size_t out_at = 0;
  bool dirty = false;        // has bytes to write this turn
  bool watch_write = false;  // EPOLLOUT registered
  uint64_t next_ref = 2;     // "1" is the join
  int64_t started_ns = 0;    // connect began (connect modes)
  int64_t join_sent_ns = 0;
  std::vector<InFlight> inflight;
};

struct Stats {
  uint64_t completed = 0;  // messages answered, deliveries, or sessions, in the window
  uint64_t errors = 0;
  uint64_t timeouts = 0;
  uint64_t joins = 0;
  uint64_t shouts_ok = 0;  // fan-out: publishers' phx_reply ok (shout or rooms push)
  uint64_t shouts = 0;     // fan-out: shouts (pushes) fully delivered in the window
  int64_t max_ns = 0;
  LatencyHistogram latency;
  LatencyHistogram join_latency;
  std::string first_error;
};

class WsBench {
 public:
  explicit WsBench(const Options& opts) : opts_(opts) {}

  int run() {
    if (auto parsed = parse_server(); !parsed.empty()) return fail(parsed);
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return fail(std::string("epoll_create1: ") + std::strerror(errno));
    // Open loop sleeps to the microsecond; the default 50 µs timer slack would blur it.
    ::prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    pad_.assign(opts_.payload_bytes > 16 ? opts_.payload_bytes - 16 : 0, 'x');

    const bool connect_mode = connects_per_session();
    const int count = fanout() ? opts_.subscribers : opts_.connections;
    if (rooms() && opts_.instance.empty()) return fail("--mode " + opts_.mode_name + " needs --instance");
    // A rooms push reaches the other members (docs/rooms.md): a lone member reaches nobody.
    if (opts_.mode == Mode::kRoomsFanout && count < 2) return fail("rooms-fanout needs 2 subscribers or more");
    connections_.resize(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) {
      Connection& c = connections_[static_cast<size_t>(i)];
      c.index = i;
      if (rooms()) {
        // One user per socket: members of a room are distinct users (limits.max_users).
        c.topic = opts_.channel;
        c.path = "/socket/" + opts_.instance + "/websocket?vsn=2.0.0&userId=bench" + std::to_string(i);
      } else {
        c.topic = fanout() ? "echo:fanout" : "echo:bench" + std::to_string(i);
        c.path = opts_.path;
      }
      c.inflight.reserve(static_cast<size_t>(opts_.inflight));
    }
    if (fanout()) {
      publishers_ = std::min(opts_.publishers, count);
    }

    const int64_t t0 = now_ns();
    const int64_t rss_before = server_rss_kb();
    const int64_t heap_before = opts_.server_heap ? server_heap_bytes() : 0;
    if (heap_before < 0) return fail("no prism_heap_inuse_bytes in " + opts_.server + "/metrics");
    for (auto& c : connections_) start_connect(c, t0);
    if (!connect_mode) {
      // Everyone connected (and joined) before the clock starts.
      while (error_.empty() && ready_ < count) {
        if (now_ns() - t0 > kSetupTimeoutNs) {
          fatal(std::to_string(ready_) + " of " + std::to_string(count) +
                " connections ready after 15 s");
          break;
        }
        flush_dirty();
        poll_once(100'000'000);
      }
      if (!error_.empty()) return report(0);
      // What S connected, joined sockets cost the server: read before the load starts, so
      // only the connections and their joins are in it.
      if (rss_before > 0) rss_growth_kb_ = server_rss_kb() - rss_before;
    }
    setup_ms_ = static_cast<double>(now_ns() - t0) / 1e6;

    start_ns_ = now_ns();
    measure_ns_ = start_ns_ + static_cast<int64_t>(opts_.warmup_s * 1e9);
    end_ns_ = measure_ns_ + static_cast<int64_t>(opts_.duration_s * 1e9);
    rusage before{};
    ::getrusage(RUSAGE_SELF, &before);
    int64_t next_scan = start_ns_ + kScanEveryNs;
    interval_ns_ = opts_.rate > 0 && !connect_mode ? 1e9 / opts_.rate : 0;
    for (;;) {
      int64_t now = now_ns();
      if (!error_.empty()) break;
      if (now >= end_ns_) {
        // Nothing completed yet (a slow box: ASan, a busy CI machine, 100 sockets to reach):
        // the window stays open until the first completion, never past a stuck reply,
        // which expire() fails after 5 s. A speed is never what fails a run.
        const bool some_shout_ok = !fanout() || stats_.shouts_ok != 0;
        if (stats_.completed != 0 && some_shout_ok) break;
        end_ns_ = now + kScanEveryNs;
      }
      bool blocked = false;
      if (interval_ns_ > 0) {
        blocked = send_due(now);
      } else if (!connect_mode) {
        for (auto& c : connections_) fill(c, now);
      }
      flush_dirty();
      if (now >= next_scan) {
        expire(now);
        next_scan = now + kScanEveryNs;
      }
      int64_t wait = std::min(end_ns_, next_scan) - now;
      if (interval_ns_ > 0 && !blocked) wait = std::min(wait, next_due_ns() - now);
      poll_once(std::max<int64_t>(wait, 0));
    }
    rusage after{};
    ::getrusage(RUSAGE_SELF, &after);
    if (opts_.server_heap && error_.empty()) {
      // What the connected, joined sockets hold once nothing is in flight: what the
      // server still had to send at setup (a room's presence as it filled) is gone by then.
      drain();
      heap_growth_ = server_heap_bytes() - heap_before;
    }
    auto cpu_s = [](const rusage& r) {
      return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
             static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
    };
    client_cpu_s_ = cpu_s(after) - cpu_s(before);
    return report(
        std::max(0.0, static_cast<double>(std::min(now_ns(), end_ns_) - measure_ns_) / 1e9));
  }

  ~WsBench() {
    for (auto& c : connections_) {
      if (c.fd >= 0) ::close(c.fd);
    }
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

 private:
  static int fail(const std::string& why) {
    std::fprintf(stderr, "ws_bench: %s\n", why.c_str());
    return 1;
  }

  std::string parse_server() {
    const size_t colon = opts_.server.rfind(':');
    if (colon == std::string::npos) return "--server must be HOST:PORT";
    const auto port = to_number(std::string_view(opts_.server).substr(colon + 1));
    if (!port || *port == 0 || *port > 65535) return "--server " + opts_.server + ": bad port";
    host_ = opts_.server.substr(0, colon);
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(static_cast<uint16_t>(*port));
    if (inet_pton(AF_INET, host_.c_str(), &addr_.sin_addr) != 1) {
      return "--server " + opts_.server + ": not an IPv4 address";
    }
    return {};
  }

  bool measuring(int64_t t) const { return t >= measure_ns_ && t < end_ns_; }
  bool fanout() const { return opts_.mode == Mode::kFanout || opts_.mode == Mode::kRoomsFanout; }
  bool rooms() const { return opts_.mode == Mode::kRoomsJoin || opts_.mode == Mode::kRoomsFanout; }
  bool join_mode() const { return opts_.mode == Mode::kPhoenixJoin || opts_.mode == Mode::kRoomsJoin; }
  bool connects_per_session() const { return opts_.mode == Mode::kEchoConnect || join_mode(); }

  // prismd's prism_heap_inuse_bytes (docs/operations.md) from GET /metrics on --server,
  // which serves it beside the WebSocket upgrades; -1 when it cannot be read.
  int64_t server_heap_bytes() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    const timeval limit{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    std::string answer;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) == 0) {
      const std::string ask =
          "GET /metrics HTTP/1.1\r\nHost: " + opts_.server + "\r\nConnection: close\r\n\r\n";
      if (::send(fd, ask.data(), ask.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(ask.size())) {
        char chunk[16384];
        for (ssize_t n; (n = ::recv(fd, chunk, sizeof chunk, 0)) > 0;) answer.append(chunk, static_cast<size_t>(n));
      }
    }
    ::close(fd);
    const std::string_view name = "\nprism_heap_inuse_bytes ";
    const size_t at = answer.find(name);
    if (at == std::string::npos) return -1;
    return std::strtoll(answer.c_str() + at + name.size(), nullptr, 10);
  }

  // --rss-pid's resident set (proc(5) status, VmRSS) in KiB; 0 without --rss-pid.
  int64_t server_rss_kb() const {
    if (opts_.rss_pid <= 0) return 0;
    std::ifstream status("/proc/" + std::to_string(opts_.rss_pid) + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.starts_with("VmRSS:")) return std::stoll(line.substr(6));
    }
    return 0;
  }

  // A failure of the run itself (refused, closed, a frame this client cannot read): it stops.
  void fatal(std::string why) {
    if (error_.empty()) error_ = std::move(why);
  }

  // An error reply: counted, the run goes on, and fails at the end.
  void error_reply(std::string_view frame) {
    ++stats_.errors;
    if (stats_.first_error.empty()) stats_.first_error = std::string(frame.substr(0, 200));
  }

  void start_connect(Connection& c, int64_t now) {
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return fatal(std::string("socket: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c.state = Connection::State::kConnecting;
    c.in.clear(), c.in_at = 0, c.out.clear(), c.out_at = 0, c.dirty = false;
    c.inflight.clear();
    c.next_ref = 2;
    c.started_ns = now;
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) != 0 &&
        errno != EINPROGRESS) {
      return fatal("connect to " + opts_.server + ": " + std::strerror(errno));
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u32 = static_cast<uint32_t>(c.index);
    c.watch_write = true;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
      fatal(std::string("epoll_ctl: ") + std::strerror(errno));
    }
  }

  // Connect modes: the session is done; close it with a reset (no TIME_WAIT left behind
  // on either side, so thousands a second do not run out of ports) and start the next.
  void recycle(Connection& c, int64_t now) {
    const linger reset{1, 0};
    ::setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    ::close(c.fd);  // also leaves the epoll set
    if (c.state == Connection::State::kReady || c.state == Connection::State::kJoining) {
      if (ready_ > 0) --ready_;
    }
    c.fd = -1;
    start_connect(c, now);
  }

  void on_connected(Connection& c) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return fatal("connect to " + opts_.server + ": " + std::strerror(err));
    uint8_t nonce[16];
    for (int i = 0; i < 16; i += 8) {
      const uint64_t r = rng_.next();
      std::memcpy(nonce + i, &r, 8);
    }
    c.key = base64(nonce, sizeof nonce);
    c.out += "GET " + c.path + " HTTP/1.1\r\nHost: " + opts_.server +
             "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + c.key +
             "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    c.state = Connection::State::kUpgrading;
    mark_dirty(c);
  }

  // The 101 answer (RFC 6455 §4.2.2); false until it has arrived whole.
  bool on_upgrade_answer(Connection& c, int64_t now) {
    const size_t end = c.in.find("\r\n\r\n", c.in_at);
    if (end == std::string::npos) {
      if (c.in.size() > 16384) fatal("the upgrade answer has no end");
      return false;
    }
    const std::string head = c.in.substr(c.in_at, end - c.in_at);
    c.in_at = end + 4;
    const std::string status = head.substr(0, head.find("\r\n"));
    if (status.find(" 101 ") == std::string::npos) {
      fatal("upgrade refused by " + opts_.server + ": " + status);
      return false;
    }
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    const std::string accept_name = "\r\nsec-websocket-accept:";
    const size_t at = lower.find(accept_name);
    const auto digest = sha1(c.key + std::string(kWebSocketGuid));
    const std::string want = base64(digest.data(), digest.size());
    if (at == std::string::npos) {
      fatal("the upgrade answer has no Sec-WebSocket-Accept");
      return false;
    }
    size_t value = at + accept_name.size();
    while (value < head.size() && head[value] == ' ') ++value;
    if (head.compare(value, want.size(), want) != 0) {
      fatal("Sec-WebSocket-Accept does not match the key");
      return false;
    }
    if (opts_.mode == Mode::kEcho || opts_.mode == Mode::kEchoConnect) {
      c.state = Connection::State::kReady;
      ++ready_;
      if (opts_.mode == Mode::kEchoConnect) send_message(c, now);
    } else {
      c.state = Connection::State::kJoining;
      c.join_sent_ns = now;
      send_text(c, "[\"1\",\"1\",\"" + c.topic + "\",\"phx_join\",{}]");
    }
    return true;
  }

  void send_text(Connection& c, std::string_view text) {
    append_frame(c.out, kOpText, text, rng_);
    mark_dirty(c);
  }

  // One request: an echo (raw or Phoenix) or, for a publisher, a shout. Built in one
  // reused buffer: the client's cost per message is part of every figure.
  void send_message(Connection& c, int64_t sent_ns) {
    const uint64_t ref = c.next_ref++;
    char digits[24];
    const std::string_view r(
        digits,
        static_cast<size_t>(std::to_chars(digits, digits + sizeof digits, ref).ptr - digits));
    std::string& text = text_;
    text.assign("[\"1\",\"").append(r).append("\",\"").append(c.topic);
    if (fanout()) {
      // A shout reaches every subscriber, the publisher too; a rooms push the others.
      const bool push = opts_.mode == Mode::kRoomsFanout;
      text.append(push ? "\",\"push\",{\"pub\":" : "\",\"shout\",{\"pub\":")
          .append(std::to_string(c.index))
          .append(",\"seq\":")
          .append(r)
          .append("}]");
      c.inflight.push_back({ref, sent_ns, opts_.subscribers - (push ? 1 : 0)});
    } else {
      text.append("\",\"echo\",{\"n\":").append(r).append(",\"p\":\"").append(pad_).append("\"}]");
      c.inflight.push_back({ref, sent_ns, 1});
    }
    send_text(c, text);
  }

  // Closed loop: top the connection up to K in flight.
  void fill(Connection& c, int64_t now) {
    if (c.state != Connection::State::kReady) return;
    if (fanout() && c.index >= publishers_) return;
    while (c.inflight.size() < static_cast<size_t>(opts_.inflight)) send_message(c, now);
  }

  // Open loop: message i of the schedule is due at start + i / rate, on connection
  // i mod N (publishers only, in fan-out); its latency counts from that moment.
  int64_t next_due_ns() const {
    return start_ns_ + static_cast<int64_t>(static_cast<double>(next_index_) * interval_ns_);
  }
  // Returns whether the schedule waits for a reply (not for the clock).
  bool send_due(int64_t now) {
    const size_t senders =
        fanout() ? static_cast<size_t>(publishers_) : connections_.size();
    while (next_due_ns() <= now) {
      Connection& c = connections_[next_index_ % senders];
      if (c.state != Connection::State::kReady ||
          c.inflight.size() >= static_cast<size_t>(opts_.inflight)) {
        return true;  // so does the schedule; the late message's latency keeps counting
      }
      send_message(c, next_due_ns());
      ++next_index_;
    }
    return false;
  }

  void mark_dirty(Connection& c) {
    if (!c.dirty) {
      c.dirty = true;
      dirty_.push_back(c.index);
    }
  }

  void flush_dirty() {
    for (size_t k = 0; k < dirty_.size(); ++k) {
      Connection& c = connections_[static_cast<size_t>(dirty_[k])];
      c.dirty = false;
      if (c.fd >= 0 && c.state != Connection::State::kConnecting) flush(c);
    }
    dirty_.clear();
  }

  void flush(Connection& c) {
    while (c.out_at < c.out.size()) {
      const ssize_t n =
          ::send(c.fd, c.out.data() + c.out_at, c.out.size() - c.out_at, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_at += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0 && errno == EINTR) continue;
      return fatal("send to " + opts_.server + ": " + std::strerror(errno));
    }
    if (c.out_at == c.out.size()) {
      c.out.clear();
      c.out_at = 0;
    }
    watch_write(c, !c.out.empty());
  }

  void watch_write(Connection& c, bool on) {
    if (c.watch_write == on) return;
    epoll_event ev{};
    ev.events = EPOLLIN | (on ? static_cast<uint32_t>(EPOLLOUT) : 0u);
    ev.data.u32 = static_cast<uint32_t>(c.index);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
    c.watch_write = on;
  }

  void poll_once(int64_t wait_ns) {
    epoll_event events[256];
    int n;
    if (have_pwait2_) {
      const timespec ts{.tv_sec = wait_ns / 1'000'000'000, .tv_nsec = wait_ns % 1'000'000'000};
      n = ::epoll_pwait2(epoll_fd_, events, 256, &ts, nullptr);
      if (n < 0 && errno == ENOSYS) {
        have_pwait2_ = false;
        return;
      }
    } else {
      n = ::epoll_wait(epoll_fd_, events, 256, static_cast<int>((wait_ns + 999'999) / 1'000'000));
    }
    if (n < 0) {
      if (errno != EINTR) fatal(std::string("epoll_wait: ") + std::strerror(errno));
      return;
    }
    const int64_t now = now_ns();
    for (int i = 0; i < n && error_.empty(); ++i) {
      Connection& c = connections_[events[i].data.u32];
      if (c.fd < 0) continue;
      if (c.state == Connection::State::kConnecting) {
        if (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
        continue;
      }
      const int fd = c.fd;
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, now);
      // A connect-mode session may have been recycled: the event was the old socket's.
      if (error_.empty() && c.fd == fd && (events[i].events & EPOLLOUT)) flush(c);
    }
  }

  void on_readable(Connection& c, int64_t now) {
    for (;;) {
      const ssize_t n = ::recv(c.fd, scratch_.data(), scratch_.size(), 0);
      if (n > 0) c.in.append(scratch_.data(), static_cast<size_t>(n));
      if (n == 0) {
        return fatal(describe(c) +
                     (c.state == Connection::State::kUpgrading
                          ? ": the server closed the connection instead of upgrading it"
                          : ": the server closed the connection"));
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        return fatal(describe(c) + ": recv: " + std::strerror(errno));
      }
      if (static_cast<size_t>(n) < scratch_.size()) break;
    }
    const int fd = c.fd;
    if (c.state == Connection::State::kUpgrading && !on_upgrade_answer(c, now)) return;
    read_frames(c, now);
    if (c.fd != fd) return;  // recycled: the new connection starts empty
    if (c.in_at == c.in.size()) {
      c.in.clear();
      c.in_at = 0;
    } else if (c.in_at > kReadChunk) {
      c.in.erase(0, c.in_at);
      c.in_at = 0;
    }
  }

  std::string describe(const Connection& c) const {
    return "connection " + std::to_string(c.index) + " to " + opts_.server;
  }

  // Server frames are not masked (RFC 6455 §5.1) and, from both servers, never fragmented.
  void read_frames(Connection& c, int64_t now) {
    const int fd = c.fd;
    while (error_.empty() && c.fd == fd) {
      const size_t avail = c.in.size() - c.in_at;
      if (avail < 2) return;
      const auto* p = reinterpret_cast<const uint8_t*>(c.in.data() + c.in_at);
      if (p[1] & 0x80) return fatal(describe(c) + ": the server masked a frame");
      uint64_t len = p[1] & 0x7f;
      size_t header = 2;
      if (len == 126) {
        if (avail < 4) return;
        len = uint64_t{p[2]} << 8 | p[3];
        header = 4;
      } else if (len == 127) {
        if (avail < 10) return;
        len = 0;
        for (int i = 0; i < 8; ++i) len = len << 8 | p[2 + i];
        header = 10;
      }
      if (avail < header + len) return;
      const uint8_t opcode = p[0] & 0x0f;
      const bool fin = (p[0] & 0x80) != 0;
      const std::string_view body(c.in.data() + c.in_at + header, static_cast<size_t>(len));
      c.in_at += header + static_cast<size_t>(len);
      if (!fin || opcode == 0) return fatal(describe(c) + ": a fragmented message");
      if (opcode == kOpText) {
        on_text(c, body, now);
      } else if (opcode == kOpClose) {
        const int code = body.size() >= 2
                             ? (static_cast<uint8_t>(body[0]) << 8 | static_cast<uint8_t>(body[1]))
                             : 0;
        return fatal(describe(c) + ": closed by the server, status " + std::to_string(code) + " " +
                     std::string(body.size() > 2 ? body.substr(2) : std::string_view{}));
      } else if (opcode == kOpPing) {
        append_frame(c.out, kOpPong, body, rng_);
        mark_dirty(c);
      } else if (opcode != kOpPong) {
        return fatal(describe(c) + ": an unexpected frame, opcode " + std::to_string(opcode));
      }
    }
  }

  // The in-flight entry for `ref`, or nullptr.
  static InFlight* find(Connection& c, uint64_t ref) {
    for (auto& f : c.inflight) {
      if (f.ref == ref) return &f;
    }
    return nullptr;
  }
  static void remove(Connection& c, InFlight* f) {
    *f = c.inflight.back();
    c.inflight.pop_back();
  }

  void record(int64_t started, int64_t now) {
    if (!measuring(now)) return;
    ++stats_.completed;
    const int64_t ns = now - started;
    stats_.latency.record(ns);
    stats_.max_ns = std::max(stats_.max_ns, ns);
  }

  void on_text(Connection& c, std::string_view text, int64_t now) {
    const auto frame = parse_phoenix(text);
    if (!frame)
      return fatal(describe(c) + ": not a Phoenix v2 frame: " + std::string(text.substr(0, 200)));
    // A room tells its members who comes and goes (docs/rooms.md, presence): not what
    // this bench measures.
    if (rooms() && (frame->event == "presence_state" || frame->event == "presence_diff")) return;
    if (c.state == Connection::State::kJoining) {
      if (frame->event != "phx_reply" || frame->ref != std::string_view("1")) {
        return fatal(describe(c) + ": expected the join's reply, got " +
                     std::string(text.substr(0, 200)));
      }
      if (!reply_ok(frame->payload)) {
        error_reply(text);
        return fatal(describe(c) + ": join refused: " + std::string(text.substr(0, 200)));
      }
      c.state = Connection::State::kReady;
      ++ready_;
      if (measuring(now)) {
        ++stats_.joins;
        stats_.join_latency.record(now - c.join_sent_ns);
      }
      if (join_mode()) {
        record(c.started_ns, now);
        recycle(c, now);
      }
      return;
    }
    switch (opts_.mode) {
      case Mode::kEcho:
      case Mode::kEchoConnect:
      case Mode::kPhoenix: {
        const bool phoenix = opts_.mode == Mode::kPhoenix;
        if (frame->event != (phoenix ? "phx_reply" : "echo") || !frame->ref) {
          return fatal(describe(c) + ": unexpected frame " + std::string(text.substr(0, 200)));
        }
        const auto ref = to_number(*frame->ref);
        InFlight* f = ref ? find(c, *ref) : nullptr;
        if (f == nullptr)
          return fatal(describe(c) +
                       ": a reply to nothing in flight: " + std::string(text.substr(0, 200)));
        if (phoenix && !reply_ok(frame->payload)) error_reply(text);
        record(opts_.mode == Mode::kEchoConnect ? c.started_ns : f->sent_ns, now);
        remove(c, f);
        if (opts_.mode == Mode::kEchoConnect) recycle(c, now);
        return;
      }
      case Mode::kFanout:
      case Mode::kRoomsFanout: {
        if (frame->event == "phx_reply") {
          if (reply_ok(frame->payload)) {
            ++stats_.shouts_ok;
          } else {
            error_reply(text);
          }
          return;
        }
        const std::string_view delivery = opts_.mode == Mode::kFanout ? "shout" : "msg";
        if (frame->event != delivery || frame->ref) {
          return fatal(describe(c) + ": unexpected frame " + std::string(text.substr(0, 200)));
        }
        const auto pub = number_after(frame->payload, "\"pub\":");
        const auto seq = number_after(frame->payload, "\"seq\":");
        if (!pub || !seq || *pub >= static_cast<uint64_t>(publishers_)) {
          return fatal(describe(c) +
                       ": a shout this bench did not send: " + std::string(text.substr(0, 200)));
        }
        Connection& publisher = connections_[*pub];
        InFlight* f = find(publisher, *seq);
        if (f == nullptr)
          return fatal(describe(c) +
                       ": a shout delivered twice: " + std::string(text.substr(0, 200)));
        record(f->sent_ns, now);  // one delivery
        if (--f->remaining == 0) {
          if (measuring(now)) ++stats_.shouts;
          remove(publisher, f);
        }
        return;
      }
      case Mode::kPhoenixJoin:
      case Mode::kRoomsJoin:
        return fatal(describe(c) + ": a frame after the join: " + std::string(text.substr(0, 200)));
    }
  }

  // Sends nothing more and reads until every message in flight is answered (or fails).
  void drain() {
    auto in_flight = [&] {
      size_t n = 0;
      for (const auto& c : connections_) n += c.inflight.size();
      return n;
    };
    int64_t next_scan = now_ns() + kScanEveryNs;
    while (error_.empty() && in_flight() > 0) {
      flush_dirty();
      poll_once(kScanEveryNs);
      if (const int64_t now = now_ns(); now >= next_scan) {
        expire(now);
        next_scan = now + kScanEveryNs;
      }
    }
  }

  // A message (or a connect-mode session) still unanswered after kReplyTimeoutNs fails the run.
  void expire(int64_t now) {
    for (auto& c : connections_) {
      const bool stuck_session = connects_per_session() && c.fd >= 0 &&
          now - c.started_ns > kReplyTimeoutNs;
      bool stuck = stuck_session;
      for (const auto& f : c.inflight) stuck = stuck || now - f.sent_ns > kReplyTimeoutNs;
      if (stuck) {
        ++stats_.timeouts;
        return fatal(describe(c) + ": no answer within 5 s");
      }
    }
  }

  int report(double seconds) {
    auto us = [](double ns) { return std::round(ns / 100.0) / 10.0; };
    const double rate = seconds > 0 ? static_cast<double>(stats_.completed) / seconds : 0;
    const char* count_key = "messages";
    const char* rate_key = "rps";
    switch (opts_.mode) {
      case Mode::kFanout:
      case Mode::kRoomsFanout: count_key = "deliveries", rate_key = "deliveries_per_s"; break;
      case Mode::kEchoConnect:
      case Mode::kPhoenixJoin:
      case Mode::kRoomsJoin: count_key = "sessions", rate_key = "sessions_per_s"; break;
      default: break;
    }
    std::printf(
        "label=%s mode=%s connections=%zu inflight=%d rate=%.0f %s=%llu seconds=%.3f %s=%.1f "
        "p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f",
        opts_.label.c_str(), opts_.mode_name.c_str(), connections_.size(), opts_.inflight,
        opts_.rate, count_key, static_cast<unsigned long long>(stats_.completed), seconds, rate_key,
        std::round(rate * 10) / 10, us(stats_.latency.quantile_ns(0.5)),
        us(stats_.latency.quantile_ns(0.99)), us(stats_.latency.quantile_ns(0.999)),
        us(static_cast<double>(stats_.max_ns)));
    if (fanout()) {
      std::printf(
          " publishers=%d shouts=%llu shouts_per_s=%.1f", publishers_,
          static_cast<unsigned long long>(stats_.shouts),
          seconds > 0 ? std::round(static_cast<double>(stats_.shouts) / seconds * 10) / 10 : 0.0);
    }
    if (stats_.joins > 0) {
      std::printf(" joins=%llu join_p50_us=%.1f join_p99_us=%.1f",
                  static_cast<unsigned long long>(stats_.joins),
                  us(stats_.join_latency.quantile_ns(0.5)),
                  us(stats_.join_latency.quantile_ns(0.99)));
    }
    const auto per_connection = [&](double bytes) {
      return bytes / static_cast<double>(std::max<size_t>(connections_.size(), 1));
    };
    if (opts_.rss_pid > 0) {
      std::printf(" server_rss_growth_kb=%lld rss_per_connection_bytes=%.0f",
                  static_cast<long long>(rss_growth_kb_),
                  per_connection(static_cast<double>(rss_growth_kb_) * 1024.0));
    }
    if (opts_.server_heap) {
      std::printf(" server_heap_growth_kb=%lld heap_per_connection_bytes=%.0f",
                  static_cast<long long>(heap_growth_ / 1024),
                  per_connection(static_cast<double>(heap_growth_)));
    }
    std::printf(" setup_ms=%.1f client_cpu=%.2f timeouts=%llu errors=%llu\n", setup_ms_,
                seconds > 0 ? client_cpu_s_ / (seconds + opts_.warmup_s) : 0.0,
                static_cast<unsigned long long>(stats_.timeouts),
                static_cast<unsigned long long>(stats_.errors));
    std::fflush(stdout);
    if (!error_.empty()) return fail(error_);
    if (stats_.errors > 0) {
      return fail(std::to_string(stats_.errors) +
                  " error replies; the first: " + stats_.first_error);
    }
    if (stats_.completed == 0) return fail("nothing completed against " + opts_.server);
    if (fanout() && stats_.shouts_ok == 0) {
      return fail("no shout (push) was answered phx_reply ok");
    }
    return 0;
  }

  const Options& opts_;
  std::string host_;
  sockaddr_in addr_{};
  int epoll_fd_ = -1;
  bool have_pwait2_ = true;
  std::vector<Connection> connections_;
  std::vector<int> dirty_;
  int publishers_ = 0;
  int ready_ = 0;
  std::string pad_;
  std::string text_;                                           // the message being built
  std::vector<char> scratch_ = std::vector<char>(kReadChunk);  // what one recv returns
  Rng rng_;
  int64_t start_ns_ = 0, measure_ns_ = 0, end_ns_ = 0;
  double interval_ns_ = 0;
  uint64_t next_index_ = 0;
  double setup_ms_ = 0;
  double client_cpu_s_ = 0;
  int64_t rss_growth_kb_ = 0;
  int64_t heap_growth_ = 0;  // bytes
  Stats stats_;
  std::string error_;
};

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  CLI::App app{
      "ws_bench: WebSocket load for `make bench` (tests/bench/run_ws_bench.sh). Modes:\n"
      "  echo            raw text echo (lws_echo_baseline): --connections x --inflight\n"
      "  phoenix         prismd: join echo:bench<i>, then `echo` events, --inflight each\n"
      "  fanout          prismd: --subscribers joined to echo:fanout, --publishers of them\n"
      "                  keep --inflight shouts in flight (done when every subscriber has it)\n"
      "  echo-connect    connect, upgrade, one echo, close; --connections at once\n"
      "  phoenix-join    connect, upgrade, phx_join, close; --connections at once\n"
      "  rooms-join      the same at /socket/<--instance>/websocket, joining --channel\n"
      "  rooms-fanout    --subscribers members of --instance's --channel, --publishers of\n"
      "                  them keep --inflight pushes in flight (done when every other member\n"
      "                  has the msg)\n"
      "With --rate, messages leave on a fixed schedule (open loop) and latency counts from\n"
      "the scheduled time. Prints one key=value line; exits 1 on a refused or closed\n"
      "connection, an error reply, a timeout, or nothing completed."};
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "ws_bench: " + std::string(e.what()) + " (see --help)\n";
  });
  app.add_option("--mode", opts.mode_name,
                 "echo, phoenix, fanout, echo-connect, phoenix-join, rooms-join or rooms-fanout")
      ->check(CLI::IsMember({"echo", "phoenix", "fanout", "echo-connect", "phoenix-join",
                             "rooms-join", "rooms-fanout"}))
      ->capture_default_str();
  app.add_option("--server", opts.server, "Target HOST:PORT (IPv4)")->required();
  app.add_option("--path", opts.path, "Upgrade path")->capture_default_str();
  app.add_option("--connections", opts.connections,
                 "Connections (echo, phoenix; connect modes: at once)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--inflight", opts.inflight, "Messages in flight per connection (or publisher)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--duration", opts.duration_s, "Seconds measured")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--warmup", opts.warmup_s, "Seconds of load before measuring")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--rate", opts.rate,
                 "Open loop: messages per second over all connections (0: closed loop)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--subscribers", opts.subscribers, "fanout: sockets joined to the topic")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--publishers", opts.publishers, "fanout: of those, how many shout")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--payload-bytes", opts.payload_bytes,
                 "echo, phoenix: about this many bytes of payload")
      ->capture_default_str();
  app.add_option("--instance", opts.instance, "rooms modes: the instance's id");
  app.add_option("--channel", opts.channel, "rooms modes: the channel joined")->capture_default_str();
  app.add_option("--rss-pid", opts.rss_pid,
                 "The server's pid: print its RSS growth while the connections open and join")
      ->check(CLI::PositiveNumber);
  app.add_flag("--server-heap", opts.server_heap,
               "prismd only: print its heap growth (prism_heap_inuse_bytes in /metrics) while the "
               "connections open and join");
  app.add_option("--label", opts.label, "Name printed with the result")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (opts.mode_name == "echo") opts.mode = Mode::kEcho;
  if (opts.mode_name == "phoenix") opts.mode = Mode::kPhoenix;
  if (opts.mode_name == "fanout") opts.mode = Mode::kFanout;
  if (opts.mode_name == "echo-connect") opts.mode = Mode::kEchoConnect;
  if (opts.mode_name == "phoenix-join") opts.mode = Mode::kPhoenixJoin;
  if (opts.mode_name == "rooms-join") opts.mode = Mode::kRoomsJoin;
  if (opts.mode_name == "rooms-fanout") opts.mode = Mode::kRoomsFanout;
  return WsBench(opts).run();
}
