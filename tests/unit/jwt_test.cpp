// rooms.auth token checks (plugins/rooms/jwt.hpp): tokens signed here with Crypto++ (HS256,
// RS256, ES256), RFC 7515's own example, tokens made by OpenSSL, and every refusal.
#include "jwt.hpp"

#include <cryptopp/base64.h>
#include <cryptopp/dsa.h>
#include <cryptopp/eccrypto.h>
#include <cryptopp/filters.h>
#include <cryptopp/hmac.h>
#include <cryptopp/oids.h>
#include <cryptopp/osrng.h>
#include <cryptopp/queue.h>
#include <cryptopp/rsa.h>
#include <cryptopp/sha.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace prism::rooms {
namespace {

using Json = nlohmann::json;
using Ecdsa = CryptoPP::ECDSA<CryptoPP::ECP, CryptoPP::SHA256>;
using RsaSigner = CryptoPP::RSASS<CryptoPP::PKCS1v15, CryptoPP::SHA256>::Signer;
using Sign = std::function<std::string(std::string_view)>;

constexpr int64_t kNow = 1'700'000'000;
const std::string kSecret = "0123456789abcdef0123456789abcdef-rooms";  // 38 bytes

std::string b64url(std::string_view bytes) {
  std::string out;
  CryptoPP::StringSource(reinterpret_cast<const CryptoPP::byte*>(bytes.data()), bytes.size(), true,
                         new CryptoPP::Base64URLEncoder(new CryptoPP::StringSink(out)));
  return out;
}

std::string from_b64url(std::string_view text) {
  std::string out;
  CryptoPP::StringSource(reinterpret_cast<const CryptoPP::byte*>(text.data()), text.size(), true,
                         new CryptoPP::Base64URLDecoder(new CryptoPP::StringSink(out)));
  return out;
}

Sign hs256(std::string secret) {
  return [secret](std::string_view input) {
    CryptoPP::HMAC<CryptoPP::SHA256> mac(reinterpret_cast<const CryptoPP::byte*>(secret.data()), secret.size());
    std::string out;
    CryptoPP::StringSource(reinterpret_cast<const CryptoPP::byte*>(input.data()), input.size(), true,
                           new CryptoPP::HashFilter(mac, new CryptoPP::StringSink(out)));
    return out;
  };
}

CryptoPP::AutoSeededRandomPool& rng() {
  static CryptoPP::AutoSeededRandomPool pool;
  return pool;
}

template <typename Signer>
std::string sign_with(const Signer& signer, std::string_view input) {
  std::string out;
  CryptoPP::StringSource(reinterpret_cast<const CryptoPP::byte*>(input.data()), input.size(), true,
                         new CryptoPP::SignerFilter(rng(), signer, new CryptoPP::StringSink(out)));
  return out;
}

Sign rs256(const CryptoPP::RSA::PrivateKey& key) {
  return [key](std::string_view input) { return sign_with(RsaSigner(key), input); };
}

// Crypto++'s ECDSA signature is already R || S (IEEE P1363), the JWS form (RFC 7518 §3.4).
Sign es256(const Ecdsa::PrivateKey& key) {
  return [key](std::string_view input) { return sign_with(Ecdsa::Signer(key), input); };
}

// The compact serialization of header.payload signed by `sign` (RFC 7515 §7.1).
std::string jws_raw(std::string_view header, std::string_view payload, const Sign& sign) {
  const std::string input = b64url(header) + "." + b64url(payload);
  return input + "." + b64url(sign(input));
}

std::string jws(std::string_view alg, const Json& claims, const Sign& sign) {
  return jws_raw(Json{{"alg", alg}, {"typ", "JWT"}}.dump(), claims.dump(), sign);
}

// RFC 7468 §13 text of a SubjectPublicKeyInfo: 64-column base64 between the two lines.
std::string pem_of(const CryptoPP::X509PublicKey& key) {
  CryptoPP::ByteQueue der;
  key.DEREncode(der);
  std::string body;
  CryptoPP::Base64Encoder encoder(new CryptoPP::StringSink(body), true, 64);
  der.CopyTo(encoder);
  encoder.MessageEnd();
  return "-----BEGIN PUBLIC KEY-----\n" + body + "-----END PUBLIC KEY-----\n";
}

CryptoPP::RSA::PrivateKey rsa_key(unsigned bits) {
  CryptoPP::RSA::PrivateKey key;
  key.GenerateRandomWithKeySize(rng(), bits);
  return key;
}

Ecdsa::PrivateKey ec_key(const CryptoPP::OID& curve) {
  Ecdsa::PrivateKey key;
  key.Initialize(rng(), curve);
  return key;
}

std::string rsa_pem(const CryptoPP::RSA::PrivateKey& key) {
  CryptoPP::RSA::PublicKey pub;
  pub.AssignFrom(key);
  return pem_of(pub);
}

// named_curve: the curve as its OID (RFC 5480 §2.1.1, as OpenSSL writes it) rather than
// Crypto++'s default of explicit parameters.
std::string ec_pem(const Ecdsa::PrivateKey& key, bool named_curve = true) {
  Ecdsa::PublicKey pub;
  key.MakePublicKey(pub);
  pub.AccessGroupParameters().SetEncodeAsOID(named_curve);
  return pem_of(pub);
}

JwtVerifier must(std::optional<JwtVerifier> verifier, const std::string& error) {
  EXPECT_TRUE(verifier.has_value()) << error;
  if (!verifier) std::abort();
  return *verifier;
}

JwtVerifier hs_verifier(const std::string& secret = kSecret) {
  std::string error;
  return must(JwtVerifier::hs256(secret, &error), error);
}

JwtVerifier pem_verifier(const std::string& pem) {
  std::string error;
  return must(JwtVerifier::from_public_key_pem(pem, &error), error);
}

const Json kClaims = {{"sub", "user-42"}, {"instances", {"arena-1", "arena-2"}}, {"exp", kNow + 600}};

// Keys are made once: a 2048-bit RSA key takes a noticeable moment.
class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new CryptoPP::RSA::PrivateKey(rsa_key(2048));
    other_rsa_ = new CryptoPP::RSA::PrivateKey(rsa_key(2048));
    ec_ = new Ecdsa::PrivateKey(ec_key(CryptoPP::ASN1::secp256r1()));
    other_ec_ = new Ecdsa::PrivateKey(ec_key(CryptoPP::ASN1::secp256r1()));
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete other_rsa_;
    delete ec_;
    delete other_ec_;
  }

  static JwtVerifier rs_verifier() { return pem_verifier(rsa_pem(*rsa_)); }
  static JwtVerifier es_verifier() { return pem_verifier(ec_pem(*ec_)); }

  // One token per algorithm with the same claims, and the verifier that should take it.
  static std::vector<std::pair<std::string, JwtVerifier>> signed_by_each(const Json& claims) {
    return {{jws("HS256", claims, hs256(kSecret)), hs_verifier()},
            {jws("RS256", claims, rs256(*rsa_)), rs_verifier()},
            {jws("ES256", claims, es256(*ec_)), es_verifier()}};
  }

  static inline CryptoPP::RSA::PrivateKey* rsa_ = nullptr;
  static inline CryptoPP::RSA::PrivateKey* other_rsa_ = nullptr;
  static inline Ecdsa::PrivateKey* ec_ = nullptr;
  static inline Ecdsa::PrivateKey* other_ec_ = nullptr;
};

