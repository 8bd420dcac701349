// Packet protection, key update, retry cookies and key files (host/net/crypto, DESIGN.md §3):
// every tamper fails to open, cookies live one to two buckets and survive a secret rotation,
// key files refuse loose permissions and never overwrite.
#include <gtest/gtest.h>

#include <cryptopp/aes.h>
#include <cryptopp/gcm.h>
#include <cryptopp/hkdf.h>
#include <cryptopp/sha.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <array>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "net/crypto/ephemeral_pool.hpp"
#include "net/crypto/key_file.hpp"
#include "net/crypto/noise_nk.hpp"
#include "net/crypto/packet_protection.hpp"
#include "net/crypto/retry_cookie.hpp"
#include "net/datagram.hpp"

namespace prism::net::crypto {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes bytes(std::string_view text) { return Bytes(text.begin(), text.end()); }

Key32 key_with(uint8_t fill) {
  Key32 key;
  key.fill(fill);
  return key;
}

Bytes header_for(uint64_t packet_number) {
  DatagramHeader header;
  header.connection_id = 0xfeedfacecafebeef;
  header.packet_number = packet_number;
  Bytes out(kHeaderSize);
  write_header(header, out);
  return out;
}

struct Sealed {
  Bytes header;
  Bytes packet;  // ciphertext || tag
};

Sealed seal(const Key32& key, uint64_t pn, const Bytes& plaintext) {
  PacketSealer sealer(key);
  Sealed s{header_for(pn), Bytes(plaintext.size() + kPacketTagSize)};
  EXPECT_EQ(sealer.seal(pn, s.header, plaintext, s.packet), s.packet.size());
  return s;
}

// ---- Packet protection ---------------------------------------------------------------

// The pool's pairs are real X25519 pairs (the public key is the private key's), each
// handed out once; drained three times over, it refills on its own thread; destroyed, its
// thread is joined.
TEST(CryptoEphemeralPool, HandsOutDistinctValidPairsAndRefillsWhenDrained) {
  std::set<Key32> publics;
  {
    EphemeralPool pool;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (publics.size() < 3 * EphemeralPool::kCapacity &&
           std::chrono::steady_clock::now() < deadline) {
      auto pair = pool.take();
      if (!pair) {
        std::this_thread::yield();  // the producer is refilling
        continue;
      }
      auto again = KeyPair::from_private(pair->private_key);
      ASSERT_TRUE(again.ok());
      EXPECT_EQ(again->public_key, pair->public_key);
      EXPECT_TRUE(publics.insert(pair->public_key).second) << "a pair was handed out twice";
    }
  }
  EXPECT_EQ(publics.size(), 3 * EphemeralPool::kCapacity);
}

// A full pool's producer sleeps until a take leaves kRefillAt pairs, and is woken then to
// fill the pool again: one wake-up (a futex call on the worker and a context switch on the
// producer) per half a pool, not per handshake. A wake-up lost at the mark would leave the
// pool half empty, and the next wait_full fails.
TEST(CryptoEphemeralPool, AFullPoolWakesItsProducerOnceHalfIsTaken) {
  EphemeralPool pool;
  const auto wait_full = [&pool] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (pool.ready() < EphemeralPool::kCapacity && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    return pool.ready() == EphemeralPool::kCapacity;
  };
  constexpr int kRounds = 3;
  int takes = 0;
  for (int round = 0; round < kRounds; ++round) {
    ASSERT_TRUE(wait_full()) << "the producer did not refill the pool before round " << round;
    while (pool.ready() > EphemeralPool::kRefillAt) {
      ASSERT_TRUE(pool.take());
      ++takes;
    }
  }
  ASSERT_TRUE(wait_full()) << "the producer was not woken at the mark";
  EXPECT_GE(takes, kRounds * static_cast<int>(EphemeralPool::kCapacity - EphemeralPool::kRefillAt));
  // One per round, or two where the producer, not yet asleep when the pool was full, added
  // a pair at the mark and the next take passed it again.
  EXPECT_GE(pool.wakeups(), 1u);
  EXPECT_LE(pool.wakeups(), 2u * kRounds);
}

TEST(CryptoPacket, SealedPacketOpensWithSameKeyAndHeader) {
  const Key32 key = key_with(0x42);
  const Bytes plaintext = bytes("a MESSAGE frame");
  const Sealed s = seal(key, 77, plaintext);
  EXPECT_NE(Bytes(s.packet.begin(), s.packet.begin() + plaintext.size()), plaintext);
  PacketOpener opener(key);
  Bytes out(s.packet.size());
  auto n = opener.open(77, s.header, s.packet, out);
  ASSERT_TRUE(n.ok()) << n.error();
  out.resize(*n);
  EXPECT_EQ(out, plaintext);
}

TEST(CryptoPacket, TamperedHeaderFailsOpen) {
  const Key32 key = key_with(1);
  const Bytes plaintext = bytes("payload");
  const Sealed s = seal(key, 5, plaintext);
  PacketOpener opener(key);
  for (size_t i = 0; i < s.header.size(); ++i) {
    Bytes header = s.header;
    header[i] ^= 0x04;
    Bytes out(s.packet.size(), 0xee);
    auto n = opener.open(5, header, s.packet, out);
    ASSERT_FALSE(n.ok()) << "header byte " << i;
    EXPECT_EQ(n.error(), "open: bad tag");
    // No unauthenticated plaintext is left behind.
    EXPECT_NE(Bytes(out.begin(), out.begin() + plaintext.size()), plaintext);
  }
}

TEST(CryptoPacket, TamperedCiphertextFailsOpen) {
  const Key32 key = key_with(2);
  const Sealed s = seal(key, 6, bytes("payload"));
  PacketOpener opener(key);
  for (size_t i = 0; i < s.packet.size(); ++i) {  // ciphertext and tag bytes
    Bytes packet = s.packet;
    packet[i] ^= 0x01;
    Bytes out(packet.size());
    EXPECT_FALSE(opener.open(6, s.header, packet, out).ok()) << "packet byte " << i;
  }
  Bytes out(s.packet.size());
  EXPECT_FALSE(opener.open(6, s.header, Bytes(s.packet.begin(), s.packet.end() - 1), out).ok());
  EXPECT_EQ(opener.open(6, s.header, Bytes(15), out).error(), "open: truncated");
  // The untouched packet still opens: failures leave the opener usable.
  EXPECT_TRUE(opener.open(6, s.header, s.packet, out).ok());
}

TEST(CryptoPacket, WrongPacketNumberFailsOpen) {
  const Key32 key = key_with(3);
  const Sealed s = seal(key, 1000, bytes("payload"));
  PacketOpener opener(key);
  Bytes out(s.packet.size());
  EXPECT_FALSE(opener.open(1001, s.header, s.packet, out).ok());
  EXPECT_FALSE(opener.open(999, s.header, s.packet, out).ok());
  EXPECT_FALSE(opener.open(1000 + (uint64_t{1} << 32), s.header, s.packet, out).ok());
  EXPECT_TRUE(opener.open(1000, s.header, s.packet, out).ok());
}

TEST(CryptoPacket, OtherDirectionKeyFailsOpen) {
  const Sealed s = seal(key_with(4), 1, bytes("payload"));
  PacketOpener opener(key_with(5));
  Bytes out(s.packet.size());
  EXPECT_FALSE(opener.open(1, s.header, s.packet, out).ok());
}

TEST(CryptoPacket, NonceIsFourZeroBytesThenBigEndianPacketNumber) {
  const Key32 key = key_with(6);
  const uint64_t pn = 0x0102030405060708;
  const Bytes plaintext = bytes("nonce layout");
  const Sealed s = seal(key, pn, plaintext);

  // The same packet sealed by Crypto++ directly with the nonce spelled out.
  const std::array<uint8_t, 12> nonce = {0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
  CryptoPP::GCM<CryptoPP::AES>::Encryption gcm;
  gcm.SetKeyWithIV(key.data(), key.size(), nonce.data(), nonce.size());
  Bytes expected(plaintext.size() + kPacketTagSize);
  gcm.EncryptAndAuthenticate(expected.data(), expected.data() + plaintext.size(), kPacketTagSize,
                             nonce.data(), nonce.size(), s.header.data(), s.header.size(),
                             plaintext.data(), plaintext.size());
  EXPECT_EQ(s.packet, expected);
}

TEST(CryptoPacket, SealRefusesShortOutput) {
  PacketSealer sealer(key_with(7));
  const Bytes plaintext = bytes("twelve bytes");
  Bytes out(plaintext.size() + kPacketTagSize - 1);
  EXPECT_EQ(sealer.seal(1, header_for(1), plaintext, out), 0u);
  PacketOpener opener(key_with(7));
  const Sealed s = seal(key_with(7), 1, plaintext);
  Bytes small(plaintext.size() - 1);
  EXPECT_EQ(opener.open(1, s.header, s.packet, small).error(), "open: no room");
}

TEST(CryptoPacket, SealsAndOpensInPlace) {
  const Key32 key = key_with(8);
  const Bytes plaintext = bytes("in place, as pooled buffers do");
  const Bytes header = header_for(9);
  Bytes buffer(plaintext.size() + kPacketTagSize);
  std::copy(plaintext.begin(), plaintext.end(), buffer.begin());
  PacketSealer sealer(key);
  ASSERT_EQ(sealer.seal(9, header, std::span(buffer).first(plaintext.size()), buffer),
            buffer.size());
  EXPECT_EQ(buffer, seal(key, 9, plaintext).packet);
  PacketOpener opener(key);
  auto n = opener.open(9, header, buffer, buffer);
  ASSERT_TRUE(n.ok()) << n.error();
  EXPECT_EQ(Bytes(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(*n)), plaintext);
}

TEST(CryptoPacket, KeyUpdateChangesKeyDeterministically) {
  const Key32 key = key_with(9);
  const Key32 next = next_key(key);
  EXPECT_EQ(next_key(key), next);  // both sides derive the same key on their own
  EXPECT_NE(next, key);
  EXPECT_NE(next_key(next), next);
  EXPECT_NE(next_key(key_with(10)), next);

  // Defined as the first 32 bytes of the Noise HKDF (= RFC 5869 with salt = key, empty
  // info) over "prism key update"; checked against Crypto++'s HKDF.
  const Bytes label = bytes("prism key update");
  std::array<uint8_t, 32> expected;
  CryptoPP::HKDF<CryptoPP::SHA256>().DeriveKey(expected.data(), expected.size(), label.data(),
                                               label.size(), key.data(), key.size(), nullptr, 0);
  EXPECT_EQ(next, expected);

  // A packet sealed after the update does not open under the old key.
  const Sealed s = seal(next, 1, bytes("after update"));
  PacketOpener old_opener(key);
  PacketOpener new_opener(next);
  Bytes out(s.packet.size());
  EXPECT_FALSE(old_opener.open(1, s.header, s.packet, out).ok());
  EXPECT_TRUE(new_opener.open(1, s.header, s.packet, out).ok());
}

// ---- Retry cookies -------------------------------------------------------------------

using std::chrono::seconds;
using TimePoint = RetryCookies::time_point;

// A moment `offset_seconds` into a 10-second bucket.
TimePoint at_bucket(uint64_t bucket, int offset_seconds = 3) {
  return TimePoint(seconds(static_cast<int64_t>(bucket) * 10 + offset_seconds));
}
// Well inside a rotation epoch (64 buckets), so only the rotation test crosses one.
constexpr uint64_t kBucket = 64 * 1000 + 10;

const Bytes kAddress = {192, 0, 2, 1, 0x1f, 0x90};  // 192.0.2.1:8080
const Bytes kOtherAddress = {192, 0, 2, 2, 0x1f, 0x90};
constexpr uint64_t kConnection = 0x0123456789abcdef;
const Bytes kMessage1(48, 0x33);  // the INITIAL's Noise message 1 the cookie answers

TEST(CryptoCookie, CookieVerifiesForSameAddressAndConnection) {
  RetryCookies cookies;
  const auto cookie = cookies.mint(kAddress, kConnection, kMessage1, at_bucket(kBucket));
  EXPECT_TRUE(cookies.verify(cookie, kAddress, kConnection, kMessage1, at_bucket(kBucket, 9)));
  EXPECT_TRUE(cookies.verify(cookie, kAddress, kConnection, kMessage1, at_bucket(kBucket + 1, 9)));
}

TEST(CryptoCookie, CookieFromAnotherAddressIsRejected) {
  RetryCookies cookies;
  const auto now = at_bucket(kBucket);
  const auto cookie = cookies.mint(kAddress, kConnection, kMessage1, now);
  EXPECT_FALSE(cookies.verify(cookie, kOtherAddress, kConnection, kMessage1, now));
  EXPECT_FALSE(cookies.verify(cookie, kAddress, kConnection + 1, kMessage1, now));
  EXPECT_TRUE(cookies.verify(cookie, kAddress, kConnection, kMessage1, now));
}

TEST(CryptoCookie, CookieBesideAnotherNoiseMessageIsRejected) {
  RetryCookies cookies;
  const auto now = at_bucket(kBucket);
  const auto cookie = cookies.mint(kAddress, kConnection, kMessage1, now);
  Bytes other = kMessage1;
  other[47] ^= 1;  // the tag: garbage the server would only find out about after an X25519
  EXPECT_FALSE(cookies.verify(cookie, kAddress, kConnection, other, now));
  other = kMessage1;
  other[0] ^= 1;  // the ephemeral key
  EXPECT_FALSE(cookies.verify(cookie, kAddress, kConnection, other, now));
}

TEST(CryptoCookie, CookieIsRedeemedOnceWhileItCanVerify) {
  RetryCookies cookies;
  const auto cookie = cookies.mint(kAddress, kConnection, kMessage1, at_bucket(kBucket));
  const auto other = cookies.mint(kOtherAddress, kConnection, kMessage1, at_bucket(kBucket));
  EXPECT_TRUE(cookies.redeem(cookie, at_bucket(kBucket)));
  EXPECT_FALSE(cookies.redeem(cookie, at_bucket(kBucket, 9)));
  EXPECT_FALSE(cookies.redeem(cookie, at_bucket(kBucket + 1, 9)));  // its record outlives it
  EXPECT_TRUE(cookies.redeem(other, at_bucket(kBucket + 1)));
  // Buckets move on: the record of bucket kBucket is reused, and the old cookie cannot
  // verify any more anyway.
  const auto later = cookies.mint(kAddress, kConnection, kMessage1, at_bucket(kBucket + 2));
  EXPECT_TRUE(cookies.redeem(later, at_bucket(kBucket + 2)));
  EXPECT_FALSE(cookies.redeem(cookie, at_bucket(kBucket + 2)));
}

TEST(CryptoCookie, RedeemRefusesWhenTheBucketsRecordIsFull) {
  RetryCookies cookies(seconds(10), 2);
  const auto now = at_bucket(kBucket);
  EXPECT_TRUE(cookies.redeem(cookies.mint(kAddress, 1, kMessage1, now), now));
  EXPECT_TRUE(cookies.redeem(cookies.mint(kAddress, 2, kMessage1, now), now));
  EXPECT_FALSE(cookies.redeem(cookies.mint(kAddress, 3, kMessage1, now), now));
}

TEST(CryptoCookie, OldCookieIsRejected) {
  RetryCookies cookies;
  const auto cookie = cookies.mint(kAddress, kConnection, kMessage1, at_bucket(kBucket, 9));
  // Two intervals later (bucket + 2), even a second after the last valid moment.
  EXPECT_FALSE(cookies.verify(cookie, kAddress, kConnection, kMessage1, at_bucket(kBucket + 2, 0)));
  // A cookie from the future is no better.
  EXPECT_FALSE(cookies.verify(cookie, kAddress, kConnection, kMessage1, at_bucket(kBucket - 1)));
}

TEST(CryptoCookie, CookieWithEditedBucketIsRejected) {
  RetryCookies cookies;
  auto cookie = cookies.mint(kAddress, kConnection, kMessage1, at_bucket(kBucket));
  cookie[7] ^= 1;  // claims bucket + 1, which would extend its life
  EXPECT_FALSE(cookies.verify(cookie, kAddress, kConnection, kMessage1, at_bucket(kBucket + 1)));
  cookie[7] ^= 1;
  cookie[23] ^= 1;  // a MAC byte
  EXPECT_FALSE(cookies.verify(cookie, kAddress, kConnection, kMessage1, at_bucket(kBucket)));
}

TEST(CryptoCookie, CookieFromAnotherServerIsRejected) {
  RetryCookies ours;
  RetryCookies theirs;  // another random secret
  const auto now = at_bucket(kBucket);
  const auto cookie = theirs.mint(kAddress, kConnection, kMessage1, now);
  EXPECT_FALSE(ours.verify(cookie, kAddress, kConnection, kMessage1, now));
}

TEST(CryptoCookie, CookieSurvivesSecretRotation) {
  RetryCookies cookies;
  const uint64_t last_of_epoch = 64 * 1001 - 1;
  const auto cookie = cookies.mint(kAddress, kConnection, kMessage1, at_bucket(last_of_epoch, 9));
  EXPECT_EQ(cookies.rotations(), 0u);
  EXPECT_TRUE(cookies.verify(cookie, kAddress, kConnection, kMessage1, at_bucket(last_of_epoch + 1)));
  EXPECT_EQ(cookies.rotations(), 1u);  // the secret did rotate under it
  // Cookies minted after the rotation use the new secret and verify as well.
  const auto fresh = cookies.mint(kAddress, kConnection, kMessage1, at_bucket(last_of_epoch + 1));
  EXPECT_TRUE(cookies.verify(fresh, kAddress, kConnection, kMessage1, at_bucket(last_of_epoch + 2)));
  EXPECT_FALSE(cookies.verify(cookie, kAddress, kConnection, kMessage1, at_bucket(last_of_epoch + 2)));
}

// ---- Key files -----------------------------------------------------------------------

class KeyFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = (std::filesystem::temp_directory_path() / "prism-key-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    dir_ = dir;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::string read(const std::filesystem::path& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void write(const std::filesystem::path& path, const std::string& text, mode_t mode) {
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
  }
  static mode_t mode_of(const std::filesystem::path& path) {
    struct stat st;
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
    return st.st_mode & 07777;
  }

  std::filesystem::path dir_;
};

TEST_F(KeyFile, WrittenKeyPairLoadsBackWithOwnerOnlyPrivateKey) {
  const KeyPair pair = KeyPair::generate();
  const auto priv = dir_ / "server.key";
  const auto pub = dir_ / "server.pub";
  auto written = write_key_pair(priv, pub, pair);
  ASSERT_TRUE(written.ok()) << written.error();
  EXPECT_EQ(mode_of(priv), 0600u);
  EXPECT_EQ(mode_of(pub), 0644u);
  EXPECT_EQ(read(pub), encode_public_key(pair.public_key) + "\n");
  EXPECT_EQ(read(priv).size(), 65u);
  auto loaded = load_private_key(priv);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(loaded->private_key, pair.private_key);
  EXPECT_EQ(loaded->public_key, pair.public_key);
  // No temporary files are left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 2);
}

TEST_F(KeyFile, PrivateKeyReadableByOthersIsRefusedWithChmodHint) {
  const auto priv = dir_ / "server.key";
  ASSERT_TRUE(write_key_pair(priv, dir_ / "server.pub", KeyPair::generate()).ok());
  ASSERT_EQ(::chmod(priv.c_str(), 0644), 0);
  auto loaded = load_private_key(priv);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().find("chmod 600"), std::string::npos) << loaded.error();
  EXPECT_NE(loaded.error().find(priv.string()), std::string::npos) << loaded.error();
  EXPECT_NE(loaded.error().find("0644"), std::string::npos) << loaded.error();

