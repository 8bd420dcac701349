// TopicBus (host/cluster/topic_bus.hpp) over two fake workers whose task queues the test
// runs by hand: subscription limits, cleanup when a session closes, hand-off to the
// session's worker, and plugin subscribers heard once, never inside the publish call.
#include "cluster/topic_bus.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <set>
#include <string>
#include <vector>

namespace prism::cluster {
namespace {

// A worker's loop as the bus sees it: posted tasks wait until run() is called.
class FakeLoop final : public net::LoopAccess {
 public:
  uv_loop_t* loop() override { return nullptr; }
  void post(std::function<void()> task) override { tasks_.push_back(std::move(task)); }
  bool on_loop_thread() const override { return net::current_loop() == this; }
  void at_stop(std::function<void()>) override {}

  // Runs what was posted, as this worker's thread.
  void run() {
    net::LoopAccess* before = net::current_loop();
    net::set_current_loop(this);
    while (!tasks_.empty()) {
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      task();
    }
    net::set_current_loop(before);
  }
  size_t queued() const { return tasks_.size(); }

 private:
  std::deque<std::function<void()>> tasks_;
};

struct Pushed {
  uint64_t session;
  uint32_t packet_id;
  std::string topic;
  std::string payload;
};

class FakeTransport final : public net::ReplyTransport {
 public:
  bool send_reply(const net::RequestOrigin&, uint32_t, uint32_t, v1::Status, std::string_view,
                  std::span<const uint8_t>) override {
    return true;
  }
  net::PushResult send_push(uint64_t session, uint32_t packet_id, v1::Delivery,
                            std::string_view topic, std::span<const uint8_t> payload) override {
    if (!open.contains(session)) return net::PushResult::kNoSession;
    pushed.push_back({session, packet_id, std::string(topic), std::string(payload.begin(), payload.end())});
    return net::PushResult::kQueued;
  }
  bool is_open(uint64_t session) const override { return open.contains(session); }

