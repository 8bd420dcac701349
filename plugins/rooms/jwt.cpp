// JWT verification for rooms.auth (jwt.hpp): strict base64url and JSON decoding, the PEM
// public key loader, and the HS256 / RS256 / ES256 checks, on Crypto++ and nlohmann-json.
#include "jwt.hpp"

#include <cryptopp/asn.h>
#include <cryptopp/base64.h>
#include <cryptopp/eccrypto.h>
#include <cryptopp/filters.h>
#include <cryptopp/hmac.h>
#include <cryptopp/oids.h>
#include <cryptopp/osrng.h>
#include <cryptopp/queue.h>
#include <cryptopp/rsa.h>
#include <cryptopp/secblock.h>
#include <cryptopp/sha.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <set>
#include <variant>

namespace prism::rooms {

using Json = nlohmann::json;
using EcdsaP256 = CryptoPP::ECDSA<CryptoPP::ECP, CryptoPP::SHA256>;

// One of: the HS256 secret, the RS256 public key, the ES256 public key. The variant's
// index is the algorithm, so a key can never be checked under another key type's
// algorithm (RFC 8725 §2.1, algorithm confusion).
struct JwtVerifier::Key {
  std::variant<CryptoPP::SecByteBlock, CryptoPP::RSA::PublicKey, EcdsaP256::PublicKey> material;

  std::string_view algorithm() const {
    switch (material.index()) {
      case 0: return "HS256";
      case 1: return "RS256";
      default: return "ES256";
    }
  }

  // RFC 7515 §5.2 step 8: the signature over ASCII(header '.' payload), exactly as sent.
  bool signature_valid(std::string_view signing_input, const std::string& signature) const {
    try {
      return check_signature(signing_input, signature);
    } catch (const CryptoPP::Exception&) {
      return false;  // e.g. an RSA signature that is not below the modulus
    }
  }

 private:
  bool check_signature(std::string_view signing_input, const std::string& signature) const {
    const auto* input = reinterpret_cast<const CryptoPP::byte*>(signing_input.data());
    const auto* sig = reinterpret_cast<const CryptoPP::byte*>(signature.data());
    if (const auto* secret = std::get_if<CryptoPP::SecByteBlock>(&material)) {
      // RFC 7518 §3.2: HMAC SHA-256, compared in constant time (VerifyDigest uses
      // VerifyBufsEqual) so a forger learns nothing from how long a refusal takes.
      CryptoPP::HMAC<CryptoPP::SHA256> mac(secret->data(), secret->size());
      return signature.size() == CryptoPP::HMAC<CryptoPP::SHA256>::DIGESTSIZE &&
             mac.VerifyDigest(sig, input, signing_input.size());
    }
    if (const auto* rsa = std::get_if<CryptoPP::RSA::PublicKey>(&material)) {
      // RFC 7518 §3.3: RSASSA-PKCS1-v1_5 with SHA-256; RFC 8017 §8.2.2 step 1: the
      // signature is exactly as long as the modulus.
      CryptoPP::RSASS<CryptoPP::PKCS1v15, CryptoPP::SHA256>::Verifier verifier(*rsa);
      return signature.size() == verifier.SignatureLength() &&
             verifier.VerifyMessage(input, signing_input.size(), sig, signature.size());
    }
    // RFC 7518 §3.4: ECDSA P-256 SHA-256, the signature R || S as two 32-byte big-endian
    // integers (not DER) — Crypto++'s default DSA_P1363 format.
    EcdsaP256::Verifier verifier(std::get<EcdsaP256::PublicKey>(material));
    return signature.size() == 64 && signature.size() == verifier.SignatureLength() &&
           verifier.VerifyMessage(input, signing_input.size(), sig, signature.size());
  }
};

namespace {

void set_error(std::string* error, std::string message) {
  if (error != nullptr) *error = std::move(message);
}

// RFC 7515 §2: base64url without padding, line breaks or any character outside the URL-safe
// alphabet. Crypto++'s decoder skips characters it does not know, so the text is accepted only
// when encoding the decoded bytes again gives it back exactly; that also refuses non-zero
// unused bits and '=' padding, so each value has a single accepted spelling.
std::optional<std::string> decode_base64url(std::string_view text) {
  std::string bytes;
  CryptoPP::StringSource(reinterpret_cast<const CryptoPP::byte*>(text.data()), text.size(), true,
                         new CryptoPP::Base64URLDecoder(new CryptoPP::StringSink(bytes)));
  std::string again;
  CryptoPP::StringSource(bytes, true, new CryptoPP::Base64URLEncoder(new CryptoPP::StringSink(again)));
  if (again != text) return std::nullopt;
  return bytes;
}

// A JSON object, or nullopt. RFC 7515 §5.2 step 3 and RFC 7519 §7.2 step 4 let a recipient
// either refuse a member name given twice or take the last one; refusing leaves no room for
// the signer's reader and this one to disagree about which "sub" or "exp" counts. The JSON
// must also be valid UTF-8 (RFC 7519 §7.2 step 8), which nlohmann's lexer enforces.
std::optional<Json> parse_object(const std::string& text) {
  std::vector<std::set<std::string>> names;  // one per object being read, innermost last
  bool duplicate = false;
  const Json::parser_callback_t note_names = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        names.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!names.empty()) names.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!names.empty() && !names.back().insert(parsed.get<std::string>()).second) duplicate = true;
        break;
      default:
        break;
    }
    return true;
  };
  Json value = Json::parse(text, note_names, /*allow_exceptions=*/false);
  if (value.is_discarded() || duplicate || !value.is_object()) return std::nullopt;
  return value;
}

