// Process-wide logging setup on spdlog.
#include "base/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace prism {

void init_logging() {
  auto logger = spdlog::stderr_color_mt("prism");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::flush_on(spdlog::level::info);
}

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
