// What the YAML loaders (prism.yaml, plugins.d/*.yaml) share: error positions, how a
// value reads in an error, and reading a whole file.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "base/expected.hpp"

namespace prism::config {

// "source:line:column: " from yaml-cpp's 0-based mark; "source: " when there is none.
std::string where(std::string_view source, const YAML::Mark& mark);

// How a value reads in an error: its text for scalars, its kind otherwise.
std::string describe(const YAML::Node& node);

// The file's bytes; the error reads "<path>: cannot read <what>: <reason>".
Expected<std::string> read_text_file(const std::filesystem::path& path, std::string_view what);

}  // namespace prism::config