// RFC 7519 §2 NumericDate: seconds since the epoch as a JSON number, which may carry a
// fraction. Returns <0, 0 or >0 as the date is before, at or after `t`; nullopt when the
// claim is not a finite number.
std::optional<int> compare_date(const Json& date, int64_t t) {
  if (date.is_number_unsigned()) {
    const auto value = date.get<uint64_t>();
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return 1;
    const auto v = static_cast<int64_t>(value);
    return (v > t) - (v < t);
  }
  if (date.is_number_integer()) {
    const auto v = date.get<int64_t>();
    return (v > t) - (v < t);
  }
  if (date.is_number_float()) {
    const double v = date.get<double>();
    if (!std::isfinite(v)) return std::nullopt;
    const auto td = static_cast<double>(t);
    return (v > td) - (v < td);
  }
  return std::nullopt;
}

int64_t saturating_add(int64_t a, int64_t b) {
  int64_t sum;
  if (!__builtin_add_overflow(a, b, &sum)) return sum;
  return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

// An algorithm name from the token, echoed in the refusal only when it looks like one (the
// header is anyone's text and the message goes back to the client).
std::string printable_algorithm(const Json& alg) {
  if (!alg.is_string()) return {};
  const auto& name = alg.get_ref<const std::string&>();
  if (name.empty() || name.size() > 16) return {};
  for (const char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '+' || c == '.';
    if (!ok) return {};
  }
  return name;
}

// The DER of a PEM "PUBLIC KEY" (RFC 7468 §13: an X.509 SubjectPublicKeyInfo, RFC 5280
// §4.1). Debian's Crypto++ has no PEM reader, so the body between the encapsulation lines
// goes through Base64Decoder; text before the BEGIN line is allowed (RFC 7468 §2).
std::optional<std::string> public_key_der(std::string_view pem, std::string* error) {
  constexpr std::string_view kBegin = "-----BEGIN PUBLIC KEY-----";
  constexpr std::string_view kEnd = "-----END PUBLIC KEY-----";
  if (pem.find("PRIVATE KEY-----") != std::string_view::npos) {
    set_error(error, "key is a private key; give the public key (openssl pkey -pubout)");
    return std::nullopt;
  }
  const size_t begin = pem.find(kBegin);
  if (begin == std::string_view::npos) {
    if (pem.find("-----BEGIN RSA PUBLIC KEY-----") != std::string_view::npos) {
      set_error(error,
                "key is a PKCS#1 RSA PUBLIC KEY; give a PUBLIC KEY (openssl rsa -RSAPublicKey_in -pubout)");
    } else {
      set_error(error, "key is not a PEM PUBLIC KEY (no -----BEGIN PUBLIC KEY----- line)");
    }
    return std::nullopt;
  }
  const size_t body_begin = begin + kBegin.size();
  const size_t end = pem.find(kEnd, body_begin);
  if (end == std::string_view::npos) {
    set_error(error, "key PEM has no -----END PUBLIC KEY----- line");
    return std::nullopt;
  }
  const std::string_view body = pem.substr(body_begin, end - body_begin);
  // RFC 7468 §3: the body is base64 broken into lines. The decoder would skip anything else
  // silently, so anything else is refused here rather than decoded into a different key.
  for (const char c : body) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/' || c == '=' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
    if (!ok) {
      set_error(error, "key PEM body is not base64");
      return std::nullopt;
    }
  }
  std::string der;
  CryptoPP::StringSource(reinterpret_cast<const CryptoPP::byte*>(body.data()), body.size(), true,
                         new CryptoPP::Base64Decoder(new CryptoPP::StringSink(der)));
  if (der.empty()) {
    set_error(error, "key PEM body is empty");
    return std::nullopt;
  }
  return der;
}

