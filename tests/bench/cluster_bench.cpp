// cluster_bench: the cluster rows of `make bench` (tests/bench/run_cluster_bench.sh).
// --mode prism: S subscriber sessions spread over --subscribe-on servers (admin logins,
// HOST_SUBSCRIBE), one publisher session on --publish-on keeping --inflight messages in
// flight (HOST_PUBLISH); a message is done once every subscriber has it. --mode redis:
// the same loop on Redis alone, one subscriber connection per S and one publisher, the
// raw pub/sub round trip prismd's cross-node publish is built on. One thread each side
// of the wire: the prism mode polls every session in turn; the redis mode reads the
// subscribers on their own threads. Prints one key=value line; exits 1 on a failure.
#include <hiredis/hiredis.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "histogram.hpp"
#include "prism/client.hpp"
#include "prism/v1/admin.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using prism::bench::LatencyHistogram;

struct Options {
  std::string mode = "prism";
  std::vector<std::string> subscribe_on;  // prism: HOST:PORT of each node, round robin
  std::string publish_on;
  std::vector<std::string> keys;  // prism: the server.pub of each node named above, same order
  std::string publisher_key;
  std::vector<std::string> tokens;  // prism: each node's admin token
  std::string publisher_token;
  std::string redis = "127.0.0.1:6379";
  int subscribers = 2;
  int inflight = 16;
  double duration_s = 5;
  double warmup_s = 0.5;
  std::string topic = "bench";
  std::string label = "cluster";
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// What both modes count: message `seq` left at sent_ns and S deliveries are due.
class Tally {
 public:
  Tally(int subscribers, int64_t measure_from, int64_t measure_to)
      : subscribers_(subscribers), from_(measure_from), to_(measure_to) {}

  void sent(uint64_t seq, int64_t at) {
    std::lock_guard lock(mutex_);
    pending_[seq] = {at, subscribers_};
  }
  // One subscriber has `seq`; false when it was not in flight (a duplicate, a stranger).
  bool delivered(uint64_t seq, int64_t at) {
    std::lock_guard lock(mutex_);
    const auto it = pending_.find(seq);
    if (it == pending_.end()) return false;
    if (at >= from_ && at < to_) {
      ++deliveries_;
      latency_.record(at - it->second.sent);
    }
    if (--it->second.remaining == 0) {
      if (at >= from_ && at < to_) ++messages_;
      pending_.erase(it);
      done_.fetch_add(1);
      room_.notify_one();
    }
    return true;
  }
  // Waits until fewer than `n` are in flight, or `limit` passed.
  void wait_below(size_t n, std::chrono::microseconds limit) {
    std::unique_lock lock(mutex_);
    room_.wait_for(lock, limit, [&] { return pending_.size() < n; });
  }
  uint64_t done() const { return done_.load(); }
  size_t in_flight() {
    std::lock_guard lock(mutex_);
    return pending_.size();
  }
  int64_t oldest_ns() {
    std::lock_guard lock(mutex_);
    int64_t oldest = 0;
    for (const auto& [seq, p] : pending_) {
      if (oldest == 0 || p.sent < oldest) oldest = p.sent;
    }
    return oldest;
  }
  void report(const Options& o, double seconds, double client_cpu) {
    std::lock_guard lock(mutex_);
    std::printf(
        "label=%s mode=%s subscribers=%d inflight=%d messages=%llu deliveries=%llu seconds=%.3f "
        "messages_per_s=%.1f deliveries_per_s=%.1f p50_us=%.1f p99_us=%.1f client_cpu=%.2f\n",
        o.label.c_str(), o.mode.c_str(), subscribers_, o.inflight,
        static_cast<unsigned long long>(messages_), static_cast<unsigned long long>(deliveries_), seconds,
        static_cast<double>(messages_) / seconds, static_cast<double>(deliveries_) / seconds,
        latency_.quantile_ns(0.5) / 1000.0, latency_.quantile_ns(0.99) / 1000.0, client_cpu);
    std::fflush(stdout);
  }
  uint64_t messages() const { return messages_; }

