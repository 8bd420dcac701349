// Fuzzes the handshake state machines (docs/protocol.md §5.2-5.3) on both sides. The first
// input byte picks the mode, the rest is its material:
//   0  any datagram → HandshakeServer::check, then accept() when the cookie verified
//   1  any datagram → a fresh HandshakeClient (waiting for RETRY or HANDSHAKE)
//   2  any datagram → a HandshakeClient that already took a RETRY
//   3  an XOR mask over a valid INITIAL with a valid cookie → check, accept
//   4  an XOR mask over a valid INITIAL without a cookie → check
//   5  a ServerHello → the server's accept() → the client (it must parse what it gets)
//   6  an XOR mask over a valid HANDSHAKE → the client that asked for it
//   7  any 48 bytes as Noise message 1 → RETRY, then its INITIAL with the cookie served
//      twice: at most one Diffie-Hellman, the replay refused as cookie_reused
// In a mask mode the mask's length is the datagram's: the valid one is cut or zero-padded
// to it, so a zero mask of the same length replays it unchanged. Nothing may crash or leak,
// answers never amplify, and nothing altered is ever accepted.
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "net/crypto/noise_nk.hpp"
#include "net/datagram.hpp"
#include "net/session/handshake.hpp"
#include "fixed_session.hpp"