CryptoPP::ByteQueue queue_of(const std::string& bytes) {
  CryptoPP::ByteQueue queue;
  queue.Put(reinterpret_cast<const CryptoPP::byte*>(bytes.data()), bytes.size());
  queue.MessageEnd();
  return queue;
}

// The algorithm OID of a SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), read first so a key of
// another kind gets a refusal that names the problem.
CryptoPP::OID key_algorithm(const std::string& der) {
  CryptoPP::ByteQueue queue = queue_of(der);
  CryptoPP::BERSequenceDecoder spki(queue);
  CryptoPP::BERSequenceDecoder algorithm(spki);
  CryptoPP::OID oid;
  oid.BERDecode(algorithm);
  return oid;
}

// Decodes the whole DER into `key` (X509PublicKey::BERDecode checks the algorithm OID);
// bytes left after the structure make it a different input, so they are refused.
template <typename PublicKey>
bool load_exactly(const std::string& der, PublicKey& key) {
  CryptoPP::ByteQueue queue = queue_of(der);
  key.BERDecode(queue);
  return queue.IsEmpty();
}

}  // namespace

std::optional<JwtVerifier> JwtVerifier::hs256(std::string secret, std::string* error) {
  try {
    if (secret.size() < kMinHs256SecretBytes) {
      set_error(error, "HS256 secret must be at least " + std::to_string(kMinHs256SecretBytes) +
                           " bytes (RFC 7518 §3.2), got " + std::to_string(secret.size()));
      CryptoPP::SecureWipeArray(secret.data(), secret.size());
      return std::nullopt;
    }
    auto key = std::make_shared<Key>();
    key->material = CryptoPP::SecByteBlock(reinterpret_cast<const CryptoPP::byte*>(secret.data()), secret.size());
    CryptoPP::SecureWipeArray(secret.data(), secret.size());
    return JwtVerifier(std::move(key));
  } catch (const std::exception& e) {
    set_error(error, std::string("HS256 secret not usable: ") + e.what());
    return std::nullopt;
  }
}