void expect_accepted(const JwtVerifier::Result& result) {
  EXPECT_TRUE(result.ok) << result.error;
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.claims.sub, "user-42");
  ASSERT_TRUE(result.claims.instances.has_value());
  EXPECT_EQ(*result.claims.instances, (std::vector<std::string>{"arena-1", "arena-2"}));
}

void expect_refused(const JwtVerifier::Result& result, std::string_view error) {
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.error, error);
  EXPECT_EQ(result.claims.sub, "");
  EXPECT_FALSE(result.claims.instances.has_value());
}

// Replaces one base64url character of part `part` (0 header, 1 payload, 2 signature) with
// another that keeps the text canonical base64url.
std::string flip_char(const std::string& token, int part, size_t offset) {
  size_t begin = 0;
  for (int i = 0; i < part; ++i) begin = token.find('.', begin) + 1;
  std::string out = token;
  char& c = out[begin + offset];
  c = c == 'A' ? 'B' : 'A';
  return out;
}

// --- Accepted tokens ---

TEST_F(JwtTest, ValidHs256TokenIsAcceptedWithSubAndInstances) {
  const auto verifier = hs_verifier();
  EXPECT_EQ(verifier.algorithm(), "HS256");
  expect_accepted(verifier.verify(jws("HS256", kClaims, hs256(kSecret)), kNow));
}

TEST_F(JwtTest, ValidRs256TokenIsAcceptedWithSubAndInstances) {
  const auto verifier = rs_verifier();
  EXPECT_EQ(verifier.algorithm(), "RS256");
  expect_accepted(verifier.verify(jws("RS256", kClaims, rs256(*rsa_)), kNow));
}

TEST_F(JwtTest, ValidEs256TokenIsAcceptedWithSubAndInstances) {
  const auto verifier = es_verifier();
  EXPECT_EQ(verifier.algorithm(), "ES256");
  expect_accepted(verifier.verify(jws("ES256", kClaims, es256(*ec_)), kNow));
}

TEST_F(JwtTest, Es256KeyWithExplicitCurveParametersIsAccepted) {
  const auto verifier = pem_verifier(ec_pem(*ec_, /*named_curve=*/false));
  EXPECT_EQ(verifier.algorithm(), "ES256");
  expect_accepted(verifier.verify(jws("ES256", kClaims, es256(*ec_)), kNow));
}

TEST_F(JwtTest, TokenWithoutInstancesClaimHasNoInstanceLimit) {
  const auto result = hs_verifier().verify(jws("HS256", {{"sub", "user-42"}}, hs256(kSecret)), kNow);
  ASSERT_TRUE(result.ok) << result.error;
  EXPECT_EQ(result.claims.sub, "user-42");
  EXPECT_FALSE(result.claims.instances.has_value());
}

