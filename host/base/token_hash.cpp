// SHA-256 token hashes: the "sha256:<hex>" text form and the constant-time match.
#include "base/token_hash.hpp"

#include <cryptopp/misc.h>
#include <cryptopp/sha.h>

namespace prism {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr size_t kDigestHexLength = 2 * sizeof(TokenHash::digest);

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Error malformed(std::string_view why) {
  return make_error("expected sha256:<64 hex digits>, " + std::string(why));
}

}  // namespace

TokenHash token_digest(std::string_view token) {
  static_assert(CryptoPP::SHA256::DIGESTSIZE == sizeof(TokenHash::digest));
  TokenHash hash;
  CryptoPP::SHA256 sha;
  sha.Update(reinterpret_cast<const CryptoPP::byte*>(token.data()), token.size());
  sha.Final(hash.digest.data());
  return hash;
}

std::string hash_token(std::string_view token) {
  const TokenHash hash = token_digest(token);
  std::string out(kTokenHashPrefix);
  out.reserve(kTokenHashPrefix.size() + kDigestHexLength);
  for (uint8_t b : hash.digest) {
    out.push_back(kHexDigits[b >> 4]);
    out.push_back(kHexDigits[b & 0x0f]);
  }
  return out;
}

Expected<TokenHash> parse_token_hash(std::string_view text) {
  if (!text.starts_with(kTokenHashPrefix)) return malformed("the value does not start with \"sha256:\"");
  const std::string_view hex = text.substr(kTokenHashPrefix.size());
  if (hex.size() != kDigestHexLength) {
    return malformed("got " + std::to_string(hex.size()) + " characters after \"sha256:\"");
  }
  TokenHash hash;
  for (size_t i = 0; i < hash.digest.size(); ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      const size_t bad = hi < 0 ? 2 * i : 2 * i + 1;
      return malformed("got a non-hex character at digit " + std::to_string(bad + 1));
    }
    hash.digest[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return hash;
}

bool token_matches(const TokenHash& stored, std::string_view presented) {
  const TokenHash candidate = token_digest(presented);
  return CryptoPP::VerifyBufsEqual(candidate.digest.data(), stored.digest.data(),
                                   candidate.digest.size());
}

}  // namespace prism
