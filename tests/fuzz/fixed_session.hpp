// The fixed parties of the handshake and session fuzz targets (docs/protocol.md §5.2-5.3),
// shared with make_seeds so that its seeds name the same client id, connection id and hello.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "net/crypto/noise_nk.hpp"
#include "prism/v1/frames.pb.h"

namespace prism::fuzz {

inline constexpr uint64_t kClientId = 0x1111;
inline constexpr uint64_t kConnectionId = 0xABCDEF;
// The client's address and port as PeerAddress::key_bytes() gives them (127.0.0.1:7777).
inline constexpr std::array<uint8_t, 6> kAddress = {127, 0, 0, 1, 0x1e, 0x61};

// A fixed server key: runs differ only in the clients' ephemeral keys and the cookie secret.
inline net::crypto::KeyPair server_key() {
  std::array<uint8_t, 32> private_key{};
  for (size_t i = 0; i < private_key.size(); ++i) private_key[i] = static_cast<uint8_t>(i + 1);
  auto pair = net::crypto::KeyPair::from_private(private_key);
  if (!pair) __builtin_trap();
  return *pair;
}

// What the server tells the client in its HANDSHAKE (§5.3).
inline v1::ServerHello server_hello() {
  v1::ServerHello hello;
  hello.set_connection_id(kConnectionId);
  hello.set_idle_timeout_ms(30000);
  hello.set_max_message_size(1 << 20);
  return hello;
}

}  // namespace prism::fuzz
