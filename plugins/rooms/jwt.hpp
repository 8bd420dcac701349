// JWT verification for rooms.auth: compact JWS tokens (RFC 7515) carrying JWT claims
// (RFC 7519) signed with HS256, RS256 or ES256 (RFC 7518 §3), checked against one key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prism::rooms {

// One configured key and the one algorithm it allows. Immutable once built apart from
// require_audience(); copies share the key, and verify() may run on several threads at once.
// Nothing here throws: failures come back as values with a short message.
class JwtVerifier {
 public:
  // Tokens longer than this are refused before any parsing (a connect-time input from anyone).
  static constexpr size_t kMaxTokenBytes = 8 * 1024;
  // RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
  static constexpr size_t kMinHs256SecretBytes = 32;
  // RFC 7518 §3.3: RSA keys of 2048 bits or more.
  static constexpr unsigned kMinRsaModulusBits = 2048;

  // HS256 with this shared secret (bytes as given, at least 32 bytes: refuse shorter with an error).
  static std::optional<JwtVerifier> hs256(std::string secret, std::string* error);
  // RS256 or ES256 from a PEM "PUBLIC KEY" (X.509 SubjectPublicKeyInfo: RSA of at least
  // 2048 bits, or EC on P-256); the algorithm follows the key.
  static std::optional<JwtVerifier> from_public_key_pem(std::string_view pem, std::string* error);

  struct Claims {
    std::string sub;                                    // the user id
    std::optional<std::vector<std::string>> instances;  // the "instances" claim, when present: the ids the user may join
  };
  struct Result {
    bool ok = false;
    std::string error;  // short and safe to show a client; empty when ok
    Claims claims;      // filled only when ok
  };

  // Verifies a compact JWS (header.payload.signature): the header's alg must be exactly this
  // verifier's (no "none", no HS256 against a public key), the signature valid, "exp" (if
  // present) > now - leeway, "nbf" (if present) <= now + leeway, "sub" a non-empty string,
  // "instances" (if present) an array of strings, and "aud" as require_audience() says.
  Result verify(std::string_view token, int64_t now_unix_seconds, int64_t leeway_seconds = 30) const;

  // RFC 7519 §4.1.3: a token that carries "aud" must name the recipient. By default this
  // verifier names none, so any token with "aud" is refused; after require_audience(a),
  // a token must carry "aud" equal to a (or an array holding a).
  void require_audience(std::string audience);

  std::string_view algorithm() const;  // "HS256", "RS256" or "ES256"

 private:
  struct Key;  // the key material and its signature check (jwt.cpp)
  explicit JwtVerifier(std::shared_ptr<const Key> key) : key_(std::move(key)) {}

  std::shared_ptr<const Key> key_;
  std::optional<std::string> audience_;
};

}  // namespace prism::rooms
