// Noise_NK_25519_AESGCM_SHA256 (Noise Protocol Framework rev. 34): CipherState (§5.1),
// SymmetricState (§5.2), the NK message processing of §5.3 / §7.5, and the §4.3 HKDF.
// Every primitive is Crypto++'s: x25519, GCM<AES>, SHA256, HMAC<SHA256>.
#include "net/crypto/noise_nk.hpp"

#include "base/byte_order.hpp"
#include "net/crypto/secure_random.hpp"

#include <cryptopp/aes.h>
#include <cryptopp/cryptlib.h>
#include <cryptopp/gcm.h>
#include <cryptopp/hmac.h>
#include <cryptopp/misc.h>
#include <cryptopp/osrng.h>
#include <cryptopp/sha.h>
#include <cryptopp/xed25519.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>

namespace prism::net::crypto {

std::array<uint8_t, kNonceSize> aesgcm_nonce(uint64_t counter) {
  std::array<uint8_t, kNonceSize> nonce{};
  store_be64(nonce.data() + 4, counter);
  return nonce;
}

namespace {

void wipe(Key32& key) { CryptoPP::SecureWipeArray(key.data(), key.size()); }


// Noise §4.1 DH() with the §12.1 25519 functions. Refuses low-order peer keys and, as the
// last word, any all-zero shared secret (Noise §12.1 lets implementations reject it; a
// zero secret would make every key after it predictable).
bool dh(const Key32& private_key, const Key32& public_key, Key32& shared) {
  if (is_low_order_public_key(public_key)) return false;
  CryptoPP::x25519 x25519;
  Key32 scalar = private_key;
  x25519.ClampKey(scalar.data());  // RFC 7748 §5 decodeScalar25519
  const bool agreed = x25519.Agree(shared.data(), scalar.data(), public_key.data(), true);
  wipe(scalar);
  uint8_t any_bit = 0;
  for (uint8_t b : shared) any_bit |= b;
  if (!agreed || any_bit == 0) {
    wipe(shared);
    return false;
  }
  return true;
}

}  // namespace

KeyPair KeyPair::generate() {
  CryptoPP::AutoSeededRandomPool rng;
  CryptoPP::x25519 x25519;
  KeyPair pair;
  x25519.GeneratePrivateKey(rng, pair.private_key.data());  // already clamped
  x25519.GeneratePublicKey(rng, pair.private_key.data(), pair.public_key.data());
  return pair;
}

KeyPair KeyPair::generate(SecureRandom& random) {
  CryptoPP::x25519 x25519;
  KeyPair pair;
  x25519.GeneratePrivateKey(random.engine(), pair.private_key.data());  // already clamped
  x25519.GeneratePublicKey(random.engine(), pair.private_key.data(), pair.public_key.data());
  return pair;
}

Expected<KeyPair> KeyPair::from_private(std::span<const uint8_t> private_key) {
  if (private_key.size() != 32) {
    return make_error("X25519 private key must be 32 bytes, got " +
                      std::to_string(private_key.size()));
  }
  KeyPair pair;
  std::copy(private_key.begin(), private_key.end(), pair.private_key.begin());
  CryptoPP::x25519 x25519;
  Key32 scalar = pair.private_key;
  x25519.ClampKey(scalar.data());
  x25519.GeneratePublicKey(CryptoPP::NullRNG(), scalar.data(), pair.public_key.data());
  wipe(scalar);
  return pair;
}

bool is_low_order_public_key(const Key32& public_key) {
  uint8_t any_bit = 0;
  for (uint8_t b : public_key) any_bit |= b;
  return any_bit == 0 || CryptoPP::x25519().IsSmallOrder(public_key.data());
}

std::pair<Key32, Key32> noise_hkdf(std::span<const uint8_t> chaining_key,
                                   std::span<const uint8_t> input_key_material) {
  Key32 temp_key;
  CryptoPP::HMAC<CryptoPP::SHA256> extract(chaining_key.data(), chaining_key.size());
  extract.Update(input_key_material.data(), input_key_material.size());
  extract.Final(temp_key.data());

  std::pair<Key32, Key32> out;
  const uint8_t one = 0x01;
  const uint8_t two = 0x02;
  CryptoPP::HMAC<CryptoPP::SHA256> expand(temp_key.data(), temp_key.size());
  expand.Update(&one, 1);
  expand.Final(out.first.data());  // Final() resets the HMAC to the same key
  expand.Update(out.first.data(), out.first.size());
  expand.Update(&two, 1);
  expand.Final(out.second.data());
  wipe(temp_key);
  return out;
}

namespace detail {

// ---- Noise §5.1 CipherState ----------------------------------------------------------

void CipherState::initialize_key(const Key32& key) {
  k_ = key;
  n_ = 0;
  has_key_ = true;
}

void CipherState::encrypt_with_ad(std::span<const uint8_t> ad,
                                  std::span<const uint8_t> plaintext,
                                  std::vector<uint8_t>& out) {
  const size_t start = out.size();
  if (!has_key_) {
    out.insert(out.end(), plaintext.begin(), plaintext.end());
    return;
  }
  // §5.1: the nonce 2^64-1 is reserved; a handshake uses nonce 0 of each key only.
  if (n_ == std::numeric_limits<uint64_t>::max()) {
    throw std::logic_error("Noise CipherState nonce exhausted");
  }
  const auto nonce = aesgcm_nonce(n_);
  CryptoPP::GCM<CryptoPP::AES>::Encryption gcm;
  gcm.SetKeyWithIV(k_.data(), k_.size(), nonce.data(), nonce.size());
  out.resize(start + plaintext.size() + kAeadTagSize);
  gcm.EncryptAndAuthenticate(out.data() + start, out.data() + start + plaintext.size(),
                             kAeadTagSize, nonce.data(), nonce.size(), ad.data(), ad.size(),
                             plaintext.data(), plaintext.size());
  ++n_;
}

bool CipherState::decrypt_with_ad(std::span<const uint8_t> ad,
                                  std::span<const uint8_t> ciphertext,
                                  std::vector<uint8_t>& out) {
  const size_t start = out.size();
  if (!has_key_) {
    out.insert(out.end(), ciphertext.begin(), ciphertext.end());
    return true;
  }
  if (ciphertext.size() < kAeadTagSize || n_ == std::numeric_limits<uint64_t>::max()) {
    return false;
  }
  const size_t plaintext_size = ciphertext.size() - kAeadTagSize;
  const auto nonce = aesgcm_nonce(n_);
  CryptoPP::GCM<CryptoPP::AES>::Decryption gcm;
  gcm.SetKeyWithIV(k_.data(), k_.size(), nonce.data(), nonce.size());
  out.resize(start + plaintext_size);
  const bool authentic = gcm.DecryptAndVerify(
      out.data() + start, ciphertext.data() + plaintext_size, kAeadTagSize, nonce.data(),
      nonce.size(), ad.data(), ad.size(), ciphertext.data(), plaintext_size);
  if (!authentic) {
    // Never hand out unauthenticated plaintext; §5.1: n is not incremented on failure.
    CryptoPP::SecureWipeArray(out.data() + start, plaintext_size);
    out.resize(start);
    return false;
  }
  ++n_;
  return true;
}

void CipherState::wipe() {
  crypto::wipe(k_);
  n_ = 0;
  has_key_ = false;
}

// ---- Noise §5.2 SymmetricState -------------------------------------------------------

SymmetricState::SymmetricState(std::string_view protocol_name) {
  // InitializeSymmetric: a name of at most HASHLEN bytes is zero-padded, a longer one hashed.
  if (protocol_name.size() <= kHashLen) {
    std::copy(protocol_name.begin(), protocol_name.end(), h_.begin());
  } else {
    CryptoPP::SHA256().CalculateDigest(
        h_.data(), reinterpret_cast<const uint8_t*>(protocol_name.data()), protocol_name.size());
  }
  ck_ = h_;
}

void SymmetricState::mix_key(std::span<const uint8_t> input_key_material) {
  auto [chaining_key, temp_k] = noise_hkdf(ck_, input_key_material);
  ck_ = chaining_key;
  cipher_.initialize_key(temp_k);  // HASHLEN is 32: no truncation needed
  crypto::wipe(chaining_key);
  crypto::wipe(temp_k);
}

void SymmetricState::mix_hash(std::span<const uint8_t> data) {
  CryptoPP::SHA256 sha;
  sha.Update(h_.data(), h_.size());
  sha.Update(data.data(), data.size());
  sha.Final(h_.data());
}

void SymmetricState::encrypt_and_hash(std::span<const uint8_t> plaintext,
                                      std::vector<uint8_t>& out) {
  const size_t start = out.size();
  cipher_.encrypt_with_ad(h_, plaintext, out);
  mix_hash(std::span<const uint8_t>(out).subspan(start));
}

bool SymmetricState::decrypt_and_hash(std::span<const uint8_t> ciphertext,
                                      std::vector<uint8_t>& out) {
  if (!cipher_.decrypt_with_ad(h_, ciphertext, out)) return false;
  mix_hash(ciphertext);
  return true;
}

SessionKeys SymmetricState::split() {
  SessionKeys keys;
  std::tie(keys.initiator_to_responder, keys.responder_to_initiator) =
      noise_hkdf(ck_, std::span<const uint8_t>());
  keys.handshake_hash = h_;
  crypto::wipe(ck_);
  cipher_.wipe();
  return keys;
}

void SymmetricState::wipe() {
  crypto::wipe(ck_);
  crypto::wipe(h_);
  cipher_.wipe();
}

}  // namespace detail

namespace {

void check_payload_size(std::span<const uint8_t> payload) {
  if (payload.size() > kMaxHandshakePayload) {
    throw std::length_error("Noise handshake payload of " + std::to_string(payload.size()) +
                            " bytes exceeds " + std::to_string(kMaxHandshakePayload));
  }
}

// Checks shared by both read_message*: Noise §3 bounds, and room for e plus a tag.
Expected<Key32> read_remote_ephemeral(std::span<const uint8_t> message, const char* which) {
  if (message.size() < kHandshakeOverhead || message.size() > kMaxNoiseMessage) {
    return make_error(std::string("Noise handshake ") + which + " is " +
                      std::to_string(message.size()) + " bytes; expected " +
                      std::to_string(kHandshakeOverhead) + " to " +
                      std::to_string(kMaxNoiseMessage));
  }
  Key32 re;
  std::copy_n(message.begin(), kDhLen, re.begin());
  return re;
}

}  // namespace

// ---- Initiator (Noise §5.3 with pattern NK, §7.5) ------------------------------------

NkInitiator::NkInitiator(const Key32& server_public, std::span<const uint8_t> prologue)
    : NkInitiator(server_public, prologue, KeyPair::generate()) {}

NkInitiator::NkInitiator(const Key32& server_public, std::span<const uint8_t> prologue,
                         const KeyPair& fixed_ephemeral)
    : symmetric_(kNoiseProtocolName), remote_static_(server_public), ephemeral_(fixed_ephemeral) {
  if (is_low_order_public_key(server_public)) {
    throw std::invalid_argument("Noise NK: the server public key is a low-order X25519 point");
  }
  symmetric_.mix_hash(prologue);       // §6
  symmetric_.mix_hash(remote_static_);  // §7.1: the pre-message "<- s"
}

NkInitiator::~NkInitiator() {
  symmetric_.wipe();
  wipe(ephemeral_.private_key);
}

std::vector<uint8_t> NkInitiator::write_message1(std::span<const uint8_t> payload) {
  if (stage_ != Stage::kStart) throw std::logic_error("NkInitiator: message 1 already written");
  check_payload_size(payload);
  std::vector<uint8_t> out;
  out.reserve(kHandshakeOverhead + payload.size());
  // "e"
  out.insert(out.end(), ephemeral_.public_key.begin(), ephemeral_.public_key.end());
  symmetric_.mix_hash(ephemeral_.public_key);
  // "es"
  Key32 shared;
  if (!dh(ephemeral_.private_key, remote_static_, shared)) {
    stage_ = Stage::kFailed;
    throw std::logic_error("NkInitiator: DH(e, rs) gave a zero secret");
  }
  symmetric_.mix_key(shared);
  wipe(shared);
  symmetric_.encrypt_and_hash(payload, out);
  stage_ = Stage::kSentMessage1;
  return out;
}

Expected<std::vector<uint8_t>> NkInitiator::read_message2(std::span<const uint8_t> message) {
  if (stage_ != Stage::kSentMessage1) {
    return make_error("Noise NK initiator: message 2 arrived before message 1 was written, "
                      "after the handshake finished, or after it failed");
  }
  stage_ = Stage::kFailed;  // until proven otherwise: the state is consumed either way
  auto re = read_remote_ephemeral(message, "message 2");
  if (!re) return make_error(re.error());
  // "e"
  symmetric_.mix_hash(*re);
  // "ee"
  Key32 shared;
  if (!dh(ephemeral_.private_key, *re, shared)) {
    return make_error("Noise handshake message 2 carries a low-order ephemeral key");
  }
  symmetric_.mix_key(shared);
  wipe(shared);
  std::vector<uint8_t> payload;
  if (!symmetric_.decrypt_and_hash(message.subspan(kDhLen), payload)) {
    return make_error("Noise handshake message 2 failed authentication "
                      "(tampered, or the header used as prologue differs)");
  }
  keys_ = symmetric_.split();
  wipe(ephemeral_.private_key);
  stage_ = Stage::kDone;
  return payload;
}

SessionKeys NkInitiator::split() const {
  if (stage_ != Stage::kDone) throw std::logic_error("NkInitiator: handshake not finished");
  return keys_;
}

// ---- Responder -----------------------------------------------------------------------

NkResponder::NkResponder(const KeyPair& server_static, std::span<const uint8_t> prologue)
    : symmetric_(kNoiseProtocolName), static_(server_static) {
  symmetric_.mix_hash(prologue);              // §6
  symmetric_.mix_hash(static_.public_key);   // §7.1: the pre-message "<- s"
}

NkResponder::NkResponder(const KeyPair& server_static, std::span<const uint8_t> prologue,
                         const KeyPair& fixed_ephemeral)
    : NkResponder(server_static, prologue) {
  ephemeral_ = fixed_ephemeral;
  has_fixed_ephemeral_ = true;
}

NkResponder::~NkResponder() {
  symmetric_.wipe();
  wipe(static_.private_key);
  wipe(ephemeral_.private_key);
}

Expected<std::vector<uint8_t>> NkResponder::read_message1(std::span<const uint8_t> message) {
  if (stage_ != Stage::kStart) {
    return make_error("Noise NK responder: message 1 already read, or the handshake failed");
  }
  stage_ = Stage::kFailed;
  auto re = read_remote_ephemeral(message, "message 1");
  if (!re) return make_error(re.error());
  remote_ephemeral_ = *re;
  // "e"
  symmetric_.mix_hash(remote_ephemeral_);
  // "es": the responder's side is DH(s, re)
  Key32 shared;
  if (!dh(static_.private_key, remote_ephemeral_, shared)) {
    return make_error("Noise handshake message 1 carries a low-order ephemeral key");
  }
  symmetric_.mix_key(shared);
  wipe(shared);
  std::vector<uint8_t> payload;
  if (!symmetric_.decrypt_and_hash(message.subspan(kDhLen), payload)) {
    return make_error("Noise handshake message 1 failed authentication (encrypted to "
                      "another server key, tampered, or the header used as prologue differs)");
  }
  stage_ = Stage::kReadMessage1;
  return payload;
}

std::vector<uint8_t> NkResponder::write_message2(std::span<const uint8_t> payload) {
  if (stage_ != Stage::kReadMessage1) {
    throw std::logic_error("NkResponder: message 2 needs a successfully read message 1");
  }
  check_payload_size(payload);
  if (!has_fixed_ephemeral_) ephemeral_ = KeyPair::generate();
  return write_message2_with_ephemeral(payload);
}

std::vector<uint8_t> NkResponder::write_message2(std::span<const uint8_t> payload,
                                                 const KeyPair& ephemeral) {
  if (stage_ != Stage::kReadMessage1) {
    throw std::logic_error("NkResponder: message 2 needs a successfully read message 1");
  }
  check_payload_size(payload);
  ephemeral_ = ephemeral;
  return write_message2_with_ephemeral(payload);
}

std::vector<uint8_t> NkResponder::write_message2_with_ephemeral(std::span<const uint8_t> payload) {
  std::vector<uint8_t> out;
  out.reserve(kHandshakeOverhead + payload.size());
  // "e"
  out.insert(out.end(), ephemeral_.public_key.begin(), ephemeral_.public_key.end());
  symmetric_.mix_hash(ephemeral_.public_key);
  // "ee"
  Key32 shared;
  if (!dh(ephemeral_.private_key, remote_ephemeral_, shared)) {
    stage_ = Stage::kFailed;
    throw std::logic_error("NkResponder: DH(e, re) gave a zero secret");
  }
  symmetric_.mix_key(shared);
  wipe(shared);
  symmetric_.encrypt_and_hash(payload, out);
  keys_ = symmetric_.split();
  wipe(ephemeral_.private_key);
  stage_ = Stage::kDone;
  return out;
}

SessionKeys NkResponder::split() const {
  if (stage_ != Stage::kDone) throw std::logic_error("NkResponder: handshake not finished");
  return keys_;
}

}  // namespace prism::net::crypto
