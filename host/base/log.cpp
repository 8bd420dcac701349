// Process-wide logging setup on spdlog.
#include "base/log.hpp"

#include <google/protobuf/stubs/logging.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <atomic>
#include <chrono>
#include <string>

namespace prism {

void init_logging() {
  auto logger = spdlog::stderr_color_mt("prism");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::flush_on(spdlog::level::info);
}

namespace {

// At most this many protobuf lines per second across all threads; the rest are counted.
constexpr uint32_t kProtobufLinesPerSecond = 10;
std::atomic<int64_t> protobuf_window{0};
std::atomic<uint32_t> protobuf_in_window{0};
std::atomic<uint64_t> protobuf_suppressed{0};

void on_protobuf_log(google::protobuf::LogLevel level, const char* file, int line,
                     const std::string& message) {
  const int64_t second = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  int64_t window = protobuf_window.load(std::memory_order_relaxed);
  if (window != second && protobuf_window.compare_exchange_strong(window, second)) {
    protobuf_in_window.store(0, std::memory_order_relaxed);
  }
  if (protobuf_in_window.fetch_add(1, std::memory_order_relaxed) >= kProtobufLinesPerSecond) {
    protobuf_suppressed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::string text = message;
  for (char& c : text) {
    if (c == '\n' || c == '"') c = ' ';
  }
  const auto lvl = level >= google::protobuf::LOGLEVEL_ERROR ? spdlog::level::warn
                                                             : spdlog::level::debug;
  spdlog::log(lvl, "event=protobuf_log source={}:{} suppressed={} msg=\"{}\"", file, line,
              protobuf_suppressed.exchange(0, std::memory_order_relaxed), text);
}

}  // namespace

void route_protobuf_logs() { google::protobuf::SetLogHandler(&on_protobuf_log); }

Expected<void> set_log_level(std::string_view name) {
  auto level = spdlog::level::from_str(std::string(name));
  // from_str answers "off" for anything it does not know; only accept "off" when asked for.
  if (level == spdlog::level::off && name != "off") {
    return make_error("unknown log level '" + std::string(name) +
                      "' (expected trace, debug, info, warn, error or off)");
  }
  spdlog::set_level(level);
  return {};
}

}  // namespace prism