  ASSERT_EQ(::chmod(priv.c_str(), 0640), 0);  // group-readable is refused too
  EXPECT_FALSE(load_private_key(priv).ok());
  ASSERT_EQ(::chmod(priv.c_str(), 0600), 0);
  EXPECT_TRUE(load_private_key(priv).ok());
}

// The review: key and token files were accepted whatever their owner, and in a state
// directory anyone could write (and so swap the key for their own).
TEST_F(KeyFile, KeyOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file away";
  const auto priv = dir_ / "server.key";
  ASSERT_TRUE(write_key_pair(priv, dir_ / "server.pub", KeyPair::generate()).ok());
  ASSERT_EQ(::chown(priv.c_str(), 65534, 65534), 0);  // nobody
  auto loaded = load_private_key(priv);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().find("owned by uid 65534"), std::string::npos) << loaded.error();
  ASSERT_EQ(::chown(priv.c_str(), 0, 0), 0);
  EXPECT_TRUE(load_private_key(priv).ok());
}

TEST_F(KeyFile, KeyInADirectoryOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a directory away";
  const auto priv = dir_ / "server.key";
  ASSERT_TRUE(write_key_pair(priv, dir_ / "server.pub", KeyPair::generate()).ok());
  ASSERT_EQ(::chown(dir_.c_str(), 65534, 65534), 0);  // nobody
  auto loaded = load_private_key(priv);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().find("the directory is owned by uid 65534"), std::string::npos)
      << loaded.error();
  ASSERT_EQ(::chown(dir_.c_str(), 0, 0), 0);
  EXPECT_TRUE(load_private_key(priv).ok());
}

