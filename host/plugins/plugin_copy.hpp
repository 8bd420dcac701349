// Private copies of plugin files (DESIGN.md §5): each load reads its own copy, so dlopen
// never hands back an already-open handle and a later overwrite of the original cannot
// change (or SIGBUS) a version that is serving.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>

#include "base/expected.hpp"

namespace prism::plugins {

// What a file was when it was copied: a file replaced by copy or by rename differs in at
// least one of these.
struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;

  bool operator==(const FileIdentity&) const = default;
};

// The identity of `file` now; an error when it cannot be stat'ed.
Expected<FileIdentity> identify(const std::filesystem::path& file);

struct PrivateCopy {
  std::filesystem::path path;  // <dir>/<stem>-<counter>.so, mode 0500
  FileIdentity source;         // the original as it was read
};

// One private directory per process (mkdtemp, mode 0700), made on first use and removed
// with this object. A process killed before its destructor ran (SIGKILL, a crash, the
// OOM killer) cannot remove it, so the directory is held under flock(2) for the life of
// this object, and the first copy of the next process to use the same base removes every
// prism-plugins-* directory whose lock nobody holds. Thread-safe.
class PrivateCopies {
 public:
  // `base` is where the private directory is made; empty = the system temp dir ($TMPDIR).
  // prismd passes <state_dir>/plugin-copies, so the next start reclaims what a killed
  // one left.
  explicit PrivateCopies(std::filesystem::path base = {});
  ~PrivateCopies();
  PrivateCopies(const PrivateCopies&) = delete;
  PrivateCopies& operator=(const PrivateCopies&) = delete;

  // Copies `original` to a fresh name. The copy is read through one open descriptor, so
  // it is one consistent file even if the original is replaced meanwhile.
  Expected<PrivateCopy> copy(const std::filesystem::path& original);

  // The private directory; empty until the first copy.
  std::filesystem::path dir() const;

  // How many abandoned directories the first copy removed from `base`.
  size_t swept() const;

 private:
  Expected<std::filesystem::path> ensure_dir();

  std::filesystem::path base_;
  mutable std::mutex mutex_;
  std::filesystem::path dir_;
  int dir_lock_ = -1;  // the private directory, open and flock'ed while it is ours
  uint64_t counter_ = 0;
  size_t swept_ = 0;
};

}  // namespace prism::plugins
