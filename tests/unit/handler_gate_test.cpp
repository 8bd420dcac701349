// HandlerGate (host/plugins/handler_gate.hpp): the lock-free way into a concurrent plugin
// version, and the closing that lets a handover run with no callback inside.
#include "plugins/handler_gate.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>
#include <vector>

namespace prism::plugins {
namespace {

using State = HandlerGate::State;

void await_closing(const HandlerGate& gate) {
  while (gate.state() != State::kClosing) std::this_thread::yield();
}

TEST(HandlerGateTest, CloseReturnsOnlyOnceTheCallbackInsideHasLeft) {
  HandlerGate gate;
  ASSERT_TRUE(gate.enter());
  std::atomic<bool> inside{true};
  std::promise<bool> saw_inside;
  std::thread closer([&] {
    HandlerGate::Closed closed = gate.close();
    saw_inside.set_value(inside.load());
  });
  await_closing(gate);
  inside = false;
  gate.leave();
  EXPECT_FALSE(saw_inside.get_future().get()) << "close() returned with a callback inside";
  closer.join();
  EXPECT_EQ(gate.state(), State::kOpen);  // the Closed went out of scope: open again
  ASSERT_TRUE(gate.enter());
  gate.leave();
}

TEST(HandlerGateTest, ACallerAtAClosingGateWaitsThenGoesInWhenItOpensAgain) {
  HandlerGate gate;
  auto closed = std::make_unique<HandlerGate::Closed>(gate.close());
  std::promise<void> asked;
  auto entered = std::async(std::launch::async, [&] {
    asked.set_value();
    const bool in = gate.enter();
    if (in) gate.leave();
    return in;
  });
  asked.get_future().wait();
  closed.reset();  // a failed handover: the old version serves on
  EXPECT_TRUE(entered.get());
}

TEST(HandlerGateTest, ARetiredGateSendsEveryCallerToTheSuccessor) {
  HandlerGate gate;
  HandlerGate::Closed closed = gate.close();
  std::promise<void> asked;
  auto entered = std::async(std::launch::async, [&] {
    asked.set_value();
    return gate.enter();
  });
  asked.get_future().wait();
  closed.retire();
  EXPECT_FALSE(entered.get());
  EXPECT_FALSE(gate.enter());
  EXPECT_EQ(gate.state(), State::kRetired);
}

TEST(HandlerGateTest, AThreadInsideMayEnterAgainWhileTheGateCloses) {
  HandlerGate gate;
  ASSERT_TRUE(gate.enter());
  std::thread closer([&] { HandlerGate::Closed closed = gate.close(); });
  await_closing(gate);
  // A callback calling back into its own plugin: waiting here would deadlock the close.
  ASSERT_TRUE(gate.enter());
  gate.leave();
  gate.leave();
  closer.join();
  EXPECT_EQ(gate.state(), State::kOpen);
}

TEST(HandlerGateTest, ManyThreadsEnteringNeverOverlapAClose) {
  HandlerGate gate;
  std::atomic<int> running{0};
  std::atomic<bool> stop{false};
  std::atomic<int> overlaps{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      while (!stop.load()) {
        if (!gate.enter()) continue;
        running.fetch_add(1);
        running.fetch_sub(1);
        gate.leave();
      }
    });
  }
  for (int round = 0; round < 200; ++round) {
    HandlerGate::Closed closed = gate.close();
    if (running.load() != 0) overlaps.fetch_add(1);
  }
  stop = true;
  for (auto& t : callers) t.join();
  EXPECT_EQ(overlaps.load(), 0);
}

}  // namespace
}  // namespace prism::plugins
