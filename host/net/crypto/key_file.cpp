// Server key files: strict hex contents, owner-only permissions, atomic no-replace writes
// (temporary file, fsync, renameat2(RENAME_NOREPLACE)), and the "prism1:" public key text.
#include "net/crypto/key_file.hpp"

#include <cryptopp/misc.h>
#include <cryptopp/osrng.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

namespace prism::net::crypto {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string to_hex(const std::array<uint8_t, 32>& bytes) {
  std::string out;
  out.reserve(64);
  for (uint8_t b : bytes) {
    out.push_back(kHexDigits[b >> 4]);
    out.push_back(kHexDigits[b & 0x0f]);
  }
  return out;
}

// Decodes exactly 64 hex digits; on failure returns the index of the first bad character.
bool from_hex(std::string_view hex, std::array<uint8_t, 32>& out, size_t& bad_index) {
  for (size_t i = 0; i < 32; ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      bad_index = hi < 0 ? 2 * i : 2 * i + 1;
      return false;
    }
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

std::string errno_text(int err) { return std::system_category().message(err); }

void wipe(std::string& s) {
  CryptoPP::SecureWipeArray(s.data(), s.size());
  s.clear();
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports the error close() gives (a late write error on some file systems).
  int close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

bool exists_or_dangling(const std::filesystem::path& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 || errno != ENOENT;
}

// Moves `from` to `to` only if `to` does not exist, atomically.
int rename_no_replace(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  // A file system without RENAME_NOREPLACE: link() also fails with EEXIST instead of replacing.
  if (::link(from.c_str(), to.c_str()) != 0) return errno;
  ::unlink(from.c_str());
  return 0;
}

Expected<void> write_file_no_replace(const std::filesystem::path& path,
                                     const std::string& contents, mode_t mode) {
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  std::string temp = (dir / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
  Fd fd(::mkstemp(temp.data()));  // O_EXCL, mode 0600
  if (fd.get() < 0) {
    return make_error(path.string() + ": cannot create a temporary file in " + dir.string() +
                      ": " + errno_text(errno));
  }
  auto fail = [&](const std::string& what, int err) {
    ::unlink(temp.c_str());
    return make_error(path.string() + ": " + what + ": " + errno_text(err));
  };
  if (::fchmod(fd.get(), mode) != 0) return fail("cannot set its mode", errno);
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd.get(), contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("cannot write", n < 0 ? errno : EIO);
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("cannot flush to disk", errno);
  if (fd.close() != 0) return fail("cannot close", errno);
  if (const int err = rename_no_replace(temp, path); err != 0) {
    ::unlink(temp.c_str());
    if (err == EEXIST) {
      return make_error(path.string() + " already exists; refusing to overwrite it");
    }
    return make_error(path.string() + ": cannot move the temporary file into place: " +
                      errno_text(err));
  }
  // Make the new directory entry durable too.
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() >= 0) ::fsync(dir_fd.get());
  return {};
}

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Whoever owns a secret file, or may write its directory, can replace the secret: only
// prismd's own user and root are trusted with either.
bool trusted_owner(uid_t uid) { return uid == ::geteuid() || uid == 0; }

Expected<void> check_owner(const struct stat& st, const std::string& name, std::string_view what) {
  if (trusted_owner(st.st_uid)) return {};
  return make_error(name + ": the " + std::string(what) + " is owned by uid " +
                    std::to_string(st.st_uid) + ", neither prismd's user (uid " +
                    std::to_string(::geteuid()) + ") nor root; run `chown " +
                    std::to_string(::geteuid()) + " " + name + "`");
}

// A directory others may write is one where they may swap a key file for their own.
Expected<void> check_private_directory(int dir_fd, const std::string& name) {
  struct stat st;
  if (::fstat(dir_fd, &st) != 0) {
    return make_error(name + ": cannot stat the directory: " + errno_text(errno));
  }
  if (auto owner = check_owner(st, name, "directory"); !owner) return owner;
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return make_error(name + ": the directory has mode " + mode_text(st.st_mode) +
                      ", so others can replace the files in it; run `chmod go-w " + name + "`");
  }
  return {};
}

std::filesystem::path directory_of(const std::filesystem::path& path) {
  return path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
}

// Creates `dir` (and its parents) if missing, the last one mode 0700 from the start, then
// checks that it is private as check_private_directory says.
Expected<void> make_private_directory(const std::filesystem::path& dir, std::string_view what) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return make_error(dir.string() + ": cannot create the " + std::string(what) + ": " +
                        errno_text(errno));
    }
  }
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    return make_error(dir.string() + ": cannot open the " + std::string(what) + ": " +
                      errno_text(errno));
  }
  return check_private_directory(fd.get(), dir.string());
}

}  // namespace

