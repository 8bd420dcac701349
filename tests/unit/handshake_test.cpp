// The Noise NK handshake (host/net/crypto/noise_nk.hpp, DESIGN.md §3): matching keys on both
// sides, refusal of every tampered, misaddressed or low-order message, the official
// cacophony test vector, and the Noise HKDF against RFC 5869.
#include <gtest/gtest.h>

#include <cryptopp/hkdf.h>
#include <cryptopp/sha.h>

#include <array>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "net/crypto/noise_nk.hpp"
#include "net/crypto/packet_protection.hpp"
#include "net/datagram.hpp"

namespace prism::net::crypto {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes from_hex(std::string_view hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

Key32 key_from_hex(std::string_view hex) {
  const Bytes bytes = from_hex(hex);
  Key32 key{};
  std::copy(bytes.begin(), bytes.end(), key.begin());
  return key;
}

Bytes bytes(std::string_view text) { return Bytes(text.begin(), text.end()); }

// The cleartext header the transport will pass as prologue.
Bytes header_prologue(uint64_t connection_id, uint64_t packet_number) {
  DatagramHeader header;
  header.connection_id = connection_id;
  header.packet_number = packet_number;
  Bytes out(kHeaderSize);
  write_header(header, out);
  return out;
}

struct Handshake {
  SessionKeys initiator;
  SessionKeys responder;
  Bytes payload_at_responder;
  Bytes payload_at_initiator;
};

Handshake run_handshake(const KeyPair& server, std::span<const uint8_t> prologue) {
  NkInitiator initiator(server.public_key, prologue);
  NkResponder responder(server, prologue);
  Handshake result;
  auto m1 = responder.read_message1(initiator.write_message1(bytes("hello server")));
  EXPECT_TRUE(m1.ok()) << m1.error();
  result.payload_at_responder = *m1;
  auto m2 = initiator.read_message2(responder.write_message2(bytes("welcome client")));
  EXPECT_TRUE(m2.ok()) << m2.error();
  result.payload_at_initiator = *m2;
  result.initiator = initiator.split();
  result.responder = responder.split();
  return result;
}

TEST(Handshake, HandshakeDerivesMatchingKeys) {
  const KeyPair server = KeyPair::generate();
  const Bytes prologue = header_prologue(0x1122334455667788, 0);
  const Handshake h = run_handshake(server, prologue);

  EXPECT_EQ(h.payload_at_responder, bytes("hello server"));
  EXPECT_EQ(h.payload_at_initiator, bytes("welcome client"));
  EXPECT_EQ(h.initiator.initiator_to_responder, h.responder.initiator_to_responder);
  EXPECT_EQ(h.initiator.responder_to_initiator, h.responder.responder_to_initiator);
  EXPECT_EQ(h.initiator.handshake_hash, h.responder.handshake_hash);
  // One key per direction, so a packet number never repeats a nonce under one key.
  EXPECT_NE(h.initiator.initiator_to_responder, h.initiator.responder_to_initiator);
  EXPECT_NE(h.initiator.initiator_to_responder, Key32{});
}

TEST(Handshake, MessagesAreEphemeralKeyThenSealedPayload) {
  const KeyPair server = KeyPair::generate();
  const Bytes prologue = header_prologue(1, 0);
  NkInitiator initiator(server.public_key, prologue);
  NkResponder responder(server, prologue);
  const Bytes m1 = initiator.write_message1(bytes("abc"));
  EXPECT_EQ(m1.size(), kDhLen + 3 + kAeadTagSize);
  ASSERT_TRUE(responder.read_message1(m1).ok());
  const Bytes m2 = responder.write_message2({});
  EXPECT_EQ(m2.size(), kDhLen + kAeadTagSize);
  auto payload = initiator.read_message2(m2);
  ASSERT_TRUE(payload.ok()) << payload.error();
  EXPECT_TRUE(payload->empty());
}

TEST(Handshake, EachHandshakeDerivesFreshKeys) {
  const KeyPair server = KeyPair::generate();
  const Bytes prologue = header_prologue(7, 0);
  const Handshake a = run_handshake(server, prologue);
  const Handshake b = run_handshake(server, prologue);
  EXPECT_NE(a.initiator.initiator_to_responder, b.initiator.initiator_to_responder);
  EXPECT_NE(a.initiator.handshake_hash, b.initiator.handshake_hash);
}

TEST(Handshake, WrongServerKeyFailsHandshake) {
  const KeyPair server = KeyPair::generate();
  const KeyPair impostor = KeyPair::generate();
  const Bytes prologue = header_prologue(9, 0);
  NkInitiator initiator(impostor.public_key, prologue);  // client pinned another key
  NkResponder responder(server, prologue);
  auto m1 = responder.read_message1(initiator.write_message1(bytes("secret login")));
  ASSERT_FALSE(m1.ok());
  EXPECT_NE(m1.error().find("another server key"), std::string::npos) << m1.error();
  EXPECT_THROW(responder.write_message2({}), std::logic_error);
  EXPECT_THROW(responder.split(), std::logic_error);
}

TEST(Handshake, TamperedMessage1IsRejected) {
  const KeyPair server = KeyPair::generate();
  const Bytes prologue = header_prologue(10, 0);
  NkInitiator initiator(server.public_key, prologue);
  const Bytes m1 = initiator.write_message1(bytes("login"));
  {
    NkResponder untouched(server, prologue);
    ASSERT_TRUE(untouched.read_message1(m1).ok());
  }
  // Every byte matters: the ephemeral key (hashed and used in DH), ciphertext and tag.
  for (size_t i = 0; i < m1.size(); ++i) {
    Bytes tampered = m1;
    tampered[i] ^= 0x80;
    NkResponder responder(server, prologue);
    EXPECT_FALSE(responder.read_message1(tampered).ok()) << "byte " << i;
  }
  Bytes truncated(m1.begin(), m1.end() - 1);
  NkResponder responder(server, prologue);
  EXPECT_FALSE(responder.read_message1(truncated).ok());
  NkResponder short_reader(server, prologue);
  EXPECT_FALSE(short_reader.read_message1(Bytes(m1.begin(), m1.begin() + 40)).ok());
}

TEST(Handshake, TamperedMessage2IsRejected) {
  const KeyPair server = KeyPair::generate();
  const KeyPair client_e = KeyPair::generate();
  const KeyPair server_e = KeyPair::generate();
  const Bytes prologue = header_prologue(11, 0);
  // Fixed ephemerals make message 2 identical across runs, so each byte can be flipped.
  auto message2 = [&](NkInitiator& initiator) {
    NkResponder responder(server, prologue, server_e);
    EXPECT_TRUE(responder.read_message1(initiator.write_message1(bytes("hi"))).ok());
    return responder.write_message2(bytes("session ticket"));
  };
  Bytes m2;
  {
    NkInitiator initiator(server.public_key, prologue, client_e);
    m2 = message2(initiator);
    ASSERT_TRUE(initiator.read_message2(m2).ok());
  }
  for (size_t i = 0; i < m2.size(); ++i) {
    NkInitiator initiator(server.public_key, prologue, client_e);
    EXPECT_EQ(message2(initiator), m2);
    Bytes tampered = m2;
    tampered[i] ^= 0x01;
    EXPECT_FALSE(initiator.read_message2(tampered).ok()) << "byte " << i;
    EXPECT_THROW(initiator.split(), std::logic_error) << "byte " << i;
    // A failed handshake stays failed: the genuine message no longer completes it.
    EXPECT_FALSE(initiator.read_message2(m2).ok());
  }
}

TEST(Handshake, DifferentPrologueFailsHandshake) {
  const KeyPair server = KeyPair::generate();
  NkInitiator initiator(server.public_key, header_prologue(12, 0));
  NkResponder responder(server, header_prologue(12, 1));  // packet number edited in transit
  auto m1 = responder.read_message1(initiator.write_message1(bytes("hi")));
  EXPECT_FALSE(m1.ok());
}

TEST(Handshake, LowOrderEphemeralKeysAreRefused) {
  const KeyPair server = KeyPair::generate();
  const Bytes prologue = header_prologue(13, 0);
  // All zeros, and u = 1 (a point of small order): both make DH predictable.
  const std::array<std::string_view, 2> low_order = {
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0100000000000000000000000000000000000000000000000000000000000000"};
  for (auto hex : low_order) {
    Bytes message = from_hex(hex);
    message.resize(kHandshakeOverhead, 0xab);
    NkResponder responder(server, prologue);
    auto m1 = responder.read_message1(message);
    ASSERT_FALSE(m1.ok());
    EXPECT_NE(m1.error().find("low-order"), std::string::npos) << m1.error();

    NkInitiator initiator(server.public_key, prologue);
    (void)initiator.write_message1({});
    auto m2 = initiator.read_message2(message);
    ASSERT_FALSE(m2.ok());
    EXPECT_NE(m2.error().find("low-order"), std::string::npos) << m2.error();
  }
  EXPECT_TRUE(is_low_order_public_key(Key32{}));
  EXPECT_FALSE(is_low_order_public_key(server.public_key));
  EXPECT_THROW(NkInitiator(Key32{}, prologue), std::invalid_argument);
}

TEST(Handshake, OutOfOrderCallsAreRefused) {
  const KeyPair server = KeyPair::generate();
  const Bytes prologue = header_prologue(14, 0);
  NkInitiator initiator(server.public_key, prologue);
  EXPECT_FALSE(initiator.read_message2(Bytes(64, 1)).ok());  // before message 1
  EXPECT_THROW(initiator.split(), std::logic_error);
  NkResponder responder(server, prologue);
  EXPECT_THROW(responder.write_message2({}), std::logic_error);
  const Bytes m1 = initiator.write_message1({});
  EXPECT_THROW(initiator.write_message1({}), std::logic_error);
  ASSERT_TRUE(responder.read_message1(m1).ok());
  EXPECT_FALSE(responder.read_message1(m1).ok());  // a second message 1
}

TEST(Handshake, KeyPairFromPrivateDerivesPublicKey) {
  const KeyPair generated = KeyPair::generate();
  auto again = KeyPair::from_private(generated.private_key);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->public_key, generated.public_key);
  EXPECT_FALSE(KeyPair::from_private(Bytes(31, 1)).ok());
}

// The cacophony vector for Noise_NK_25519_AESGCM_SHA256 (github.com/haskell-cryptography/
// cacophony, vectors/cacophony.txt; the snow and noise-c projects check against the same
// file). Messages 0-1 are the handshake; 2-5 are transport messages, alternating
// initiator->responder and responder->initiator, each direction's nonce counting from 0,
// with empty associated data: exactly PacketSealer with packet numbers 0 and 1.
TEST(Handshake, NoiseTestVectorCacophonyNk25519AesGcmSha256) {
  const Bytes prologue = from_hex("4a6f686e2047616c74");  // "John Galt"
  auto init_e = KeyPair::from_private(
      from_hex("893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a"));
  auto resp_s = KeyPair::from_private(
      from_hex("4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893"));
  auto resp_e = KeyPair::from_private(
      from_hex("bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b"));
  ASSERT_TRUE(init_e.ok() && resp_s.ok() && resp_e.ok());
  const Key32 init_remote_static =
      key_from_hex("31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62");
  EXPECT_EQ(resp_s->public_key, init_remote_static);

  NkInitiator initiator(init_remote_static, prologue, *init_e);
  NkResponder responder(*resp_s, prologue, *resp_e);

  const Bytes m0 = initiator.write_message1(from_hex("4c756477696720766f6e204d69736573"));
  EXPECT_EQ(m0, from_hex("ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
                         "75ab4d66d222457dd414bc5f296bc7b4078cc7d72af5192628b68bca7d28844b"));
  auto p0 = responder.read_message1(m0);
  ASSERT_TRUE(p0.ok()) << p0.error();
  EXPECT_EQ(*p0, from_hex("4c756477696720766f6e204d69736573"));

  const Bytes m1 = responder.write_message2(from_hex("4d757272617920526f746862617264"));
  EXPECT_EQ(m1, from_hex("95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843"
                         "03c7d89310502baa8299520ba451624c3c0492e2698f8d457c32400b91fd8a"));
  auto p1 = initiator.read_message2(m1);
  ASSERT_TRUE(p1.ok()) << p1.error();
  EXPECT_EQ(*p1, from_hex("4d757272617920526f746862617264"));

  const SessionKeys keys = initiator.split();
  EXPECT_EQ(keys.initiator_to_responder, responder.split().initiator_to_responder);
  PacketSealer to_responder(keys.initiator_to_responder);
  PacketSealer to_initiator(keys.responder_to_initiator);
  PacketOpener at_responder(keys.initiator_to_responder);
  struct Transport {
    PacketSealer& sealer;
    uint64_t nonce;
    const char* payload;
    const char* ciphertext;
  };
  const Transport transport[] = {
      {to_responder, 0, "462e20412e20486179656b",
       "304f70c37c93573099228016d54cb15213af94eb598d1b17df1153"},
      {to_initiator, 0, "4361726c204d656e676572",
       "a1bf6c954529f29b31d8ae9f67d2c18dbd332aa1a0918690c6d80b"},
      {to_responder, 1, "4a65616e2d426170746973746520536179",
       "2e8f3e51888360b2b2d83a64dde9943c7dd3c5e84ac7c4b4e2d5cfc025b6c854d3"},
      {to_initiator, 1, "457567656e2042f6686d20766f6e2042617765726b",
       "8498bf41212a8b87c9eeb408274c75b3558fd0530865b5a7932d4b3af812d85b3df27e6f33"},
  };
  for (const auto& t : transport) {
    const Bytes payload = from_hex(t.payload);
    Bytes sealed(payload.size() + kPacketTagSize);
    ASSERT_EQ(t.sealer.seal(t.nonce, {}, payload, sealed), sealed.size());
    EXPECT_EQ(sealed, from_hex(t.ciphertext)) << t.payload;
  }
  const Bytes sealed = from_hex(transport[2].ciphertext);
  Bytes opened(sealed.size());
  auto n = at_responder.open(1, {}, sealed, opened);
  ASSERT_TRUE(n.ok()) << n.error();
  opened.resize(*n);
  EXPECT_EQ(opened, from_hex(transport[2].payload));
}

// Noise's HKDF (§4.3) is RFC 5869 HKDF with salt = chaining key and empty info. RFC 5869
// test case 3 has exactly that shape (salt absent = 32 zero bytes, info empty), so its
// OKM must be output1 || the first 10 bytes of output2.
TEST(Handshake, NoiseHkdfMatchesRfc5869TestCase3) {
  const Bytes ikm(22, 0x0b);
  const auto [out1, out2] = noise_hkdf(Key32{}, ikm);
  const Bytes okm = from_hex(
      "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
  EXPECT_EQ(Bytes(out1.begin(), out1.end()), Bytes(okm.begin(), okm.begin() + 32));
  EXPECT_EQ(Bytes(out2.begin(), out2.begin() + 10), Bytes(okm.begin() + 32, okm.end()));
}

// And for any chaining key it agrees with Crypto++'s own RFC 5869 implementation.
TEST(Handshake, NoiseHkdfAgreesWithCryptoppHkdf) {
  const Key32 chaining_key = KeyPair::generate().public_key;
  const Bytes ikm = bytes("input key material of some length");
  const auto [out1, out2] = noise_hkdf(chaining_key, ikm);
  std::array<uint8_t, 64> expected;
  CryptoPP::HKDF<CryptoPP::SHA256>().DeriveKey(expected.data(), expected.size(), ikm.data(),
                                               ikm.size(), chaining_key.data(),
                                               chaining_key.size(), nullptr, 0);
  EXPECT_TRUE(std::equal(out1.begin(), out1.end(), expected.begin()));
  EXPECT_TRUE(std::equal(out2.begin(), out2.end(), expected.begin() + 32));
}

}  // namespace
}  // namespace prism::net::crypto
