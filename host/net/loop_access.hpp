// What the layers above need from the loop that owns them: its uv_loop_t, a way to run
// work on its thread, and a hook to close their handles before the loop stops.
#pragma once

#include <uv.h>

#include <functional>

namespace prism::net {

class LoopAccess {
 public:
  virtual ~LoopAccess() = default;
  virtual uv_loop_t* loop() = 0;
  // Runs `task` on the loop's thread; callable from any thread.
  virtual void post(std::function<void()> task) = 0;
  virtual bool on_loop_thread() const = 0;
  // `close` runs on the loop's thread when the loop is asked to stop, before it exits,
  // so handles can be uv_close()d while the loop still runs their close callbacks.
  virtual void at_stop(std::function<void()> close) = 0;
};

// The loop of the worker thread calling, or null on any other thread. Worker sets it when
// its thread starts; the host API uses it to complete a plugin's storage call on the
// worker that made it (plugin.h, Storage).
LoopAccess* current_loop();
void set_current_loop(LoopAccess* loop);

}  // namespace prism::net