std::optional<JwtVerifier> JwtVerifier::from_public_key_pem(std::string_view pem, std::string* error) {
  try {
    const std::optional<std::string> der = public_key_der(pem, error);
    if (!der) return std::nullopt;
    CryptoPP::OID algorithm;
    try {
      algorithm = key_algorithm(*der);
    } catch (const CryptoPP::Exception&) {
      set_error(error, "key PEM does not hold a SubjectPublicKeyInfo");
      return std::nullopt;
    }
    CryptoPP::AutoSeededRandomPool rng;
    auto key = std::make_shared<Key>();
    if (algorithm == CryptoPP::ASN1::rsaEncryption()) {
      CryptoPP::RSA::PublicKey rsa;
      // Validate: n odd and > 1, e odd and 1 < e < n (RFC 8017 §3.1).
      if (!load_exactly(*der, rsa) || !rsa.Validate(rng, 3)) {
        set_error(error, "RSA public key is not valid");
        return std::nullopt;
      }
      const unsigned bits = rsa.GetModulus().BitCount();
      if (bits < kMinRsaModulusBits) {
        set_error(error, "RSA key has " + std::to_string(bits) + " bits; RS256 needs at least " +
                             std::to_string(kMinRsaModulusBits) + " (RFC 7518 §3.3)");
        return std::nullopt;
      }
      key->material = std::move(rsa);
    } else if (algorithm == CryptoPP::ASN1::id_ecPublicKey()) {
      EcdsaP256::PublicKey ec;
      if (!load_exactly(*der, ec)) {
        set_error(error, "EC public key is not valid");
        return std::nullopt;
      }
      // RFC 7518 §3.4: ES256 is ECDSA on P-256 only. Compared as parameters (curve, base
      // point, order), so explicit parameters equal to P-256 pass and any other curve fails.
      const CryptoPP::DL_GroupParameters_EC<CryptoPP::ECP> p256(CryptoPP::ASN1::secp256r1());
      const auto& group = ec.GetGroupParameters();
      if (!(group == p256) || group.GetSubgroupOrder() != p256.GetSubgroupOrder() ||
          group.GetCofactor() != p256.GetCofactor()) {
        set_error(error, "EC key is not on P-256 (secp256r1); ES256 needs P-256 (RFC 7518 §3.4)");
        return std::nullopt;
      }
      // The point must lie on the curve and in the prime-order subgroup, not be the identity.
      if (!ec.Validate(rng, 3)) {
        set_error(error, "EC public key is not a valid P-256 point");
        return std::nullopt;
      }
      key->material = std::move(ec);
    } else {
      set_error(error, "key is neither RSA nor EC; rooms.auth takes an RSA (RS256) or EC P-256 (ES256) key");
      return std::nullopt;
    }
    return JwtVerifier(std::move(key));
  } catch (const CryptoPP::Exception&) {
    set_error(error, "public key is not valid");
    return std::nullopt;
  } catch (const std::exception& e) {
    set_error(error, std::string("public key not usable: ") + e.what());
    return std::nullopt;
  }
}

void JwtVerifier::require_audience(std::string audience) { audience_ = std::move(audience); }

std::string_view JwtVerifier::algorithm() const { return key_->algorithm(); }