TEST_F(KeyFile, KeyInADirectoryOthersCanWriteIsRefused) {
  const auto priv = dir_ / "server.key";
  ASSERT_TRUE(write_key_pair(priv, dir_ / "server.pub", KeyPair::generate()).ok());
  for (const mode_t mode : {01777, 0770, 0757}) {
    ASSERT_EQ(::chmod(dir_.c_str(), mode), 0);
    auto loaded = load_private_key(priv);
    ASSERT_FALSE(loaded.ok()) << std::oct << mode;
    EXPECT_NE(loaded.error().find("so others can replace the files in it"), std::string::npos)
        << loaded.error();
    auto server = load_or_create_server_key(dir_);
    EXPECT_FALSE(server.ok()) << std::oct << mode;
  }
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  EXPECT_TRUE(load_private_key(priv).ok());
}

TEST_F(KeyFile, StateDirectoryIsCreatedPrivateAndAnOpenOneIsRefused) {
  const auto state = dir_ / "var" / "state";
  auto created = load_or_create_server_key(state);
  ASSERT_TRUE(created.ok()) << created.error();
  EXPECT_TRUE(created->created);
  EXPECT_EQ(mode_of(state), 0700u);
  auto token = load_or_create_admin_token(dir_ / "etc" / "admin.token");
  ASSERT_TRUE(token.ok()) << token.error();
  EXPECT_EQ(mode_of(dir_ / "etc"), 0700u);

  const auto open = dir_ / "open";
  std::filesystem::create_directory(open);
  ASSERT_EQ(::chmod(open.c_str(), 0777), 0);
  auto refused = load_or_create_server_key(open);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("mode 0777"), std::string::npos) << refused.error();
  EXPECT_FALSE(std::filesystem::exists(open / "server.key")) << "nothing is written there";
  EXPECT_FALSE(load_or_create_admin_token(open / "admin.token").ok());
}