 private:
  struct Pending {
    int64_t sent;
    int remaining;
  };
  int subscribers_;
  int64_t from_, to_;
  std::mutex mutex_;
  std::condition_variable room_;
  std::map<uint64_t, Pending> pending_;
  std::atomic<uint64_t> done_{0};
  uint64_t messages_ = 0, deliveries_ = 0;
  LatencyHistogram latency_;
};

std::optional<uint64_t> seq_of(std::string_view payload) {
  uint64_t seq = 0;
  const auto [end, ec] = std::from_chars(payload.data(), payload.data() + payload.size(), seq);
  if (ec != std::errc{} || end != payload.data() + payload.size()) return std::nullopt;
  return seq;
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

int fail(const std::string& why) {
  std::fprintf(stderr, "cluster_bench: %s\n", why.c_str());
  return 1;
}

std::pair<std::string, uint16_t> split(const std::string& endpoint) {
  const size_t colon = endpoint.rfind(':');
  return {endpoint.substr(0, colon), static_cast<uint16_t>(std::stoi(endpoint.substr(colon + 1)))};
}

prism::Expected<prism::client::Client> admin_session(const std::string& endpoint, const std::string& key,
                                                     const std::string& token) {
  auto server_key = prism::client::read_server_key(key);
  if (!server_key) return prism::make_error(server_key.error());
  prism::client::ConnectOptions options;
  options.server_key = *server_key;
  options.timeout = 5s;
  const auto [host, port] = split(endpoint);
  auto c = prism::client::Client::connect({host, port}, options);
  if (!c) return c;
  auto login = c->login("admin", token);
  if (!login || login->status != prism::v1::STATUS_OK) {
    return prism::make_error("admin login on " + endpoint + " failed");
  }
  return c;
}

int run_prism(const Options& o) {
  if (o.subscribe_on.empty() || o.subscribe_on.size() != o.keys.size() || o.tokens.size() != o.keys.size()) {
    return fail("--subscribe-on, --key and --token must name the same nodes, in the same order");
  }
  std::vector<prism::client::Client> sessions;
  for (int i = 0; i < o.subscribers; ++i) {
    const size_t n = static_cast<size_t>(i) % o.subscribe_on.size();
    auto c = admin_session(o.subscribe_on[n], o.keys[n], o.tokens[n]);
    if (!c) return fail(c.error());
    sessions.push_back(std::move(*c));
  }
  auto publisher = admin_session(o.publish_on, o.publisher_key, o.publisher_token);
  if (!publisher) return fail(publisher.error());
  auto publish = [&](const std::string& payload, prism::client::ReplyCallback done) {
    prism::v1::Publish p;
    p.set_topic(o.topic);
    p.set_payload(payload);
    return publisher->send_request(prism::v1::HOST_PUBLISH, p.SerializeAsString(),
                                   prism::v1::DELIVERY_RELIABLE_ORDERED, std::move(done));
  };
  auto poll_all = [&] {
    if (!publisher->poll(0ms)) return false;
    for (auto& s : sessions) {
      if (!s.poll(0ms)) return false;
    }
    return true;
  };

  std::unique_ptr<Tally> tally;
  std::atomic<bool> stray{false};  // a message delivered twice or never sent
  std::vector<char> probed(sessions.size(), 0);
  for (size_t i = 0; i < sessions.size(); ++i) {
    sessions[i].on_topic(o.topic, [&, i](const prism::v1::Message& m) {
      if (m.payload() == "probe") {
        probed[i] = 1;
        return;
      }
      const auto seq = seq_of(m.payload());
      if (!tally || !seq || !tally->delivered(*seq, now_ns())) stray = true;
    });
    if (auto subscribed = sessions[i].subscribe(o.topic); !subscribed) return fail(subscribed.error());
  }
  // A node subscribes the topic's Redis channel after its first subscriber: probes go out
  // until every subscriber has heard one, so that no measured message can be lost to that.
  const int64_t probing_until = now_ns() + 10'000'000'000LL;
  while (std::count(probed.begin(), probed.end(), 1) < static_cast<long>(probed.size())) {
    if (now_ns() > probing_until) return fail("the subscribers did not all hear a probe within 10 s");
    if (auto sent = publish("probe", [](const prism::client::Reply&) {}); !sent) return fail(sent.error());
    const int64_t next = now_ns() + 20'000'000;
    while (now_ns() < next) {
      if (!poll_all()) return fail("a socket failed");
    }
  }

  const int64_t start = now_ns();
  const int64_t from = start + static_cast<int64_t>(o.warmup_s * 1e9);
  const int64_t to = from + static_cast<int64_t>(o.duration_s * 1e9);
  tally = std::make_unique<Tally>(o.subscribers, from, to);
  uint64_t seq = 0;
  uint64_t errors = 0;
  const double cpu_before = cpu_seconds();
  // Each subscriber session on a thread of its own, blocked in poll until traffic comes
  // (a session is single-threaded; no two threads share one); the publisher here, woken
  // when a message is done. Nothing spins: the client leaves the cores to the servers.
  std::atomic<bool> stop{false}, socket_failed{false};
  std::vector<std::thread> readers;
  for (auto& session : sessions) {
    readers.emplace_back([&, s = &session] {
      while (!stop) {
        if (!s->poll(5ms)) socket_failed = true;
      }
    });
  }
  std::string failure;
  while (!stray && !socket_failed) {
    const int64_t now = now_ns();
    if (now >= to && tally->in_flight() == 0) break;
    if (now >= to + 5'000'000'000LL) {
      failure = "messages still undelivered 5 s after the end";
      break;
    }
    while (now < to && tally->in_flight() < static_cast<size_t>(o.inflight)) {
      ++seq;
      tally->sent(seq, now_ns());
      auto r = publish(std::to_string(seq), [&errors](const prism::client::Reply& reply) {
        if (reply.status != prism::v1::STATUS_OK) ++errors;
      });
      if (!r) {
        failure = r.error();
        break;
      }
    }
    if (!failure.empty() || !publisher->poll(0ms)) break;
    tally->wait_below(static_cast<size_t>(o.inflight), 1000us);
  }
  stop = true;
  for (auto& t : readers) t.join();
  if (!failure.empty()) return fail(failure);
  if (socket_failed) return fail("a socket failed");
  if (stray) return fail("a message delivered twice or never sent");
  if (errors > 0) return fail(std::to_string(errors) + " publishes not answered OK");
  tally->report(o, o.duration_s, (cpu_seconds() - cpu_before) / (o.duration_s + o.warmup_s));
  return tally->messages() > 0 ? 0 : fail("nothing delivered");
}

int run_redis(const Options& o) {
  const auto [host, port] = split(o.redis);
  const std::string channel = "bench:" + o.topic;
  const int64_t start = now_ns();
  const int64_t from = start + static_cast<int64_t>(o.warmup_s * 1e9);
  const int64_t to = from + static_cast<int64_t>(o.duration_s * 1e9);
  Tally tally(o.subscribers, from, to);
  std::atomic<bool> stop{false}, failed{false};
  std::atomic<int> ready{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < o.subscribers; ++i) {
    readers.emplace_back([&, host = host, port = port] {
      redisContext* c = redisConnect(host.c_str(), port);
      if (c == nullptr || c->err != 0) {
        failed = true;
        ready.fetch_add(1);
        return;
      }
      const timeval poll_every{0, 100'000};
      redisSetTimeout(c, poll_every);
      auto* r = static_cast<redisReply*>(redisCommand(c, "SUBSCRIBE %s", channel.c_str()));
      if (r != nullptr) freeReplyObject(r);
      ready.fetch_add(1);
      while (!stop) {
        void* reply = nullptr;
        if (redisGetReply(c, &reply) != REDIS_OK) {
          if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->err = 0;  // the timeout: look at `stop` again
            continue;
          }
          failed = true;
          break;
        }
        auto* m = static_cast<redisReply*>(reply);
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 3) {
          const auto seq = seq_of(std::string_view(m->element[2]->str, m->element[2]->len));
          if (!seq || !tally.delivered(*seq, now_ns())) failed = true;
        }
        freeReplyObject(m);
      }
      redisFree(c);
    });
  }
  while (ready.load() < o.subscribers) std::this_thread::sleep_for(1ms);
  redisContext* pub = redisConnect(host.c_str(), port);
  if (pub == nullptr || pub->err != 0 || failed) {
    stop = true;
    for (auto& t : readers) t.join();
    return fail("cannot reach redis at " + o.redis);
  }
  // Every subscriber is subscribed once Redis counts them all.
  for (;;) {
    auto* r = static_cast<redisReply*>(redisCommand(pub, "PUBSUB NUMSUB %s", channel.c_str()));
    const bool all = r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                     r->element[1]->integer == o.subscribers;
    if (r != nullptr) freeReplyObject(r);
    if (all) break;
    std::this_thread::sleep_for(1ms);
  }
  const double cpu_before = cpu_seconds();
  uint64_t seq = 0;
  size_t unanswered = 0;  // PUBLISH replies still to read
  while (!failed) {
    const int64_t now = now_ns();
    if (now >= to && tally.in_flight() == 0) break;
    if (now >= to + 5'000'000'000LL) {
      failed = true;
      break;
    }
    while (now < to && tally.in_flight() < static_cast<size_t>(o.inflight)) {
      ++seq;
      tally.sent(seq, now_ns());
      const std::string payload = std::to_string(seq);
      redisAppendCommand(pub, "PUBLISH %s %b", channel.c_str(), payload.data(), payload.size());
      ++unanswered;
    }
    // Sends what is queued and reads the PUBLISH replies (their count of receivers).
    while (unanswered > 0) {
      void* reply = nullptr;
      if (redisGetReply(pub, &reply) != REDIS_OK) {
        failed = true;
        break;
      }
      freeReplyObject(reply);
      --unanswered;
    }
    if (tally.in_flight() >= static_cast<size_t>(o.inflight) || now >= to) std::this_thread::yield();
  }
  stop = true;
  for (auto& t : readers) t.join();
  redisFree(pub);
  if (failed) return fail("a redis connection failed, or a message was lost or duplicated");
  tally.report(o, o.duration_s, (cpu_seconds() - cpu_before) / (o.duration_s + o.warmup_s));
  return tally.messages() > 0 ? 0 : fail("nothing delivered");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"cluster_bench: publish to subscribers across prismd nodes, or on Redis alone (make bench)"};
  app.add_option("--mode", o.mode, "prism or redis")->check(CLI::IsMember({"prism", "redis"}));
  app.add_option("--subscribe-on", o.subscribe_on, "prism: the nodes (HOST:PORT) subscribers connect to, round robin");
  app.add_option("--key", o.keys, "prism: each of those nodes' server.pub, in the same order");
  app.add_option("--token", o.tokens, "prism: each of those nodes' admin token, in the same order");
  app.add_option("--publish-on", o.publish_on, "prism: the node the publisher connects to");
  app.add_option("--publisher-key", o.publisher_key, "prism: its server.pub");
  app.add_option("--publisher-token", o.publisher_token, "prism: its admin token");
  app.add_option("--redis", o.redis, "redis: HOST:PORT");
  app.add_option("--subscribers", o.subscribers, "Subscribers")->check(CLI::Range(1, 10000));
  app.add_option("--inflight", o.inflight, "Messages in flight")->check(CLI::Range(1, 100000));
  app.add_option("--duration", o.duration_s, "Seconds measured")->check(CLI::PositiveNumber);
  app.add_option("--warmup", o.warmup_s, "Seconds before measuring")->check(CLI::NonNegativeNumber);
  app.add_option("--topic", o.topic, "The topic");
  app.add_option("--label", o.label, "Name printed with the result");
  CLI11_PARSE(app, argc, argv);
  return o.mode == "prism" ? run_prism(o) : run_redis(o);
}