JwtVerifier::Result JwtVerifier::verify(std::string_view token, int64_t now_unix_seconds,
                                        int64_t leeway_seconds) const {
  Result result;
  const auto refuse = [&result](std::string error) {
    result.error = std::move(error);
    return result;
  };
  try {
    if (token.size() > kMaxTokenBytes) return refuse("token too long");

    // RFC 7515 §7.1: the compact serialization is exactly three base64url parts joined by
    // '.'; five parts would be a JWE (RFC 7516 §7.1), which is not accepted here.
    const size_t first_dot = token.find('.');
    const size_t second_dot = first_dot == std::string_view::npos ? first_dot : token.find('.', first_dot + 1);
    if (second_dot == std::string_view::npos || token.find('.', second_dot + 1) != std::string_view::npos) {
      return refuse("token malformed");
    }
    const std::string_view header_text = token.substr(0, first_dot);
    const std::string_view payload_text = token.substr(first_dot + 1, second_dot - first_dot - 1);
    const std::string_view signature_text = token.substr(second_dot + 1);
    const auto header_json = decode_base64url(header_text);
    const auto payload_json = decode_base64url(payload_text);
    const auto signature = decode_base64url(signature_text);
    if (!header_json || !payload_json || !signature) return refuse("token malformed");

    // RFC 7515 §5.2 steps 3-5: the JOSE header is a JSON object naming its "alg".
    const std::optional<Json> header = parse_object(*header_json);
    if (!header) return refuse("token malformed");
    const auto alg = header->find("alg");
    if (alg == header->end() || !alg->is_string()) return refuse("token malformed");
    // RFC 8725 §3.1 and RFC 7515 §10.7: the algorithm is the key's, never the token's
    // choice; "none" (RFC 7518 §3.6) and HS256 signed with a public key as its secret are
    // both refused here.
    if (alg->get_ref<const std::string&>() != algorithm()) {
      const std::string named = printable_algorithm(*alg);
      return refuse("token algorithm " + (named.empty() ? std::string() : named + " ") + "not accepted (" +
                    std::string(algorithm()) + " expected)");
    }
    // RFC 7515 §4.1.11: "crit" lists extensions the recipient must understand; this one
    // understands none (including RFC 7797's unencoded payload), so any "crit" is refused.
    if (header->contains("crit")) return refuse("token has unsupported critical header");

    if (!key_->signature_valid(token.substr(0, second_dot), *signature)) {
      return refuse("token signature invalid");
    }

    // RFC 7519 §7.2 step 10: the payload of a JWT is a JSON object, the claims set.
    const std::optional<Json> claims = parse_object(*payload_json);
    if (!claims) return refuse("token malformed");

    // RFC 7519 §4.1.4 and §4.1.5, with the small leeway they allow for clock skew.
    const int64_t leeway = leeway_seconds > 0 ? leeway_seconds : 0;
    if (const auto exp = claims->find("exp"); exp != claims->end()) {
      const auto order = compare_date(*exp, saturating_add(now_unix_seconds, -leeway));
      if (!order) return refuse("token exp invalid");
      if (*order <= 0) return refuse("token expired");
    }
    if (const auto nbf = claims->find("nbf"); nbf != claims->end()) {
      const auto order = compare_date(*nbf, saturating_add(now_unix_seconds, leeway));
      if (!order) return refuse("token nbf invalid");
      if (*order > 0) return refuse("token not yet valid");
    }

    // RFC 7519 §4.1.2: "sub" is a StringOrURI; here it is the user id, so it must be there.
    const auto sub = claims->find("sub");
    if (sub == claims->end() || !sub->is_string() || sub->get_ref<const std::string&>().empty()) {
      return refuse("token has no sub");
    }

    // RFC 7519 §4.1.3: a recipient that does not find itself in "aud" must refuse the token.
    const auto aud = claims->find("aud");
    if (aud != claims->end() || audience_) {
      bool named = false;
      if (aud != claims->end() && audience_) {
        if (aud->is_string()) {
          named = aud->get_ref<const std::string&>() == *audience_;
        } else if (aud->is_array()) {
          for (const auto& entry : *aud) {
            if (entry.is_string() && entry.get_ref<const std::string&>() == *audience_) named = true;
          }
        }
      }
      if (!named) return refuse("token audience not accepted");
    }

    // The rooms claim (a private claim name, RFC 7519 §4.3): the instance ids this user may join.
    if (const auto instances = claims->find("instances"); instances != claims->end()) {
      if (!instances->is_array()) return refuse("token instances claim invalid");
      std::vector<std::string> ids;
      ids.reserve(instances->size());
      for (const auto& entry : *instances) {
        if (!entry.is_string()) return refuse("token instances claim invalid");
        ids.push_back(entry.get<std::string>());
      }
      result.claims.instances = std::move(ids);
    }

    result.claims.sub = sub->get<std::string>();
    result.ok = true;
    return result;
  } catch (...) {
    // Nothing above should throw on any input; if a library does (allocation), the token is
    // refused rather than the connection handler unwound.
    result = Result{};
    return refuse("token verification failed");
  }
}

}  // namespace prism::rooms
