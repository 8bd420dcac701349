// Process-wide logging setup on spdlog: one line per event, key=value fields.
// Never log raw packet bytes or tokens (STYLE.md).
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "base/expected.hpp"

namespace prism {

// Sets the default logger's level from a name (trace, debug, info, warn, error, off).
Expected<void> set_log_level(std::string_view name);

// Installs the default logger (stderr, "[time] [level] message") once at start-up.
void init_logging();

}  // namespace prism
