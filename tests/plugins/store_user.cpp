// A plugin with coroutine handlers that await the host's storage calls (plugin.h ABI 1.1):
// sdk_test drives it through a fake host that completes the calls later, or not at all;
// store_test through prismd and its real backends.
#include <prism/plugin.hpp>

#include <stdexcept>
#include <string>

class StoreUser {
 public:
  static constexpr prism::sdk::ServiceInfo info{.name = "store_user",
                                                .version = "1.0.0",
                                                .packet_id_first = 7000,
                                                .packet_id_count = 10,
                                                .concurrent = true};

  StoreUser(prism::sdk::Host& host, std::string_view) : host_(host) {}

  // Replies "<key>=<value>@<version>", or the storage status and message.
  prism::sdk::Task get(prism::sdk::Request request, std::string key) {
    const prism::sdk::StoreResult found = co_await host_.get("things", key);
    if (!found.ok()) {
      request.fail(found.status, found.message);
      co_return;
    }
    const auto& doc = found.documents.at(0);
    request.ok(key + "=" + doc.value + "@" + std::to_string(doc.version));
  }

  // Throws after its await: the Request it owns must still answer (INTERNAL).
  prism::sdk::Task throws(prism::sdk::Request /*request*/, std::string key) {
    co_await host_.get("things", key);
    throw std::runtime_error("boom after the await");
  }

  // "<key>=<value>": stores it unconditionally and replies the new version. The
  // integration tests stream these and check that every OK survives a SIGKILL of prismd.
  prism::sdk::Task put(prism::sdk::Request request, std::string payload) {
    const size_t eq = payload.find('=');
    if (eq == std::string::npos) {
      request.fail(PRISM_INVALID_ARGUMENT, "expected key=value");
      co_return;
    }
    const prism::sdk::StoreResult stored =
        co_await host_.put("things", payload.substr(0, eq), payload.substr(eq + 1));
    if (!stored.ok()) {
      request.fail(stored.status, stored.message);
      co_return;
    }
    request.ok(std::to_string(stored.values.at(0)));
  }

  // "<key>=<value>": answers at once, then stores and logs "stored <key> after the reply".
  // store_test unloads the plugin while that put is held up, then lets it finish: the
  // coroutine's code must still be loaded when it resumes.
  prism::sdk::Task put_after_reply(prism::sdk::Request request, std::string payload) {
    request.ok("accepted");
    const size_t eq = payload.find('=');
    const std::string key = payload.substr(0, eq);
    // Named, not a temporary inside the co_await: GCC 12 mishandles a conditional
    // expression's temporary across the suspension (docs/plugin-api.md §5.9).
    const std::string value = eq == std::string::npos ? std::string() : payload.substr(eq + 1);
    const prism::sdk::StoreResult stored = co_await host_.put("things", key, value);
    host_.info("stored " + key + " after the reply: " + (stored.ok() ? "ok" : stored.message));
  }

  static constexpr prism::sdk::Method<StoreUser> methods[] = {
      {0, "get", &StoreUser::get},
      {1, "throws", &StoreUser::throws},
      {2, "put", &StoreUser::put},
      {3, "put_after_reply", &StoreUser::put_after_reply},
  };

 private:
  prism::sdk::Host& host_;
};

PRISM_PLUGIN(StoreUser)
