// A directory of the test's own under /tmp, removed with everything in it when it goes
// (also when an ASSERT ends the test early).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace prism::testing {

class TempDir {
 public:
  // `prefix`: the name's start, e.g. "prism-tls-test" (six random characters follow).
  explicit TempDir(const std::string& prefix) {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace prism::testing
