// The C++ SDK's ABI 1.2 wrappers (plugin.hpp): co_await host.sleep, Host::Timer,
// on_topic and Request::ok with a message, driven end to end by push_test.cpp. Range
// 6100-6109; what it pushes uses methods 5 (ticks) and 6 (heard).
#include <prism/plugin.hpp>

#include <map>
#include <string>

class SdkRealtime {
 public:
  static constexpr prism::sdk::ServiceInfo info{.name = "sdk_realtime",
                                                .version = "1.0.0",
                                                .packet_id_first = 6100,
                                                .packet_id_count = 10};

  SdkRealtime(prism::sdk::Host& host, std::string_view) : host_(host) {}

  // Sleeps the milliseconds asked on the worker, then replies "slept <status>".
  prism::sdk::Task nap(prism::sdk::Request request, std::string payload) {
    const prism_status_t slept = co_await host_.sleep(std::chrono::milliseconds(std::stoi(payload)));
    request.ok("slept " + std::to_string(slept));
  }

  // "N": pushes "tick 1" .. "tick N" every 5 ms; the last one destroys its own Timer.
  void ticks(prism::sdk::Request request, prism::sdk::Bytes payload) {
    const uint64_t session = request.session();
    const int count = std::stoi(std::string(prism::sdk::as_text(payload)));
    auto sent = std::make_shared<int>(0);
    timers_[session] = host_.start_timer(
        std::chrono::milliseconds(5), std::chrono::milliseconds(5), [this, session, count, sent] {
          host_.push(session, 5, "tick " + std::to_string(++*sent));
          if (*sent == count) timers_.erase(session);
        });
    request.ok(timers_[session] ? "started" : "not started");
  }

  // "TOPIC": the plugin itself subscribes; what it hears goes to the caller.
  void watch(prism::sdk::Request request, prism::sdk::Bytes payload) {
    watcher_ = request.session();
    request.reply(host_.subscribe(PRISM_SESSION_PLUGIN, prism::sdk::as_text(payload)), {}, {});
  }

  void on_topic(std::string_view topic, uint32_t packet_id, prism::sdk::Bytes payload) {
    host_.push(watcher_, 6,
               "heard " + std::string(topic) + " " + std::to_string(packet_id) + " " +
                   std::string(prism::sdk::as_text(payload)));
  }

  // "TOPIC TEXT"
  void publish(prism::sdk::Request request, prism::sdk::Bytes payload) {
    const std::string_view text = prism::sdk::as_text(payload);
    const size_t space = text.find(' ');
    request.reply(host_.publish(text.substr(0, space), 7, text.substr(space + 1)), {}, {});
  }

  void ok_message(prism::sdk::Request request, prism::sdk::Bytes) { request.ok("items", "ITEMS_OK"); }

  static constexpr prism::sdk::Method<SdkRealtime> methods[] = {
      {0, "nap", &SdkRealtime::nap},         {1, "ticks", &SdkRealtime::ticks},
      {2, "watch", &SdkRealtime::watch},     {3, "publish", &SdkRealtime::publish},
      {4, "ok_message", &SdkRealtime::ok_message}};

 private:
  prism::sdk::Host& host_;
  std::map<uint64_t, prism::sdk::Host::Timer> timers_;
  uint64_t watcher_ = 0;
};

PRISM_PLUGIN(SdkRealtime)