TEST_F(JwtTest, EmptyInstancesClaimIsAnEmptyList) {
  const Json claims = {{"sub", "user-42"}, {"instances", Json::array()}};
  const auto result = hs_verifier().verify(jws("HS256", claims, hs256(kSecret)), kNow);
  ASSERT_TRUE(result.ok) << result.error;
  ASSERT_TRUE(result.claims.instances.has_value());
  EXPECT_TRUE(result.claims.instances->empty());
}

TEST_F(JwtTest, UnknownClaimsAndHeaderParametersAreIgnored) {
  const Json header = {{"alg", "HS256"}, {"typ", "JWT"}, {"kid", "2024-01"}};
  Json claims = kClaims;
  claims["iss"] = "https://auth.example";
  claims["iat"] = kNow - 10;
  claims["role"] = {{"nested", true}};
  expect_accepted(hs_verifier().verify(jws_raw(header.dump(), claims.dump(), hs256(kSecret)), kNow));
}

// RFC 7515 Appendix A.1: the HS256 example, key given as a JWK "k". Its claims are
// {"iss":"joe","exp":1300819380,"http://example.com/is_root":true}: the signature and exp
// pass, and it is then refused only because it names no user.
constexpr std::string_view kRfc7515A1Token =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
constexpr std::string_view kRfc7515A1Key =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

TEST_F(JwtTest, Rfc7515AppendixA1TokenPassesSignatureAndExpiry) {
  const auto verifier = hs_verifier(from_b64url(kRfc7515A1Key));
  expect_refused(verifier.verify(kRfc7515A1Token, 1300819000), "token has no sub");
}

TEST_F(JwtTest, Rfc7515AppendixA1TokenIsExpiredAfterItsExp) {
  const auto verifier = hs_verifier(from_b64url(kRfc7515A1Key));
  expect_refused(verifier.verify(kRfc7515A1Token, 1300819380 + 31), "token expired");
}

TEST_F(JwtTest, Rfc7515AppendixA1TokenWithAnotherKeyHasInvalidSignature) {
  expect_refused(hs_verifier().verify(kRfc7515A1Token, 1300819000), "token signature invalid");
}

// Made with OpenSSL through python3-cryptography: named-curve key, P1363 signature.
constexpr std::string_view kOpenSslEcPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfLaJm+esFMhs3cSWkuuk8+wxtApd\n"
    "tdTWnp9jbMD3vcr8qI/KdHslRpBiEg3OyGV+ElmPYHn9/CnLVkE6Mj01Sg==\n"
    "-----END PUBLIC KEY-----\n";
constexpr std::string_view kOpenSslEs256Token =
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvcGVuc3NsLXVzZXIiLCJpbnN0YW5jZXMiOlsiYXJlbmEtMSJdfQ."
    "En2eAdU4vjM340RwaFaeXmqeOtNWE2aNemXIVeGD4dtg6WDEOP27RQy2Q3UiEkGASY5Vrtm0_y6WgNqtMcHTIQ";
constexpr std::string_view kOpenSslRsaPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArf41eRQutWZ4DJdXsW6q\n"
    "pbb8gQYMUVAMpw4IO0mXrkU94evv/JK+40nt2YQ6n1e0BUWOiPQ7Euk1nNrolpAn\n"
    "VCt+nAWM3yS5LILnXhHfC1xQMzhgLl5E8X/q3rKjyvNV+eFMdooWw9rNdWbGMlU4\n"
    "GC7f+pfXFlHDrIsjCLkjdpllwHxc9KCLgmvFbI7Xnmy/eP7xpCO9o4+5k+mSKI2M\n"
    "pwRd3DRc4geXvFBtskjFGEqqN12nWyZ9xlQ2PdlEEehlmXl9n2RIw6UKitsEh6k6\n"
    "z3fE+M9rfsGA2qfU9Qp/x+HXniEULQDTkYJv7QJ8edaaGAF3t2e3nCZe94EVUKfl\n"
    "rwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
constexpr std::string_view kOpenSslRs256Token =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvcGVuc3NsLXVzZXIiLCJpbnN0YW5jZXMiOlsiYXJlbmEtMSJdfQ."
    "BCGIDV9eGCXMHsAevSIW-OvtwROGRtYSvA46r2qXzPlLvaqyVovmKvuaC3_WKYzoGpT88ufi1MeijCigw4dUkYJJYQeXFiXCfIXE_"
    "ORODqnRZ8M79uc3MBkxMK0j69M5JsmbcQyqpQ_cOZc6ZimQl4Q2vudgdWi9sqALzUi7WwxCofSMzfhqhsa0trcYAxsaH1Pc-"
    "pwVopF7tvAupfc4dbRlLarPUV1w7F9zQYTO2MUjLEg_vnK2ffxGaqHVqwZmbx2YP0-sehHRPCGjsmqHyuVYE3bJbxZAlJHbovEGRjbyf2VZtkB9"
    "ZCOnaaKSv-48DOuYCnP-BePeiZSpViF8Gw";

TEST_F(JwtTest, Es256TokenMadeByOpenSslIsAccepted) {
  const auto result = pem_verifier(std::string(kOpenSslEcPem)).verify(kOpenSslEs256Token, kNow);
  ASSERT_TRUE(result.ok) << result.error;
  EXPECT_EQ(result.claims.sub, "openssl-user");
  EXPECT_EQ(result.claims.instances, (std::vector<std::string>{"arena-1"}));
}

