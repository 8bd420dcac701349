// A plugins directory of the test's own: copies of the named bundled plugins (from
// PRISM_PLUGIN_DIR) and test plugins (from PRISM_TEST_PLUGIN_DIR), removed with it.
#pragma once

#include <filesystem>
#include <initializer_list>
#include <string>

#include "support/temp_dir.hpp"

namespace prism::testing {

class PluginDir {
 public:
  PluginDir(std::initializer_list<const char*> bundled, std::initializer_list<const char*> test = {}) {
    namespace fs = std::filesystem;
    for (const char* name : bundled) fs::copy_file(fs::path(PRISM_PLUGIN_DIR) / name, path() / name);
    for (const char* name : test) fs::copy_file(fs::path(PRISM_TEST_PLUGIN_DIR) / name, path() / name);
  }
  const std::filesystem::path& path() const { return dir_.path(); }

 private:
  TempDir dir_{"prism-plugins-test"};
};

}  // namespace prism::testing