Expected<std::string> read_secret_file(const std::filesystem::path& path, std::string_view what,
                                       size_t max_size, bool group_may_read) {
  const std::string name = path.string();
  // The directory is checked through the descriptor the file is opened from, so the
  // check and the read see the same directory.
  const std::filesystem::path dir = directory_of(path);
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) {
    return make_error(name + ": cannot open the " + std::string(what) + "'s directory: " +
                      errno_text(errno));
  }
  if (auto private_dir = check_private_directory(dir_fd.get(), dir.string()); !private_dir) {
    return make_error(name + ": refusing the " + std::string(what) + ": " + private_dir.error());
  }
  Fd fd(::openat(dir_fd.get(), path.filename().c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) {
    return make_error(name + ": cannot open the " + std::string(what) + ": " + errno_text(errno));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return make_error(name + ": cannot stat the " + std::string(what) + ": " + errno_text(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(name + ": the " + std::string(what) + " is not a regular file");
  }
  if (auto owner = check_owner(st, name, what); !owner) return make_error(owner.error());
  // Checked on the opened file, so a chmod or swap between check and read changes nothing.
  const mode_t forbidden = group_may_read ? (S_IWGRP | S_IXGRP | S_IRWXO) : (S_IRWXG | S_IRWXO);
  if ((st.st_mode & forbidden) != 0) {
    return make_error(name + ": the " + std::string(what) + " has mode " + mode_text(st.st_mode) +
                      (group_may_read ? ", so others can access it; run `chmod 640 "
                                      : ", so group or others can access it; run `chmod 600 ") +
                      name + "`");
  }
  // Read one byte more than allowed to notice anything longer.
  std::string contents(max_size + 1, '\0');
  size_t got = 0;
  while (got < contents.size()) {
    const ssize_t n = ::read(fd.get(), contents.data() + got, contents.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      wipe(contents);
      return make_error(name + ": cannot read the " + std::string(what) + ": " + errno_text(errno));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  contents.resize(got);
  if (!contents.empty() && contents.back() == '\n') contents.pop_back();
  return contents;
}

Expected<KeyPair> load_private_key(const std::filesystem::path& path) {
  const std::string name = path.string();
  // 64 hex digits and one newline.
  auto read = read_secret_file(path, "private key", 65, false);
  if (!read) return make_error(read.error());
  std::string contents = std::move(*read);
  if (contents.size() != 64) {
    wipe(contents);
    return make_error(name + ": the private key file must hold 64 hex digits and an optional "
                             "newline");
  }
  std::array<uint8_t, 32> key;
  size_t bad = 0;
  const bool decoded = from_hex(contents, key, bad);
  wipe(contents);
  if (!decoded) {
    return make_error(name + ": the private key has a non-hex character at offset " +
                      std::to_string(bad));
  }
  auto pair = KeyPair::from_private(key);
  CryptoPP::SecureWipeArray(key.data(), key.size());
  if (!pair) return make_error(name + ": " + pair.error());
  return pair;
}

Expected<void> write_key_pair(const std::filesystem::path& private_path,
                              const std::filesystem::path& public_path, const KeyPair& pair) {
  if (private_path == public_path) {
    return make_error(private_path.string() + ": the private and public key paths are the same");
  }
  for (const auto* path : {&private_path, &public_path}) {
    if (exists_or_dangling(*path)) {
      return make_error(path->string() + " already exists; refusing to overwrite it");
    }
  }
  std::string private_text = to_hex(pair.private_key) + "\n";
  auto written = write_file_no_replace(private_path, private_text, 0600);
  wipe(private_text);
  if (!written) return written;
  written = write_file_no_replace(public_path, encode_public_key(pair.public_key) + "\n", 0644);
  if (!written) {
    ::unlink(private_path.c_str());  // ours: created above; a half-written pair is useless
    return written;
  }
  return {};
}

std::string encode_public_key(const std::array<uint8_t, 32>& public_key) {
  return std::string(kPublicKeyPrefix) + to_hex(public_key);
}

Expected<std::array<uint8_t, 32>> decode_public_key(std::string_view text) {
  if (!text.starts_with(kPublicKeyPrefix)) {
    return make_error("public key must start with \"prism1:\"");
  }
  const std::string_view hex = text.substr(kPublicKeyPrefix.size());
  if (hex.size() != 64) {
    return make_error("public key must have 64 hex digits after \"prism1:\", got " +
                      std::to_string(hex.size()) + " characters");
  }
  std::array<uint8_t, 32> key;
  size_t bad = 0;
  if (!from_hex(hex, key, bad)) {
    return make_error("public key has a non-hex character at position " +
                      std::to_string(kPublicKeyPrefix.size() + bad));
  }
  if (is_low_order_public_key(key)) {
    return make_error("public key is a low-order X25519 point (such as all zeros); "
                      "no real server key is one");
  }
  return key;
}

Expected<ServerKey> load_or_create_server_key(const std::filesystem::path& dir) {
  const auto private_path = dir / kServerPrivateKeyFile;
  std::error_code ec;
  if (std::filesystem::exists(private_path, ec)) {
    auto pair = load_private_key(private_path);
    if (!pair) return make_error(pair.error());
    return ServerKey{*pair, false};
  }
  if (auto made = make_private_directory(dir, "state directory"); !made) {
    return make_error(made.error());
  }
  const KeyPair pair = KeyPair::generate();
  if (auto written = write_key_pair(private_path, dir / kServerPublicKeyFile, pair); !written) {
    return make_error(written.error());
  }
  return ServerKey{pair, true};
}

Expected<AdminToken> load_or_create_admin_token(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    // 0640 is allowed: the package makes it root:prism so the service user can read it.
    auto token = read_secret_file(path, "admin token", 1024, true);
    if (!token) return make_error(token.error());
    if (token->size() < 16) {
      wipe(*token);
      return make_error(path.string() + ": the admin token must be at least 16 characters");
    }
    return AdminToken{std::move(*token), false};
  }
  if (auto made = make_private_directory(directory_of(path), "admin token's directory"); !made) {
    return make_error(made.error());
  }
  std::array<uint8_t, 32> random{};
  CryptoPP::AutoSeededRandomPool rng;
  rng.GenerateBlock(random.data(), random.size());
  std::string token = to_hex(random);
  CryptoPP::SecureWipeArray(random.data(), random.size());
  auto written = write_file_no_replace(path, token + "\n", 0600);
  if (!written) {
    wipe(token);
    return make_error(written.error());
  }
  return AdminToken{std::move(token), true};
}

}  // namespace prism::net::crypto
