// Service login tokens at rest: operators store "sha256:<hex>" in plugins.d/<name>.yaml, never
// the token itself, and the host compares a presented token against it in constant time.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/expected.hpp"

namespace prism {

inline constexpr std::string_view kTokenHashPrefix = "sha256:";

// A stored token: the SHA-256 digest of the token's bytes.
struct TokenHash {
  std::array<uint8_t, 32> digest{};
};

// SHA-256(token): what a stored token_hash holds, for a token the host has in hand (the
// admin token it reads from its file).
TokenHash token_digest(std::string_view token);

// "sha256:" followed by the 64 lowercase hex digits of SHA-256(token): what an operator
// writes into a plugin's token_hash key.
std::string hash_token(std::string_view token);

// Accepts exactly "sha256:<64 hex digits>" (either case); the error says what is expected.
Expected<TokenHash> parse_token_hash(std::string_view text);

// True when SHA-256(presented) equals the stored digest. The comparison takes the same
// time wherever the digests differ, so a caller learns nothing from how long it took.
bool token_matches(const TokenHash& stored, std::string_view presented);

}  // namespace prism
