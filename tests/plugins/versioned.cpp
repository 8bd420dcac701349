// versioned: one source built twice (versioned_v1.so, versioned_v2.so) with PLUGIN_VERSION
// set by the build, so hot-reload tests can swap one version for the next and check that
// the call count crosses over through snapshot/restore.
#include <prism/plugin.hpp>

#include <charconv>
#include <stdexcept>
#include <string>
#include <string_view>

#ifndef PLUGIN_VERSION
#error "build with -DPLUGIN_VERSION=\"x.y.z\""
#endif

namespace {

using prism::sdk::Bytes;
using prism::sdk::Request;

class VersionedService {
 public:
  // Not concurrent: the host serialises calls, so a plain counter is enough.
  static constexpr prism::sdk::ServiceInfo info{.name = "versioned",
                                                .version = PLUGIN_VERSION,
                                                .packet_id_first = 930,
                                                .packet_id_count = 10};

  VersionedService(prism::sdk::Host&, std::string_view) {}

  void version(Request req, Bytes) { req.ok(PLUGIN_VERSION); }
  void count(Request req, Bytes) { req.ok(std::to_string(++calls_)); }

  // State handed to the next version: the call count as decimal text.
  std::string snapshot() { return std::to_string(calls_); }
  void restore(Bytes state) {
    const std::string_view text = prism::sdk::as_text(state);
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), calls_);
    if (error != std::errc{} || end != text.data() + text.size())
      throw std::invalid_argument("snapshot is not a decimal count");
  }

  static constexpr prism::sdk::Method<VersionedService> methods[] = {
      {0, "version", &VersionedService::version},
      {1, "count", &VersionedService::count},
  };

 private:
  uint64_t calls_ = 0;
};

}  // namespace

PRISM_PLUGIN(VersionedService)