namespace {

using namespace prism::net;
using namespace prism::net::session;
using Progress = HandshakeClient::Progress;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool same(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

using prism::fuzz::kAddress;
using prism::fuzz::kClientId;
// A fixed clock: cookies minted during the run verify for all of it.
const std::chrono::system_clock::time_point kNow{std::chrono::seconds(1'700'000'000)};

// The server, and the valid INITIALs the mask modes start from. One server for the run,
// as a worker has: its cookie secret is random, so only INITIALs made here carry one that
// verifies.
struct Fixture {
  Fixture() : key(prism::fuzz::server_key()), server(key), hello(prism::fuzz::server_hello()) {
    HandshakeClient client(key.public_key, kClientId);
    initial_without_cookie = client.initial();
    const auto retry = server.check(client.initial(), kAddress, kNow);
    check(retry.kind == InitialOutcome::Kind::kRetry);
    check(client.on_datagram(retry.reply) == Progress::kRetry);
    initial_with_cookie = client.initial();
  }
  crypto::KeyPair key;
  HandshakeServer server;
  std::vector<uint8_t> initial_without_cookie;
  std::vector<uint8_t> initial_with_cookie;
  prism::v1::ServerHello hello;
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// The valid datagram cut or zero-padded to the mask's length, XORed with the mask.
std::vector<uint8_t> apply_mask(std::span<const uint8_t> valid, std::span<const uint8_t> mask) {
  std::vector<uint8_t> out(mask.begin(), mask.end());
  for (size_t i = 0; i < out.size() && i < valid.size(); ++i) out[i] ^= valid[i];
  return out;
}

// True when `datagram` is `valid` followed only by zeros: the same INITIAL, padded.
bool is_padded_copy(std::span<const uint8_t> datagram, std::span<const uint8_t> valid) {
  if (datagram.size() < valid.size() || !same(datagram.first(valid.size()), valid)) return false;
  const auto tail = datagram.subspan(valid.size());
  return std::all_of(tail.begin(), tail.end(), [](uint8_t b) { return b == 0; });
}

struct Served {
  InitialOutcome::Kind checked = InitialOutcome::Kind::kDrop;  // what check() said
  InitialOutcome::Kind kind = InitialOutcome::Kind::kDrop;     // the last step's outcome
  DropReason reason = DropReason::kNone;
};

// check() and, for a proved INITIAL, accept(), as a worker runs them. Checks what comes
// back and returns the outcome of each step.
Served serve(std::span<const uint8_t> datagram) {
  auto& f = fixture();
  const auto checked = f.server.check(datagram, kAddress, kNow);
  check(checked.reason < DropReason::kCount);
  Served served{.checked = checked.kind, .kind = checked.kind, .reason = checked.reason};
  switch (checked.kind) {
    case InitialOutcome::Kind::kDrop:
      check(checked.reason != DropReason::kNone && checked.reply.empty());
      return served;
    case InitialOutcome::Kind::kRetry: {
      // §5.2: a RETRY of exactly kRetrySize bytes for the same id, smaller than what drew it.
      check(checked.reply.size() == kRetrySize && checked.reply.size() < datagram.size());
      DatagramHeader header;
      std::span<const uint8_t> cookie;
      check(parse_retry(checked.reply, header, cookie) == DropReason::kNone);
      check(header.connection_id == checked.client_id);
      return served;
    }
    case InitialOutcome::Kind::kAccept:
      break;
  }
  const auto accepted = f.server.accept(datagram, f.hello, kNow);
  served.kind = accepted.kind;
  served.reason = accepted.reason;
  if (accepted.kind == InitialOutcome::Kind::kDrop) {
    check((accepted.reason == DropReason::kHandshakeFailed ||
           accepted.reason == DropReason::kCookieReused) &&
          accepted.reply.empty());
    return served;
  }
  check(accepted.kind == InitialOutcome::Kind::kAccept);
  // §5.3: a HANDSHAKE for the same id and ephemeral key, smaller than the INITIAL.
  check(accepted.client_id == checked.client_id);
  check(accepted.client_ephemeral == checked.client_ephemeral);
  check(accepted.reply.size() < datagram.size());
  DatagramHeader header;
  std::span<const uint8_t> noise;
  check(parse_handshake(accepted.reply, header, noise) == DropReason::kNone);
  check(header.connection_id == accepted.client_id);
  return served;
}

// What a client may make of one datagram, given whether it already took a RETRY.
void feed_client(HandshakeClient& client, std::span<const uint8_t> datagram, bool had_cookie) {
  const auto before = client.initial();
  const Progress progress = client.on_datagram(datagram);
  DatagramHeader header;
  std::span<const uint8_t> cookie;
  const bool is_retry = parse_retry(datagram, header, cookie) == DropReason::kNone &&
                        header.connection_id == kClientId;
  switch (progress) {
    case Progress::kRetry: {
      // §5.2: only the first well-formed RETRY for this id; the INITIAL now carries it.
      check(!had_cookie && is_retry);
      InitialView view;
      check(parse_initial(client.initial(), view) == DropReason::kNone);
      check(same(view.cookie, cookie));
      check(view.header.connection_id == kClientId);
      break;
    }
    case Progress::kIgnored:
      check(!is_retry || had_cookie);
      check(same(before, client.initial()));
      break;
    case Progress::kDone:
      // Only the server's own HANDSHAKE authenticates, and no input holds it: the
      // client's ephemeral key is fresh for each input.
      check(false);
      break;
    case Progress::kFailed:
      check(same(before, client.initial()));
      break;
  }
}

// A client that has sent its INITIAL with a cookie, and the server's HANDSHAKE for it.
struct Exchange {
  std::optional<HandshakeClient> client;
  InitialOutcome accepted;
};

Exchange exchange(const prism::v1::ServerHello& hello) {
  auto& f = fixture();
  Exchange e;
  e.client.emplace(f.key.public_key, kClientId);
  check(e.client->on_datagram(f.server.check(e.client->initial(), kAddress, kNow).reply) ==
        Progress::kRetry);
  check(f.server.check(e.client->initial(), kAddress, kNow).kind == InitialOutcome::Kind::kAccept);
  e.accepted = f.server.accept(e.client->initial(), hello, kNow);
  return e;
}

void fuzz_server_hello(std::span<const uint8_t> bytes) {
  prism::v1::ServerHello hello;
  if (!hello.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  auto e = exchange(hello);
  if (e.accepted.kind != InitialOutcome::Kind::kAccept) {
    // §5.3: only a hello too large for a HANDSHAKE is refused.
    check(e.accepted.reason == DropReason::kHandshakeFailed);
    check(hello.ByteSizeLong() > kMaxHandshakeNoiseSize - crypto::kHandshakeOverhead);
    return;
  }
  const Progress progress = e.client->on_datagram(e.accepted.reply);
  if (hello.connection_id() == 0) {
    check(progress == Progress::kFailed);  // §5.3: 0 is never a connection id
    return;
  }
  check(progress == Progress::kDone);
  check(e.client->hello().SerializeAsString() == hello.SerializeAsString());
  const auto& keys = e.client->keys();
  check(keys.initiator_to_responder == e.accepted.keys.initiator_to_responder);
  check(keys.responder_to_initiator == e.accepted.keys.responder_to_initiator);
  check(keys.handshake_hash == e.accepted.keys.handshake_hash);
  // Done is final: the same HANDSHAKE again changes nothing.
  check(e.client->on_datagram(e.accepted.reply) == Progress::kIgnored);
}

void fuzz_handshake_mask(std::span<const uint8_t> mask) {
  auto e = exchange(fixture().hello);
  check(e.accepted.kind == InitialOutcome::Kind::kAccept);
  const auto datagram = apply_mask(e.accepted.reply, mask);
  const Progress progress = e.client->on_datagram(datagram);
  // A HANDSHAKE is exact in length: only the unaltered one completes the handshake.
  check((progress == Progress::kDone) == same(datagram, e.accepted.reply));
  check(progress != Progress::kRetry);
}

// The review's handshake flood: a cookie earned for an INITIAL whose message 1 does not
// decrypt, replayed; each copy cost the server an X25519. Now only the first does.
void fuzz_replayed_garbage(std::span<const uint8_t> material) {
  auto& f = fixture();
  std::array<uint8_t, kInitialNoiseSize> noise{};
  std::copy_n(material.begin(), std::min(material.size(), noise.size()), noise.begin());
  // A fresh client id per input, so each input earns its own cookie.
  static uint64_t client_id = 1;
  ++client_id;
  std::vector<uint8_t> initial(kMinInitialSize);
  check(write_initial(client_id, {}, noise, initial) == kMinInitialSize);
  const auto retry = f.server.check(initial, kAddress, kNow);
  check(retry.kind == InitialOutcome::Kind::kRetry);
  DatagramHeader header;
  std::span<const uint8_t> cookie;
  check(parse_retry(retry.reply, header, cookie) == DropReason::kNone);
  check(write_initial(client_id, cookie, noise, initial) == kMinInitialSize);
  const auto first = serve(initial);
  check(first.checked == InitialOutcome::Kind::kAccept);
  for (int copy = 0; copy < 3; ++copy) {
    const auto again = serve(initial);
    check(again.kind == InitialOutcome::Kind::kDrop && again.reason == DropReason::kCookieReused);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // protobuf logs each string field that is not UTF-8; see datagram_fuzz.cpp.
  google::protobuf::SetLogHandler(nullptr);
  (void)fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > kMaxDatagramSize + 1) return 0;
  const std::span<const uint8_t> rest(data + 1, size - 1);
  auto& f = fixture();
  switch (data[0] % 8) {
    case 0:
      serve(rest);
      break;
    case 1: {
      HandshakeClient client(f.key.public_key, kClientId);
      feed_client(client, rest, false);
      break;
    }
    case 2: {
      HandshakeClient client(f.key.public_key, kClientId);
      check(client.on_datagram(f.server.check(client.initial(), kAddress, kNow).reply) ==
            Progress::kRetry);
      feed_client(client, rest, true);
      break;
    }
    case 3: {
      const auto datagram = apply_mask(f.initial_with_cookie, rest);
      const auto served = serve(datagram);
      // The cookie binds the Noise message: anything altered (zero padding aside) is
      // refused by check(), before any Diffie-Hellman.
      const bool unaltered = is_padded_copy(datagram, f.initial_with_cookie);
      check((served.checked == InitialOutcome::Kind::kAccept) == unaltered);
      // And the unaltered one is accepted once; every copy after it is a replay.
      static bool redeemed = false;
      if (served.kind == InitialOutcome::Kind::kAccept) {
        check(!redeemed);
        redeemed = true;
      } else if (unaltered) {
        check(redeemed && served.reason == DropReason::kCookieReused);
      }
      break;
    }
    case 4: {
      const auto datagram = apply_mask(f.initial_without_cookie, rest);
      const auto served = serve(datagram);
      if (is_padded_copy(datagram, f.initial_without_cookie)) {
        check(served.kind == InitialOutcome::Kind::kRetry);
      }
      break;
    }
    case 7:
      fuzz_replayed_garbage(rest);
      break;
    case 5:
      fuzz_server_hello(rest);
      break;
    case 6:
      fuzz_handshake_mask(rest);
      break;
  }
  return 0;
}
