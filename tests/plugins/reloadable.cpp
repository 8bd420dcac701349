// reloadable: the hot-reload test plugin, built in variants from one source (CMake sets
// the macros). Its replies carry its version, its call count crosses reloads through
// snapshot/restore, it echoes the config init got, and it can hold a request (inside the
// handler, or after it) until the test writes to a pipe, so a test can swap versions while
// a request is in flight. Pipe descriptors come as decimal text in the payload.
#include <prism/plugin.hpp>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#ifndef PLUGIN_VERSION
#error "build with -DPLUGIN_VERSION=\"x.y.z\""
#endif
#ifndef PLUGIN_FIRST
#define PLUGIN_FIRST 960
#endif

namespace {

using prism::sdk::Bytes;
using prism::sdk::Request;

class ReloadableService {
 public:
  // Not concurrent: the host serialises calls, so plain members are enough.
  static constexpr prism::sdk::ServiceInfo info{.name = "reloadable",
                                                .version = PLUGIN_VERSION,
                                                .packet_id_first = PLUGIN_FIRST,
                                                .packet_id_count = 10};

  ReloadableService(prism::sdk::Host&, std::string_view config) : config_(config) {
#ifdef PLUGIN_INIT_FAILS
    throw std::runtime_error("refusing to start: test variant");
#endif
  }

  void version(Request req, Bytes) { req.ok(PLUGIN_VERSION); }
  // "<version> <count>": which version answered, and the count it carried on.
  void count(Request req, Bytes) {
    req.ok(std::string(PLUGIN_VERSION) + " " + std::to_string(++calls_));
  }
  void config(Request req, Bytes) { req.ok(config_); }
  // Payload "R": returns at once; answers with the version once a byte arrives on fd R
  // (a late reply, as a storage completion would give). Joined at shutdown.
  void hold(Request req, Bytes payload) {
    const int fd = number(payload, 0);
    waiters_.emplace_back([fd, r = std::move(req)]() mutable {
      char c;
      if (::read(fd, &c, 1) == 1) r.ok(PLUGIN_VERSION);
    });
  }
  // Payload "R W": writes a byte to W once inside the handler, then waits for a byte on R
  // before counting and answering like `count`.
  void block(Request req, Bytes payload) {
    const char c = 'x';
    if (::write(number(payload, 1), &c, 1) != 1) throw std::runtime_error("write failed");
    char got;
    if (::read(number(payload, 0), &got, 1) != 1) throw std::runtime_error("read failed");
    count(std::move(req), {});
  }
  void fail(Request req, Bytes) { req.fail(PRISM_INTERNAL, "failing on purpose"); }

  ~ReloadableService() {
    for (auto& t : waiters_) t.join();
  }

  // The call count as decimal text.
  std::string snapshot() { return std::to_string(calls_); }
  void restore(Bytes state) {
#ifdef PLUGIN_RESTORE_FAILS
    (void)state;
    throw std::invalid_argument("restore refused: test variant");
#else
    const std::string_view text = prism::sdk::as_text(state);
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), calls_);
    if (error != std::errc{} || end != text.data() + text.size())
      throw std::invalid_argument("snapshot is not a decimal count");
#endif
  }

  static constexpr prism::sdk::Method<ReloadableService> methods[] = {
      {0, "version", &ReloadableService::version}, {1, "count", &ReloadableService::count},
      {2, "config", &ReloadableService::config},   {3, "hold", &ReloadableService::hold},
      {4, "block", &ReloadableService::block},     {5, "fail", &ReloadableService::fail},
  };

 private:
  // The index-th space-separated decimal in `payload`.
  static int number(Bytes payload, int index) {
    std::string_view text = prism::sdk::as_text(payload);
    for (int i = 0; i < index; ++i) text.remove_prefix(std::min(text.size(), text.find(' ') + 1));
    int value = -1;
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
  }

  std::string config_;
  uint64_t calls_ = 0;
  std::vector<std::thread> waiters_;
};

}  // namespace

PRISM_PLUGIN(ReloadableService)
