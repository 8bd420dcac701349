// Wall-clock time as the protocol and the plugin ABI report it.
#pragma once

#include <chrono>
#include <cstdint>

namespace prism {

// Unix time in milliseconds.
inline uint64_t unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace prism
