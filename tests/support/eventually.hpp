// eventually(): for conditions no event announces to the test (another process's state,
// a backend reconnecting on its own thread): polls until the condition holds or the
// deadline passes (it only bounds a broken test). Where an event can be awaited, tests
// await it instead.
#pragma once

#include <chrono>
#include <thread>

namespace prism::testing {

template <typename Condition>
bool eventually(Condition condition,
                std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

}  // namespace prism::testing
