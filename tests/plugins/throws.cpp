// throws: a plugin.hpp service that misbehaves on purpose, so tests can check that the SDK
// still answers every request and keeps exceptions on its side of the ABI.
#include <prism/plugin.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

namespace {

using prism::sdk::Bytes;
using prism::sdk::Request;

class ThrowingService {
 public:
  static constexpr prism::sdk::ServiceInfo info{.name = "throws",
                                                .version = "1.0.0",
                                                .packet_id_first = 940,
                                                .packet_id_count = 10,
                                                .concurrent = true};

  // Refuses to start when asked to, so tests can see a constructor's exception become init's error.
  ThrowingService(prism::sdk::Host&, std::string_view config) {
    if (config == "refuse") throw std::runtime_error("config refused: refuse");
  }

  void boom(Request, Bytes) { throw std::runtime_error("boom"); }
  void forget(Request, Bytes) {}
  void reply_twice(Request req, Bytes) {
    req.ok("first");
    req.ok("second");
  }

  static constexpr prism::sdk::Method<ThrowingService> methods[] = {
      {0, "boom", &ThrowingService::boom},
      {1, "forget", &ThrowingService::forget},
      {2, "reply_twice", &ThrowingService::reply_twice},
  };
};

}  // namespace

PRISM_PLUGIN(ThrowingService)
