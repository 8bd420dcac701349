// Names a thread, so that `top -H`, `ps -L`, perf and gdb tell prismd's threads apart
// (docs/operations.md, "Threads"). Linux keeps 15 bytes of a name; the rest is cut.
#pragma once

#include <pthread.h>

#include <string>
#include <string_view>
#include <thread>

namespace prism {

// Called by the thread that started `thread`, so the name is there before anyone looks.
inline void name_thread(std::thread& thread, std::string_view name) {
  const std::string kept(name.substr(0, 15));
  // A failure only leaves the inherited name ("prismd"): nothing depends on it.
  (void)pthread_setname_np(thread.native_handle(), kept.c_str());
}

}  // namespace prism
