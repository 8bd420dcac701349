// Peer addresses as the transports see them.
#include "net/transport.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace prism::net {

std::string PeerAddress::to_string() const {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "unknown";
}

size_t PeerAddress::key_bytes(std::span<uint8_t, kMaxKeyBytes> out) const {
  const std::string host = host_key();
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) port = reinterpret_cast<const sockaddr_in*>(&addr)->sin_port;
  if (addr.ss_family == AF_INET6) port = reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port;
  std::memcpy(out.data(), host.data(), host.size());
  std::memcpy(out.data() + host.size(), &port, sizeof port);
  return host.size() + sizeof port;
}

std::string PeerAddress::host_key() const {
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    return std::string(reinterpret_cast<const char*>(&a->sin_addr), sizeof a->sin_addr);
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    return std::string(reinterpret_cast<const char*>(&a->sin6_addr), sizeof a->sin6_addr);
  }
  return {};
}

uint64_t PeerAddress::source_key() const {
  constexpr uint64_t kIpv4 = 0xffffffff00000000;
  if (addr.ss_family == AF_INET) {
    return kIpv4 | ntohl(reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr.s_addr);
  }
  if (addr.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr;
    uint64_t key = 0;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      for (size_t i = 12; i < 16; ++i) key = key << 8 | a.s6_addr[i];
      return kIpv4 | key;
    }
    for (size_t i = 0; i < 8; ++i) key = key << 8 | a.s6_addr[i];
    return key;
  }
  return 0;
}

bool PeerAddress::same_as(const PeerAddress& other) const {
  if (addr.ss_family != other.addr.ss_family) return false;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    const auto* b = reinterpret_cast<const sockaddr_in*>(&other.addr);
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    const auto* b = reinterpret_cast<const sockaddr_in6*>(&other.addr);
    return a->sin6_port == b->sin6_port &&
           std::memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
  }
  return false;
}

}  // namespace prism::net
