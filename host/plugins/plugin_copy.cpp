// Private plugin copies: a locked mkdtemp directory, abandoned ones swept, copy through
// one descriptor, unique names.
#include "plugins/plugin_copy.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace prism::plugins {
namespace {

namespace fs = std::filesystem;

FileIdentity identity_of(const struct stat& st) {
  return FileIdentity{st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size),
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

std::string errno_text() { return std::strerror(errno); }

constexpr std::string_view kDirPrefix = "prism-plugins-";

// Closes a descriptor when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Removes each prism-plugins-* directory of `base` whose lock nobody holds: its process
// is gone (a live one holds its lock until its destructor removed it). The caller holds
// base/.lock, so no directory is swept between its mkdtemp and its flock.
size_t sweep_abandoned(const fs::path& base) {
  size_t swept = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(base, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(kDirPrefix) || !entry.is_directory(ec) || entry.is_symlink(ec)) continue;
    Fd dir{::open(entry.path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
    if (dir.fd < 0 || ::flock(dir.fd, LOCK_EX | LOCK_NB) != 0) continue;
    std::error_code remove_ec;
    if (fs::remove_all(entry.path(), remove_ec) > 0 && !remove_ec) ++swept;
  }
  return swept;
}

}  // namespace

Expected<FileIdentity> identify(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return make_error("cannot stat: " + errno_text());
  return identity_of(st);
}

PrivateCopies::PrivateCopies(fs::path base) : base_(std::move(base)) {}

PrivateCopies::~PrivateCopies() {
  // A version still mapped keeps its pages; only the names go.
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
  if (dir_lock_ >= 0) ::close(dir_lock_);
}

fs::path PrivateCopies::dir() const {
  std::lock_guard lock(mutex_);
  return dir_;
}

size_t PrivateCopies::swept() const {
  std::lock_guard lock(mutex_);
  return swept_;
}

Expected<fs::path> PrivateCopies::ensure_dir() {
  if (!dir_.empty()) return dir_;
  std::error_code ec;
  const fs::path base = base_.empty() ? fs::temp_directory_path(ec) : base_;
  if (ec) return make_error("no temporary directory: " + ec.message());
  fs::create_directories(base, ec);
  // Serialises sweeping with making-and-locking among the processes sharing `base`.
  Fd base_lock{::open((base / ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)};
  if (base_lock.fd < 0 || ::flock(base_lock.fd, LOCK_EX) != 0) {
    return make_error("cannot lock " + (base / ".lock").string() + ": " + errno_text());
  }
  swept_ = sweep_abandoned(base);
  std::string pattern = (base / (std::string(kDirPrefix) + "XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return make_error("cannot make a private directory in " + base.string() + ": " + errno_text());
  }
  Fd dir{::open(pattern.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir.fd < 0 || ::flock(dir.fd, LOCK_EX | LOCK_NB) != 0) {
    const std::string why = "cannot lock private directory " + pattern + ": " + errno_text();
    ::rmdir(pattern.c_str());
    return make_error(why);
  }
  dir_lock_ = std::exchange(dir.fd, -1);
  dir_ = pattern;
  return dir_;
}

Expected<PrivateCopy> PrivateCopies::copy(const fs::path& original) {
  Fd in{::open(original.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) return make_error("cannot open: " + errno_text());
  struct stat st {};
  if (::fstat(in.fd, &st) != 0) return make_error("cannot stat: " + errno_text());
  if (!S_ISREG(st.st_mode)) return make_error("not a regular file");

  fs::path target;
  {
    std::lock_guard lock(mutex_);
    auto dir = ensure_dir();
    if (!dir) return make_error(dir.error());
    target = *dir / (original.stem().string() + "-" + std::to_string(++counter_) + ".so");
  }
  Fd out{::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (out.fd < 0) return make_error("cannot create private copy " + target.string() + ": " +
                                    errno_text());
  std::vector<char> buffer(1 << 16);
  for (;;) {
    const ssize_t n = ::read(in.fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = "cannot read: " + errno_text();
      ::unlink(target.c_str());
      return make_error(why);
    }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out.fd, buffer.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        const std::string why = "cannot write private copy " + target.string() + ": " + errno_text();
        ::unlink(target.c_str());
        return make_error(why);
      }
      done += w;
    }
  }
  // Read-only from here on: nothing in this process writes to a mapped plugin.
  ::fchmod(out.fd, 0500);
  return PrivateCopy{target, identity_of(st)};
}

}  // namespace prism::plugins