TEST_F(KeyFile, WriteKeyPairNeverOverwrites) {
  const auto priv = dir_ / "server.key";
  const auto pub = dir_ / "server.pub";
  write(priv, "keep me\n", 0600);
  auto written = write_key_pair(priv, pub, KeyPair::generate());
  ASSERT_FALSE(written.ok());
  EXPECT_NE(written.error().find("already exists"), std::string::npos) << written.error();
  EXPECT_EQ(read(priv), "keep me\n");
  EXPECT_FALSE(std::filesystem::exists(pub));

  std::filesystem::remove(priv);
  write(pub, "keep me too\n", 0644);
  written = write_key_pair(priv, pub, KeyPair::generate());
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(read(pub), "keep me too\n");
  EXPECT_FALSE(std::filesystem::exists(priv));
}

TEST_F(KeyFile, MalformedPrivateKeyFileIsRejected) {
  const auto priv = dir_ / "bad.key";
  const std::string hex64(64, 'a');
  write(priv, hex64.substr(0, 63) + "\n", 0600);
  auto loaded = load_private_key(priv);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().find(priv.string()), std::string::npos) << loaded.error();

  write(priv, hex64.substr(0, 10) + "g" + hex64.substr(11), 0600);
  loaded = load_private_key(priv);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().find("offset 10"), std::string::npos) << loaded.error();

  write(priv, hex64 + "\n\n", 0600);
  EXPECT_FALSE(load_private_key(priv).ok());
  write(priv, hex64, 0600);  // the newline is optional
  EXPECT_TRUE(load_private_key(priv).ok());
  EXPECT_FALSE(load_private_key(dir_ / "missing.key").ok());
}