  std::set<uint64_t> open;
  std::vector<Pushed> pushed;
};

// A session id of worker `w` (protocol.md §5.3: the top byte names the worker).
constexpr uint64_t session_on(unsigned w, uint64_t n) {
  return (uint64_t{w} << net::kConnectionWorkerShift) | n;
}

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class TopicBusTest : public ::testing::Test {
 protected:
  void make_bus(BusLimits limits = {}) {
    bus_ = std::make_unique<TopicBus>(
        std::vector<BusWorker>{{&loops_[0], &transports_[0]}, {&loops_[1], &transports_[1]}},
        limits);
  }
  void SetUp() override { make_bus(); }
  // Runs `body` as worker `w`'s thread.
  template <class Body>
  auto as_worker(unsigned w, Body body) {
    net::set_current_loop(&loops_[w]);
    auto result = body();
    net::set_current_loop(nullptr);
    return result;
  }
  void run_all() {
    for (int round = 0; round < 4; ++round) {
      loops_[0].run();
      loops_[1].run();
    }
  }

  FakeLoop loops_[2];
  FakeTransport transports_[2];
  std::unique_ptr<TopicBus> bus_;
};

TEST_F(TopicBusTest, TopicsMustBePrintableAsciiWithoutSpacesUpTo200Bytes) {
  EXPECT_TRUE(valid_topic("room:lobby/1"));
  EXPECT_TRUE(valid_topic(std::string(200, 't')));
  EXPECT_FALSE(valid_topic(""));
  EXPECT_FALSE(valid_topic("two words"));
  EXPECT_FALSE(valid_topic(std::string(201, 't')));
  EXPECT_FALSE(valid_topic("tab\there"));
  EXPECT_FALSE(valid_topic("caf\xc3\xa9"));
  const uint64_t s = session_on(0, 1);
  transports_[0].open.insert(s);
  EXPECT_EQ(as_worker(0, [&] { return bus_->subscribe(s, "bad topic"); }), BusResult::kBadTopic);
  EXPECT_EQ(bus_->publish("", 1, bytes("x")), BusResult::kBadTopic);
}

TEST_F(TopicBusTest, ASessionBeyondItsTopicLimitIsRefusedAndKeepsTheOthers) {
  make_bus({.max_topics_per_session = 2, .max_subscribers_per_topic = 100});
  const uint64_t s = session_on(0, 1);
  transports_[0].open.insert(s);
  as_worker(0, [&] {
    EXPECT_EQ(bus_->subscribe(s, "a"), BusResult::kOk);
    EXPECT_EQ(bus_->subscribe(s, "a"), BusResult::kOk);  // again: idempotent, not counted twice
    EXPECT_EQ(bus_->subscribe(s, "b"), BusResult::kOk);
    EXPECT_EQ(bus_->subscribe(s, "c"), BusResult::kLimit);
    EXPECT_EQ(bus_->subscriptions_on(0), 2u);
    return 0;
  });
}

TEST_F(TopicBusTest, ATopicFullOfSubscribersRefusesTheNextOnThatWorker) {
  make_bus({.max_topics_per_session = 10, .max_subscribers_per_topic = 2});
  for (uint64_t n = 1; n <= 3; ++n) transports_[0].open.insert(session_on(0, n));
  as_worker(0, [&] {
    EXPECT_EQ(bus_->subscribe(session_on(0, 1), "t"), BusResult::kOk);
    EXPECT_EQ(bus_->subscribe(session_on(0, 2), "t"), BusResult::kOk);
    EXPECT_EQ(bus_->subscribe(session_on(0, 3), "t"), BusResult::kLimit);
    EXPECT_EQ(bus_->subscribe(session_on(0, 3), "other"), BusResult::kOk);
    return 0;
  });
}

TEST_F(TopicBusTest, ASessionThatIsNotOpenCannotSubscribe) {
  // Its close already ran: a subscription now would never be removed.
  EXPECT_EQ(as_worker(0, [&] { return bus_->subscribe(session_on(0, 9), "t"); }),
            BusResult::kNoSession);
  EXPECT_EQ(bus_->subscriptions_on(0), 0u);
}

TEST_F(TopicBusTest, AClosedSessionsSubscriptionsAreForgotten) {
  const uint64_t s = session_on(1, 4);
  transports_[1].open.insert(s);
  as_worker(1, [&] {
    bus_->subscribe(s, "a");
    bus_->subscribe(s, "b");
    return 0;
  });
  ASSERT_EQ(bus_->subscriptions_on(1), 2u);
  transports_[1].open.erase(s);
  as_worker(1, [&] {
    bus_->session_closed(s);
    return 0;
  });
  EXPECT_EQ(bus_->subscriptions_on(1), 0u);
  bus_->publish("a", 7, bytes("after"));
  run_all();
  EXPECT_TRUE(transports_[1].pushed.empty());
}

TEST_F(TopicBusTest, CallsForAnotherWorkersSessionRunOnThatWorker) {
  const uint64_t s = session_on(1, 2);
  transports_[1].open.insert(s);
  // From worker 0: accepted, and nothing happens until worker 1 runs its queue.
  EXPECT_EQ(as_worker(0, [&] { return bus_->subscribe(s, "t"); }), BusResult::kOk);
  EXPECT_EQ(as_worker(0, [&] { return bus_->push(s, 5, v1::DELIVERY_RELIABLE_ORDERED, bytes("p")); }),
            BusResult::kOk);
  EXPECT_EQ(loops_[1].queued(), 2u);
  EXPECT_TRUE(transports_[1].pushed.empty());
  loops_[1].run();
  ASSERT_EQ(transports_[1].pushed.size(), 1u);
  EXPECT_EQ(transports_[1].pushed[0].payload, "p");
  EXPECT_EQ(bus_->subscriptions_on(1), 1u);
}

TEST_F(TopicBusTest, APublishReachesEachWorkersSubscribersWithItsTopic) {
  const uint64_t a = session_on(0, 1), b = session_on(1, 1), c = session_on(1, 2);
  transports_[0].open.insert(a);
  transports_[1].open = {b, c};
  as_worker(0, [&] { return bus_->subscribe(a, "news"); });
  as_worker(1, [&] { return bus_->subscribe(b, "news"); });
  as_worker(1, [&] { return bus_->subscribe(c, "sport"); });
  // From worker 0: its own subscriber now, worker 1's through its queue.
  as_worker(0, [&] { return bus_->publish("news", 11, bytes("one")); });
  ASSERT_EQ(transports_[0].pushed.size(), 1u);
  EXPECT_EQ(transports_[0].pushed[0].topic, "news");
  EXPECT_EQ(transports_[0].pushed[0].packet_id, 11u);
  EXPECT_TRUE(transports_[1].pushed.empty());
  run_all();
  ASSERT_EQ(transports_[1].pushed.size(), 1u);
  EXPECT_EQ(transports_[1].pushed[0].session, b);
  EXPECT_EQ(transports_[1].pushed[0].payload, "one");
}

// publish_except (Phoenix's broadcast_from): everyone on the topic but that one session,
// on its worker and on the others.
TEST_F(TopicBusTest, APublishExceptASessionReachesEveryoneElse) {
  const uint64_t a = session_on(0, 1), b = session_on(0, 2), c = session_on(1, 1);
  transports_[0].open = {a, b};
  transports_[1].open = {c};
  for (const uint64_t s : {a, b}) as_worker(0, [&] { return bus_->subscribe(s, "room"); });
  as_worker(1, [&] { return bus_->subscribe(c, "room"); });
  as_worker(0, [&] { return bus_->publish("room", 4, bytes("delta"), a); });
  run_all();
  ASSERT_EQ(transports_[0].pushed.size(), 1u);
  EXPECT_EQ(transports_[0].pushed[0].session, b);
  ASSERT_EQ(transports_[1].pushed.size(), 1u);
  EXPECT_EQ(transports_[1].pushed[0].session, c);
}

TEST_F(TopicBusTest, PluginSubscribersHearAPublishOnceAndNeverInsideTheCall) {
  std::vector<std::string> heard;
  auto plugin = std::make_shared<PluginSubscriber>();
  plugin->deliver = [&](const TopicMessage& m) {
    heard.push_back(std::string(m.topic) + ":" + std::string(m.payload.begin(), m.payload.end()));
  };
  EXPECT_EQ(bus_->subscribe_plugin(plugin, "alerts"), BusResult::kOk);
  run_all();  // each worker takes the new plugin table
  as_worker(1, [&] { return bus_->publish("alerts", 3, bytes("fire")); });
  EXPECT_TRUE(heard.empty()) << "delivered inside publish: a subscribed publisher would deadlock";
  run_all();
  EXPECT_EQ(heard, std::vector<std::string>{"alerts:fire"});
  // Off the workers (a plugin's init): heard once too, from worker 0.
  bus_->publish("alerts", 3, bytes("again"));
  run_all();
  EXPECT_EQ(heard.size(), 2u);
  bus_->drop_plugin(plugin.get());
  run_all();
  bus_->publish("alerts", 3, bytes("gone"));
  run_all();
  EXPECT_EQ(heard.size(), 2u);
}


// What the bus tells the other nodes (ClusterLink in prismd): every publish, and a topic
// wanted while this node has any subscriber for it, session or plugin, on any worker.
class FakeRemote final : public RemoteTopics {
 public:
  void publish(std::string_view topic, uint32_t, std::span<const uint8_t> payload,
               uint64_t except) override {
    published.push_back(std::string(topic) + ":" + std::string(payload.begin(), payload.end()));
    excepts.push_back(except);
  }
  void topic_wanted(const std::string& topic, bool wanted) override {
    changes.push_back((wanted ? "+" : "-") + topic);
  }
  std::vector<std::string> published, changes;
  std::vector<uint64_t> excepts;
};

TEST_F(TopicBusTest, TheOtherNodesHearPublishesAndWhichTopicsThisNodeWants) {
  FakeRemote remote;
  const uint64_t a = session_on(0, 1), b = session_on(1, 1), c = session_on(1, 2);
  transports_[0].open = {a};
  transports_[1].open = {b, c};
  as_worker(0, [&] { return bus_->subscribe(a, "early"); });
  bus_->set_remote(&remote);  // what is wanted already is told at once
  EXPECT_EQ(remote.changes, std::vector<std::string>{"+early"});
  for (const uint64_t s : {b, c}) as_worker(1, [&] { return bus_->subscribe(s, "room"); });
  as_worker(0, [&] { return bus_->subscribe(a, "room"); });  // another worker: still one "+"
  auto plugin = std::make_shared<PluginSubscriber>();
  plugin->deliver = [](const TopicMessage&) {};
  bus_->subscribe_plugin(plugin, "room");
  EXPECT_EQ(remote.changes, (std::vector<std::string>{"+early", "+room"}));
  as_worker(1, [&] { return bus_->unsubscribe(b, "room"); });
  transports_[1].open.erase(c);
  as_worker(1, [&] {
    bus_->session_closed(c);
    return 0;
  });
  as_worker(0, [&] { return bus_->unsubscribe(a, "room"); });
  EXPECT_EQ(remote.changes.size(), 2u) << "the plugin still wants it";
  bus_->drop_plugin(plugin.get());
  EXPECT_EQ(remote.changes, (std::vector<std::string>{"+early", "+room", "-room"}));

  // A local publish goes out once; one from another node is delivered here and not sent
  // back out.
  as_worker(0, [&] { return bus_->publish("early", 2, bytes("mine"), a); });
  bus_->deliver_remote("early", 2, bytes("theirs"));
  run_all();
  EXPECT_EQ(remote.published, std::vector<std::string>{"early:mine"});
  EXPECT_EQ(remote.excepts, std::vector<uint64_t>{a}) << "the other nodes learn the except";
  ASSERT_EQ(transports_[0].pushed.size(), 1u);  // `a` was the publish's except
  EXPECT_EQ(transports_[0].pushed[0].payload, "theirs");

  // Another node's publish that excepts `a` (its publisher named it) skips it here.
  bus_->deliver_remote("early", 2, bytes("not for a"), a);
  run_all();
  EXPECT_EQ(transports_[0].pushed.size(), 1u);

  // A hold wants a topic with no subscriber yet (a forwarded join), until released.
  bus_->hold("joining");
  EXPECT_EQ(remote.changes.back(), "+joining");
  bus_->release("joining");
  EXPECT_EQ(remote.changes.back(), "-joining");
  bus_->set_remote(nullptr);
}

}  // namespace
}  // namespace prism::cluster