TEST_F(JwtTest, Rs256TokenMadeByOpenSslIsAccepted) {
  const auto result = pem_verifier(std::string(kOpenSslRsaPem)).verify(kOpenSslRs256Token, kNow);
  ASSERT_TRUE(result.ok) << result.error;
  EXPECT_EQ(result.claims.sub, "openssl-user");
  EXPECT_EQ(result.claims.instances, (std::vector<std::string>{"arena-1"}));
}

TEST_F(JwtTest, VerifierCopiesShareTheKey) {
  const auto original = rs_verifier();
  const JwtVerifier copy = original;  // NOLINT(performance-unnecessary-copy-initialization)
  expect_accepted(copy.verify(jws("RS256", kClaims, rs256(*rsa_)), kNow));
}

TEST_F(JwtTest, OneVerifierServesSeveralThreadsAtOnce) {
  const auto tokens = signed_by_each(kClaims);
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&tokens, &accepted] {
      for (int i = 0; i < 20; ++i) {
        for (const auto& [token, verifier] : tokens) accepted += verifier.verify(token, kNow).ok ? 1 : 0;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(accepted.load(), 4 * 20 * 3);
}

// --- Signatures ---

TEST_F(JwtTest, TamperedPayloadIsRefused) {
  for (const auto& [token, verifier] : signed_by_each(kClaims)) {
    const std::string forged_payload = b64url(Json{{"sub", "admin"}, {"exp", kNow + 600}}.dump());
    const size_t first = token.find('.');
    const size_t second = token.find('.', first + 1);
    const std::string forged = token.substr(0, first + 1) + forged_payload + token.substr(second);
    expect_refused(verifier.verify(forged, kNow), "token signature invalid");
    expect_refused(verifier.verify(flip_char(token, 1, 3), kNow), "token signature invalid");
  }
}

TEST_F(JwtTest, TamperedHeaderIsRefused) {
  for (const auto& [token, verifier] : signed_by_each(kClaims)) {
    const std::string header = b64url(Json{{"alg", verifier.algorithm()}, {"typ", "JWT "}}.dump());
    const std::string forged = header + token.substr(token.find('.'));
    expect_refused(verifier.verify(forged, kNow), "token signature invalid");
  }
}

TEST_F(JwtTest, TamperedSignatureIsRefused) {
  for (const auto& [token, verifier] : signed_by_each(kClaims)) {
    const size_t signature = token.rfind('.') + 1;
    expect_refused(verifier.verify(flip_char(token, 2, 0), kNow), "token signature invalid");
    expect_refused(verifier.verify(flip_char(token, 2, 10), kNow), "token signature invalid");
    // One byte shorter, empty, and one byte longer.
    std::string shorter = from_b64url(token.substr(signature));
    shorter.pop_back();
    expect_refused(verifier.verify(token.substr(0, signature) + b64url(shorter), kNow), "token signature invalid");
    expect_refused(verifier.verify(token.substr(0, signature), kNow), "token signature invalid");
    const std::string longer = from_b64url(token.substr(signature)) + '\0';
    expect_refused(verifier.verify(token.substr(0, signature) + b64url(longer), kNow), "token signature invalid");
  }
}

TEST_F(JwtTest, Es256SignatureInDerFormIsRefused) {
  // Some libraries emit ASN.1 DER (SEQUENCE of two INTEGERs); RFC 7518 §3.4 requires R || S.
  const std::string input = b64url(Json{{"alg", "ES256"}}.dump()) + "." + b64url(kClaims.dump());
  const std::string p1363 = es256(*ec_)(input);
  std::string der(72, '\0');
  const size_t der_size = CryptoPP::DSAConvertSignatureFormat(
      reinterpret_cast<CryptoPP::byte*>(der.data()), der.size(), CryptoPP::DSA_DER,
      reinterpret_cast<const CryptoPP::byte*>(p1363.data()), p1363.size(), CryptoPP::DSA_P1363);
  der.resize(der_size);
  expect_refused(es_verifier().verify(input + "." + b64url(der), kNow), "token signature invalid");
  expect_accepted(es_verifier().verify(input + "." + b64url(p1363), kNow));
}

TEST_F(JwtTest, TokenSignedWithAnotherSecretIsRefused) {
  const auto token = jws("HS256", kClaims, hs256("another secret that is long enough, 32+"));
  expect_refused(hs_verifier().verify(token, kNow), "token signature invalid");
}

TEST_F(JwtTest, TokenSignedWithAnotherRsaKeyIsRefused) {
  expect_refused(rs_verifier().verify(jws("RS256", kClaims, rs256(*other_rsa_)), kNow), "token signature invalid");
}

TEST_F(JwtTest, TokenSignedWithAnotherEcKeyIsRefused) {
  expect_refused(es_verifier().verify(jws("ES256", kClaims, es256(*other_ec_)), kNow), "token signature invalid");
}

// --- Algorithms (RFC 8725 §2.1 and §3.1) ---

TEST_F(JwtTest, AlgNoneIsRefused) {
  // RFC 7519 §6.1 unsecured JWT: empty signature.
  const std::string unsecured = b64url(R"({"alg":"none"})") + "." + b64url(kClaims.dump()) + ".";
  for (const auto& [token, verifier] : signed_by_each(kClaims)) {
    expect_refused(verifier.verify(unsecured, kNow),
                   "token algorithm none not accepted (" + std::string(verifier.algorithm()) + " expected)");
  }
  // And "none" with a signature attached changes nothing.
  const std::string with_signature = jws("none", kClaims, hs256(kSecret));
  expect_refused(hs_verifier().verify(with_signature, kNow), "token algorithm none not accepted (HS256 expected)");
}

TEST_F(JwtTest, Hs256TokenIsRefusedByRs256Verifier) {
  // The classic confusion: HMAC keyed with the public key's PEM text, which anyone has.
  const std::string pem = rsa_pem(*rsa_);
  const auto verifier = pem_verifier(pem);
  expect_refused(verifier.verify(jws("HS256", kClaims, hs256(pem)), kNow),
                 "token algorithm HS256 not accepted (RS256 expected)");
}

TEST_F(JwtTest, Hs256TokenIsRefusedByEs256Verifier) {
  const std::string pem = ec_pem(*ec_);
  expect_refused(pem_verifier(pem).verify(jws("HS256", kClaims, hs256(pem)), kNow),
                 "token algorithm HS256 not accepted (ES256 expected)");
}

TEST_F(JwtTest, Rs256TokenIsRefusedByHs256Verifier) {
  expect_refused(hs_verifier().verify(jws("RS256", kClaims, rs256(*rsa_)), kNow),
                 "token algorithm RS256 not accepted (HS256 expected)");
}

TEST_F(JwtTest, Es256TokenIsRefusedByRs256Verifier) {
  expect_refused(rs_verifier().verify(jws("ES256", kClaims, es256(*ec_)), kNow),
                 "token algorithm ES256 not accepted (RS256 expected)");
}

TEST_F(JwtTest, AlgorithmNameIsMatchedExactly) {
  for (const std::string alg : {"hs256", "HS384", "HS512", "RS256"}) {
    expect_refused(hs_verifier().verify(jws(alg, kClaims, hs256(kSecret)), kNow),
                   "token algorithm " + alg + " not accepted (HS256 expected)");
  }
  // Not echoed: a space is not part of any algorithm name.
  expect_refused(hs_verifier().verify(jws("HS256 ", kClaims, hs256(kSecret)), kNow),
                 "token algorithm not accepted (HS256 expected)");
}

TEST_F(JwtTest, OddAlgorithmNameIsNotEchoed) {
  expect_refused(hs_verifier().verify(jws("<script>", kClaims, hs256(kSecret)), kNow),
                 "token algorithm not accepted (HS256 expected)");
}

TEST_F(JwtTest, MissingOrNonStringAlgIsMalformed) {
  expect_refused(hs_verifier().verify(jws_raw(R"({"typ":"JWT"})", kClaims.dump(), hs256(kSecret)), kNow),
                 "token malformed");
  expect_refused(hs_verifier().verify(jws_raw(R"({"alg":["HS256"]})", kClaims.dump(), hs256(kSecret)), kNow),
                 "token malformed");
}

TEST_F(JwtTest, CriticalHeaderIsRefused) {
  // RFC 7515 §4.1.11; RFC 7797's unencoded payload travels this way.
  const Json header = {{"alg", "HS256"}, {"b64", false}, {"crit", {"b64"}}};
  expect_refused(hs_verifier().verify(jws_raw(header.dump(), kClaims.dump(), hs256(kSecret)), kNow),
                 "token has unsupported critical header");
}

// --- Time (RFC 7519 §4.1.4, §4.1.5) ---

TEST_F(JwtTest, ExpiredTokenIsRefused) {
  for (const auto& [token, verifier] : signed_by_each({{"sub", "user-42"}, {"exp", kNow - 31}})) {
    expect_refused(verifier.verify(token, kNow), "token expired");
  }
}

TEST_F(JwtTest, ExpiredTokenWithinLeewayIsAccepted) {
  const auto token = jws("HS256", {{"sub", "user-42"}, {"exp", kNow - 29}}, hs256(kSecret));
  EXPECT_TRUE(hs_verifier().verify(token, kNow).ok);
  expect_refused(hs_verifier().verify(token, kNow, /*leeway_seconds=*/0), "token expired");
}

TEST_F(JwtTest, TokenIsExpiredAtExactlyExpPlusLeeway) {
  const auto token = jws("HS256", {{"sub", "user-42"}, {"exp", kNow}}, hs256(kSecret));
  EXPECT_TRUE(hs_verifier().verify(token, kNow - 1, 0).ok);
  expect_refused(hs_verifier().verify(token, kNow, 0), "token expired");
  EXPECT_TRUE(hs_verifier().verify(token, kNow + 29, 30).ok);
  expect_refused(hs_verifier().verify(token, kNow + 30, 30), "token expired");
}

TEST_F(JwtTest, FractionalExpIsCompared) {
  const auto token = jws("HS256", {{"sub", "user-42"}, {"exp", kNow + 0.5}}, hs256(kSecret));
  EXPECT_TRUE(hs_verifier().verify(token, kNow, 0).ok);
  expect_refused(hs_verifier().verify(token, kNow + 1, 0), "token expired");
}

TEST_F(JwtTest, NotYetValidTokenIsRefused) {
  for (const auto& [token, verifier] : signed_by_each({{"sub", "user-42"}, {"nbf", kNow + 31}})) {
    expect_refused(verifier.verify(token, kNow), "token not yet valid");
  }
}

TEST_F(JwtTest, NotYetValidTokenWithinLeewayIsAccepted) {
  const auto token = jws("HS256", {{"sub", "user-42"}, {"nbf", kNow + 30}}, hs256(kSecret));
  EXPECT_TRUE(hs_verifier().verify(token, kNow).ok);
  expect_refused(hs_verifier().verify(token, kNow, /*leeway_seconds=*/0), "token not yet valid");
  EXPECT_TRUE(hs_verifier().verify(token, kNow + 30, 0).ok);
}

TEST_F(JwtTest, NonNumericTimesAreRefused) {
  expect_refused(
      hs_verifier().verify(jws("HS256", {{"sub", "user-42"}, {"exp", "2030-01-01"}}, hs256(kSecret)), kNow),
      "token exp invalid");
  expect_refused(hs_verifier().verify(jws("HS256", {{"sub", "user-42"}, {"nbf", true}}, hs256(kSecret)), kNow),
                 "token nbf invalid");
}

TEST_F(JwtTest, HugeExpNeverExpires) {
  const auto token = jws_raw(R"({"alg":"HS256"})", R"({"sub":"user-42","exp":18446744073709551615})", hs256(kSecret));
  EXPECT_TRUE(hs_verifier().verify(token, kNow).ok);
  const auto overflowing = jws_raw(R"({"alg":"HS256"})", R"({"sub":"user-42","exp":1e400})", hs256(kSecret));
  EXPECT_FALSE(hs_verifier().verify(overflowing, kNow).ok);
}

// --- Claims ---

TEST_F(JwtTest, MissingSubIsRefused) {
  for (const auto& [token, verifier] : signed_by_each({{"exp", kNow + 600}})) {
    expect_refused(verifier.verify(token, kNow), "token has no sub");
  }
}

TEST_F(JwtTest, EmptyOrNonStringSubIsRefused) {
  for (const Json& sub : {Json(""), Json(42), Json(nullptr), Json::array({"user-42"})}) {
    expect_refused(hs_verifier().verify(jws("HS256", {{"sub", sub}}, hs256(kSecret)), kNow), "token has no sub");
  }
}

TEST_F(JwtTest, InstancesThatAreNotAnArrayOfStringsAreRefused) {
  for (const Json& instances : {Json("arena-1"), Json::array({"arena-1", 2}), Json::object(), Json(nullptr)}) {
    const Json claims = {{"sub", "user-42"}, {"instances", instances}};
    expect_refused(hs_verifier().verify(jws("HS256", claims, hs256(kSecret)), kNow), "token instances claim invalid");
  }
}

TEST_F(JwtTest, DuplicateClaimIsRefused) {
  const auto token = jws_raw(R"({"alg":"HS256"})", R"({"sub":"user-42","sub":"admin"})", hs256(kSecret));
  expect_refused(hs_verifier().verify(token, kNow), "token malformed");
  const auto header = jws_raw(R"({"alg":"none","alg":"HS256"})", kClaims.dump(), hs256(kSecret));
  expect_refused(hs_verifier().verify(header, kNow), "token malformed");
}

TEST_F(JwtTest, SameNameInNestedObjectsIsNotADuplicate) {
  Json claims = kClaims;
  claims["a"] = {{"sub", 1}};
  claims["b"] = {{"sub", 2}};
  expect_accepted(hs_verifier().verify(jws("HS256", claims, hs256(kSecret)), kNow));
}

TEST_F(JwtTest, AudienceIsRefusedWhenNoneIsRequired) {
  Json claims = kClaims;
  claims["aud"] = "some-other-service";
  expect_refused(hs_verifier().verify(jws("HS256", claims, hs256(kSecret)), kNow), "token audience not accepted");
}

TEST_F(JwtTest, RequiredAudienceMustBeNamed) {
  auto verifier = hs_verifier();
  verifier.require_audience("prism-rooms");
  Json claims = kClaims;
  expect_refused(verifier.verify(jws("HS256", claims, hs256(kSecret)), kNow), "token audience not accepted");
  claims["aud"] = "prism-rooms";
  expect_accepted(verifier.verify(jws("HS256", claims, hs256(kSecret)), kNow));
  claims["aud"] = {"billing", "prism-rooms"};
  expect_accepted(verifier.verify(jws("HS256", claims, hs256(kSecret)), kNow));
  claims["aud"] = {"billing"};
  expect_refused(verifier.verify(jws("HS256", claims, hs256(kSecret)), kNow), "token audience not accepted");
}

// --- Malformed tokens ---

TEST_F(JwtTest, TokenWithoutThreePartsIsMalformed) {
  const auto token = jws("HS256", kClaims, hs256(kSecret));
  const auto verifier = hs_verifier();
  for (const std::string& bad : {std::string(), std::string("."), std::string(".."), std::string("abc"),
                                 token.substr(0, token.rfind('.')), token + ".", token + ".AAAA",
                                 token + ".AAAA.AAAA"}) {
    expect_refused(verifier.verify(bad, kNow), "token malformed");
  }
}

TEST_F(JwtTest, BadBase64urlIsMalformed) {
  const auto token = jws("HS256", kClaims, hs256(kSecret));
  const auto verifier = hs_verifier();
  const size_t dot = token.find('.');
  // A character from the other alphabet, whitespace, padding, a stray byte in each part.
  expect_refused(verifier.verify("+" + token.substr(1), kNow), "token malformed");
  expect_refused(verifier.verify(token.substr(0, dot) + " " + token.substr(dot), kNow), "token malformed");
  expect_refused(verifier.verify(token.substr(0, dot) + "=" + token.substr(dot), kNow), "token malformed");
  expect_refused(verifier.verify(token.substr(0, dot + 1) + "*" + token.substr(dot + 1), kNow), "token malformed");
  expect_refused(verifier.verify(token + "/", kNow), "token malformed");
  expect_refused(verifier.verify(token + "==", kNow), "token malformed");
  // 43 + 2 = 45 characters: one over a whole group is never a valid length (RFC 4648 §5).
  expect_refused(verifier.verify(token + "AA", kNow), "token malformed");
}

TEST_F(JwtTest, NonCanonicalBase64urlIsMalformed) {
  // "QQ" decodes to "A"; "QR" has non-zero unused bits and would decode to the same byte.
  const auto signing_input = b64url(R"({"alg":"HS256"})") + "." + b64url(kClaims.dump());
  const std::string sig = hs256(kSecret)(signing_input);  // 32 bytes: 43 chars, 2 unused bits
  const std::string encoded = b64url(sig);
  std::string twisted = encoded;
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const size_t last = alphabet.find(twisted.back());
  twisted.back() = alphabet[last ^ 1];  // flips one of the two unused bits
  ASSERT_EQ(from_b64url(twisted), sig);
  EXPECT_TRUE(hs_verifier().verify(signing_input + "." + encoded, kNow).ok);
  expect_refused(hs_verifier().verify(signing_input + "." + twisted, kNow), "token malformed");
}

TEST_F(JwtTest, HeaderThatIsNotJsonIsMalformed) {
  expect_refused(hs_verifier().verify(jws_raw("HS256", kClaims.dump(), hs256(kSecret)), kNow), "token malformed");
  expect_refused(hs_verifier().verify(jws_raw(R"({"alg":"HS256")", kClaims.dump(), hs256(kSecret)), kNow),
                 "token malformed");
  expect_refused(hs_verifier().verify(jws_raw(R"(["HS256"])", kClaims.dump(), hs256(kSecret)), kNow),
                 "token malformed");
  // Trailing text after the object, and invalid UTF-8 (RFC 7519 §7.2 step 8).
  expect_refused(hs_verifier().verify(jws_raw(R"({"alg":"HS256"} x)", kClaims.dump(), hs256(kSecret)), kNow),
                 "token malformed");
  expect_refused(hs_verifier().verify(jws_raw("{\"alg\":\"HS256\",\"x\":\"\xff\"}", kClaims.dump(), hs256(kSecret)), kNow),
                 "token malformed");
}

TEST_F(JwtTest, PayloadThatIsNotAnObjectIsMalformed) {
  for (const std::string payload : {R"(["user-42"])", R"("user-42")", "42", "null", "", "{", "{\"sub\":\"\xc3\"}"}) {
    expect_refused(hs_verifier().verify(jws_raw(R"({"alg":"HS256"})", payload, hs256(kSecret)), kNow),
                   "token malformed");
  }
}

TEST_F(JwtTest, TokenLongerThan8KiBIsRefusedBeforeParsing) {
  const auto verifier = hs_verifier();
  expect_refused(verifier.verify(std::string(JwtVerifier::kMaxTokenBytes + 1, 'A'), kNow), "token too long");
  expect_refused(verifier.verify(std::string(JwtVerifier::kMaxTokenBytes + 1, '.'), kNow), "token too long");

  // A signed token just over the limit is refused, one just under accepted.
  Json claims = kClaims;
  claims["pad"] = "";
  const size_t base = jws("HS256", claims, hs256(kSecret)).size();
  const size_t room = (JwtVerifier::kMaxTokenBytes - base) * 3 / 4 - 3;  // padding bytes that still fit
  claims["pad"] = std::string(room, 'x');
  const auto fits = jws("HS256", claims, hs256(kSecret));
  ASSERT_LE(fits.size(), JwtVerifier::kMaxTokenBytes);
  expect_accepted(verifier.verify(fits, kNow));
  claims["pad"] = std::string(room + 12, 'x');
  const auto over = jws("HS256", claims, hs256(kSecret));
  ASSERT_GT(over.size(), JwtVerifier::kMaxTokenBytes);
  expect_refused(verifier.verify(over, kNow), "token too long");
}

// --- Keys ---

TEST(JwtKeyTest, ShortHs256SecretIsRefused) {
  std::string error;
  EXPECT_FALSE(JwtVerifier::hs256(std::string(31, 's'), &error).has_value());
  EXPECT_EQ(error, "HS256 secret must be at least 32 bytes (RFC 7518 §3.2), got 31");
  EXPECT_FALSE(JwtVerifier::hs256("", nullptr).has_value());  // no error sink is fine
  EXPECT_TRUE(JwtVerifier::hs256(std::string(32, 's'), &error).has_value());
}

TEST(JwtKeyTest, SecretWithNulBytesIsUsedAsGiven) {
  const std::string secret = std::string(16, '\0') + std::string(16, 'k');
  const auto token = jws("HS256", kClaims, hs256(secret));
  expect_accepted(hs_verifier(secret).verify(token, kNow));
  expect_refused(hs_verifier(std::string(16, '\0') + std::string(15, 'k') + "j").verify(token, kNow),
                 "token signature invalid");
}

TEST(JwtKeyTest, Rsa1024KeyIsRefused) {
  std::string error;
  EXPECT_FALSE(JwtVerifier::from_public_key_pem(rsa_pem(rsa_key(1024)), &error).has_value());
  EXPECT_EQ(error, "RSA key has 1024 bits; RS256 needs at least 2048 (RFC 7518 §3.3)");
}

TEST(JwtKeyTest, EcKeyOffP256IsRefused) {
  for (const CryptoPP::OID& curve : {CryptoPP::ASN1::secp384r1(), CryptoPP::ASN1::secp256k1()}) {
    for (const bool named : {true, false}) {
      std::string error;
      EXPECT_FALSE(JwtVerifier::from_public_key_pem(ec_pem(ec_key(curve), named), &error).has_value());
      EXPECT_EQ(error, "EC key is not on P-256 (secp256r1); ES256 needs P-256 (RFC 7518 §3.4)");
    }
  }
}

TEST(JwtKeyTest, PrivateKeyPemIsRefused) {
  std::string error;
  const std::string pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
  EXPECT_FALSE(JwtVerifier::from_public_key_pem(pem, &error).has_value());
  EXPECT_EQ(error, "key is a private key; give the public key (openssl pkey -pubout)");
}

TEST(JwtKeyTest, Pkcs1RsaPublicKeyPemIsRefusedWithAHint) {
  const std::string pem =
      "-----BEGIN RSA PUBLIC KEY-----\n"
      "MIIBCgKCAQEArf41eRQutWZ4DJdXsW6qpbb8gQYMUVAMpw4IO0mXrkU94evv/JK+\n"
      "-----END RSA PUBLIC KEY-----\n";
  std::string error;
  EXPECT_FALSE(JwtVerifier::from_public_key_pem(pem, &error).has_value());
  EXPECT_NE(error.find("PKCS#1"), std::string::npos) << error;
}

TEST(JwtKeyTest, BrokenPemIsRefused) {
  const std::string good(kOpenSslEcPem);
  const std::string body_end = "-----END PUBLIC KEY-----";
  std::string error;
  for (const std::string& pem : {
           std::string(),
           std::string("not a key"),
           good.substr(0, good.find(body_end)),                                   // no END line
           std::string("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"),  // empty
           std::string("-----BEGIN PUBLIC KEY-----\nMIIB*CgKCAQEA\n-----END PUBLIC KEY-----\n"),
           std::string("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),  // not DER
           good.substr(0, 60) + good.substr(70),                                        // truncated DER
       }) {
    error.clear();
    EXPECT_FALSE(JwtVerifier::from_public_key_pem(pem, &error).has_value()) << pem;
    EXPECT_FALSE(error.empty()) << pem;
  }
}

TEST(JwtKeyTest, PemWithLeadingTextAndCrlfIsAccepted) {
  std::string pem = "Our rooms signing key\r\n";
  for (const char c : kOpenSslEcPem) {
    if (c == '\n') pem += '\r';
    pem += c;
  }
  const auto verifier = pem_verifier(pem);
  EXPECT_TRUE(verifier.verify(kOpenSslEs256Token, kNow).ok);
}

TEST(JwtKeyTest, Ed25519KeyIsRefused) {
  // RFC 8410 §10.1's example public key.
  const std::string pem =
      "-----BEGIN PUBLIC KEY-----\n"
      "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
      "-----END PUBLIC KEY-----\n";
  std::string error;
  EXPECT_FALSE(JwtVerifier::from_public_key_pem(pem, &error).has_value());
  EXPECT_EQ(error, "key is neither RSA nor EC; rooms.auth takes an RSA (RS256) or EC P-256 (ES256) key");
}

TEST(JwtKeyTest, EcPointOffTheCurveIsRefused) {
  // The OpenSSL P-256 key with the last byte of its point changed: no longer on the curve.
  std::string pem(kOpenSslEcPem);
  const size_t at = pem.find("Sg==");
  pem.replace(at, 4, "Sw==");
  std::string error;
  EXPECT_FALSE(JwtVerifier::from_public_key_pem(pem, &error).has_value());
  EXPECT_FALSE(error.empty());
}

}  // namespace
}  // namespace prism::rooms
