// Loops for tests of code that runs on a prismd worker (net::LoopAccess):
// - TestLoop: a real libuv loop driven by the test's own thread; posted tasks run when
//   the test says so, and drain_and_close() reports whether a handle was left open.
// - ThreadLoop: a thread that runs posted tasks in order, as a worker does, with no
//   libuv loop (for code that only posts completions back).
#pragma once

#include <uv.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "net/loop_access.hpp"

namespace prism::testing {

class TestLoop final : public net::LoopAccess {
 public:
  TestLoop() { uv_loop_init(&loop_); }
  ~TestLoop() override {
    if (!closed_) drain_and_close();
  }
  TestLoop(const TestLoop&) = delete;
  TestLoop& operator=(const TestLoop&) = delete;

  uv_loop_t* loop() override { return &loop_; }
  void post(std::function<void()> task) override { posted_.push_back(std::move(task)); }
  bool on_loop_thread() const override { return std::this_thread::get_id() == owner_; }
  void at_stop(std::function<void()> close) override { closers_.push_back(std::move(close)); }

  // Runs the tasks posted so far (those they post wait for the next call).
  void run_posted() {
    auto tasks = std::move(posted_);
    posted_.clear();
    for (auto& task : tasks) task();
  }

  // One loop turn as a worker has it: blocks until a handle is due, then runs the posted
  // tasks.
  void turn() {
    uv_run(&loop_, UV_RUN_ONCE);
    run_posted();
  }

  // Turns until `done` holds or `limit` passes (the limit only bounds a broken test; the
  // awaited event is a timer or I/O of the loop).
  template <typename Pred>
  bool run_until(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) turn();
    return done();
  }

  // Runs the at_stop closers as a stopping worker does, then the close callbacks, and
  // closes the loop: 0 when no handle was left open (nothing leaked), else UV_EBUSY.
  int drain_and_close() {
    for (auto& close : closers_) close();
    closers_.clear();
    uv_run(&loop_, UV_RUN_DEFAULT);
    closed_ = true;
    return uv_loop_close(&loop_);
  }

 private:
  uv_loop_t loop_{};
  std::thread::id owner_ = std::this_thread::get_id();
  std::vector<std::function<void()>> posted_;
  std::vector<std::function<void()>> closers_;
  bool closed_ = false;
};

class ThreadLoop final : public net::LoopAccess {
 public:
  ThreadLoop() : thread_([this] { run(); }) {}
  ~ThreadLoop() override {
    post({});  // an empty task stops the thread once everything before it ran
    thread_.join();
  }
  uv_loop_t* loop() override { return nullptr; }
  void post(std::function<void()> task) override {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
    cv_.notify_one();
  }
  bool on_loop_thread() const override { return std::this_thread::get_id() == thread_.get_id(); }
  void at_stop(std::function<void()>) override {}
  // Returns once every task posted before it has run.
  void drain() {
    std::promise<void> done;
    post([&] { done.set_value(); });
    done.get_future().wait();
  }

 private:
  void run() {
    net::set_current_loop(this);
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return !tasks_.empty(); });
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      if (!task) return;
      task();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::thread thread_;
};

}  // namespace prism::testing