TEST(KeyText, PublicKeyRoundTrips) {
  const KeyPair pair = KeyPair::generate();
  const std::string text = encode_public_key(pair.public_key);
  ASSERT_EQ(text.size(), 7u + 64u);
  EXPECT_EQ(text.substr(0, 7), "prism1:");
  EXPECT_EQ(text.find_first_not_of("0123456789abcdef", 7), std::string::npos);
  auto decoded = decode_public_key(text);
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_EQ(*decoded, pair.public_key);

  std::string upper = text;
  for (size_t i = 7; i < upper.size(); ++i) upper[i] = static_cast<char>(std::toupper(upper[i]));
  auto decoded_upper = decode_public_key(upper);
  ASSERT_TRUE(decoded_upper.ok());
  EXPECT_EQ(*decoded_upper, pair.public_key);
}

TEST(KeyText, MalformedPublicKeyErrors) {
  const std::string good = encode_public_key(KeyPair::generate().public_key);
  const std::string hex = good.substr(7);

  auto no_prefix = decode_public_key(hex);
  ASSERT_FALSE(no_prefix.ok());
  EXPECT_NE(no_prefix.error().find("prism1:"), std::string::npos) << no_prefix.error();

  auto too_short = decode_public_key(good.substr(0, good.size() - 2));
  ASSERT_FALSE(too_short.ok());
  EXPECT_NE(too_short.error().find("got 62"), std::string::npos) << too_short.error();

  std::string bad_char = good;
  bad_char[20] = 'z';
  auto non_hex = decode_public_key(bad_char);
  ASSERT_FALSE(non_hex.ok());
  EXPECT_NE(non_hex.error().find("position 20"), std::string::npos) << non_hex.error();

  auto zero = decode_public_key("prism1:" + std::string(64, '0'));
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.error().find("low-order"), std::string::npos) << zero.error();

  EXPECT_FALSE(decode_public_key("").ok());
  EXPECT_FALSE(decode_public_key(good + "\n").ok());
}

}  // namespace
}  // namespace prism::net::crypto
