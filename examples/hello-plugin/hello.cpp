// The `hello` service: one method, greet, that answers "hello, <payload>" (or
// "hello, world" for an empty payload). The smallest plugin worth copying.
#include <prism/plugin.hpp>

#include <string>
#include <string_view>

namespace {

using prism::sdk::Bytes;
using prism::sdk::Request;

class HelloService {
 public:
  // Packet ids 900..909: outside the bundled plugins' ranges (default owns 100..199).
  static constexpr prism::sdk::ServiceInfo info{.name = "hello",
                                                .version = "1.0.0",
                                                .packet_id_first = 900,
                                                .packet_id_count = 10,
                                                .concurrent = true};

  HelloService(prism::sdk::Host& /*host*/, std::string_view /*config: none*/) {}

  void greet(Request req, Bytes payload) {
    const std::string_view name = prism::sdk::as_text(payload);
    const std::string greeting = "hello, " + std::string(name.empty() ? "world" : name);
    req.ok(prism::sdk::as_bytes(greeting));
  }

  static constexpr prism::sdk::Method<HelloService> methods[] = {
      {0, "greet", &HelloService::greet},
  };
};

}  // namespace

PRISM_PLUGIN(HelloService)
