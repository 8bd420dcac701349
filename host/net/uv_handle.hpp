// UvHandle<T>: owns one heap-allocated libuv handle. libuv may touch a handle until its
// close callback has run (docs/src/handle.rst), so its memory is freed there and nowhere
// else: close() (or the destructor) uv_close()s it, and the close callback deletes it.
// Close on the loop's thread, while the loop still runs (its close callbacks must run).
#pragma once

#include <uv.h>

#include <utility>

namespace prism::net {

template <typename T>
class UvHandle {
 public:
  UvHandle() = default;
  // A new handle of the loop, set up by `init` (uv_timer_init, uv_fs_event_init, ...),
  // with `data` in its data field.
  template <typename Init>
  UvHandle(uv_loop_t* loop, Init init, void* data = nullptr) : handle_(new T{}) {
    init(loop, handle_);
    handle_->data = data;
  }
  ~UvHandle() { close(); }
  UvHandle(UvHandle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      close();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;

  T* get() const { return handle_; }
  T* operator->() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }

  // Closes the handle (stopping whatever it does); its memory goes in the close callback.
  void close() {
    if (handle_ == nullptr) return;
    uv_close(reinterpret_cast<uv_handle_t*>(std::exchange(handle_, nullptr)),
             [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
  }

 private:
  T* handle_ = nullptr;
};

}  // namespace prism::net
