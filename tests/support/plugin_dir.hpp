// A plugins directory of the test's own: copies of the named bundled plugins (from
// PRISM_PLUGIN_DIR) and test plugins (from PRISM_TEST_PLUGIN_DIR), removed with it.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <initializer_list>
#include <string>

namespace prism::testing {

class PluginDir {
 public:
  PluginDir(std::initializer_list<const char*> bundled, std::initializer_list<const char*> test = {}) {
    namespace fs = std::filesystem;
    char tmpl[] = "/tmp/prism-plugins-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    for (const char* name : bundled) fs::copy_file(fs::path(PRISM_PLUGIN_DIR) / name, dir_ / name);
    for (const char* name : test) fs::copy_file(fs::path(PRISM_TEST_PLUGIN_DIR) / name, dir_ / name);
  }
  ~PluginDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  PluginDir(const PluginDir&) = delete;
  PluginDir& operator=(const PluginDir&) = delete;
  const std::filesystem::path& path() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

}  // namespace prism::testing
