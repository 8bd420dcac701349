// The server's static key on disk and the public key's text form (DESIGN.md §3): loading
// and writing key files safely, and "prism1:<hex>" public keys for client configuration.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "base/expected.hpp"
#include "net/crypto/noise_nk.hpp"

namespace prism::net::crypto {

inline constexpr std::string_view kPublicKeyPrefix = "prism1:";

// Reads a small secret file (at most max_size bytes, one trailing newline dropped). Refuses
// a file that is not regular, longer, or that others may access (and the group too,
// unless group_may_read, which still forbids group write). `what` names it in errors.
Expected<std::string> read_secret_file(const std::filesystem::path& path, std::string_view what,
                                       size_t max_size, bool group_may_read);

// Reads a private key file: exactly 64 hex digits, optionally followed by one newline.
// Refuses a file that group or others may access in any way (the error names the file
// and says to `chmod 600` it), a file that is not a regular file, and malformed contents.
Expected<KeyPair> load_private_key(const std::filesystem::path& path);

// Writes the private key (64 hex digits and a newline, mode 0600) and the public key
// (encode_public_key and a newline, mode 0644). Each file is written to a temporary file
// in its directory, flushed and then renamed into place without replacing anything: if
// either path already exists nothing is written and an error names it.
Expected<void> write_key_pair(const std::filesystem::path& private_path,
                              const std::filesystem::path& public_path, const KeyPair& pair);

// The server key pair in a state directory: `dir`/server.key and `dir`/server.pub.
inline constexpr std::string_view kServerPrivateKeyFile = "server.key";
inline constexpr std::string_view kServerPublicKeyFile = "server.pub";

struct ServerKey {
  KeyPair pair;
  bool created = false;  // generated now, on first start
};

// Loads the server key from `dir`, or, when there is none yet, creates `dir` (mode 0700
// if it is new) and generates and writes one. Never replaces an existing key; a key file
// others can read is refused as load_private_key does.
Expected<ServerKey> load_or_create_server_key(const std::filesystem::path& dir);

// "prism1:" followed by the 64 lowercase hex digits of the key.
std::string encode_public_key(const std::array<uint8_t, 32>& public_key);

// The inverse of encode_public_key (hex digits in either case). Errors say what is wrong:
// the prefix, the length, the character, or a low-order key that Noise would refuse.
Expected<std::array<uint8_t, 32>> decode_public_key(std::string_view text);

// The admin token (docs/operations.md): read from `path` (mode 0600, or 0640 for a
// service group), or created there with 64 random hex digits on first start.
struct AdminToken {
  std::string token;
  bool created = false;
};
Expected<AdminToken> load_or_create_admin_token(const std::filesystem::path& path);

}  // namespace prism::net::crypto
