// Writes the seed corpora of the fuzz targets: a few valid datagrams (docs/protocol.md §2)
// for datagram_fuzz and pipeline_fuzz, and their payloads alone (§3.1) for frame_fuzz.
// Usage: make_seeds <dir>  →  <dir>/<target>/<seed>; run by the build, never committed.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "net/datagram.hpp"

namespace {

using prism::net::DatagramHeader;
using prism::v1::Packet;

void add_request(Packet& packet, uint32_t request_id, uint32_t packet_id, std::string payload) {
  auto* m = packet.add_frames()->mutable_message();
  m->set_request_id(request_id);
  m->set_packet_id(packet_id);
  m->set_payload(std::move(payload));
}

// The seeds, named after what they hold. Packet ids from protocol.md §4.
std::vector<std::pair<std::string, Packet>> seeds() {
  std::vector<std::pair<std::string, Packet>> out;

  Packet ping;
  ping.add_frames()->mutable_ping()->set_nonce(0x0102030405060708ull);
  out.emplace_back("ping", ping);

  // The worked example of §5: default.echo (101), request id 1, payload "hello".
  Packet echo;
  add_request(echo, 1, 101, "hello");
  out.emplace_back("echo_request", echo);

  // An echo whose reply does not fit the default 1400-byte limit: answered INTERNAL (§2.3).
  Packet large;
  add_request(large, 2, 101, std::string(1360, 'x'));
  out.emplace_back("echo_reply_too_large", large);

  // Every frame kind coalesced in one datagram (§3.1), including a host request (§4.1)
  // and a reply, which the server must ignore.
  Packet multi;
  add_request(multi, 3, 101, "abc");
  multi.add_frames()->mutable_ping()->set_nonce(9);
  add_request(multi, 4, 2, "");
  auto* reply = multi.add_frames()->mutable_message();
  reply->set_request_id(5);
  reply->set_packet_id(101);
  reply->set_is_reply(true);
  reply->set_status(prism::v1::STATUS_NOT_FOUND);
  reply->set_status_message("gone");
  multi.add_frames()->mutable_pong()->set_nonce(10);
  multi.add_frames()->mutable_close()->set_reason("bye");
  out.emplace_back("multi_frame", multi);
  return out;
}

bool write_file(const std::filesystem::path& path, std::span<const uint8_t> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  DatagramHeader header;
  header.connection_id = 0x0123456789abcdefull;
  std::vector<uint8_t> buffer(prism::net::kMaxDatagramSize);
  for (const auto& [name, packet] : seeds()) {
    header.packet_number++;
    const size_t len = prism::net::encode_datagram(header, packet, buffer);
    if (len == 0) {
      std::fprintf(stderr, "make_seeds: seed %s does not fit in a datagram\n", name.c_str());
      return 1;
    }
    const std::span<const uint8_t> datagram(buffer.data(), len);
    const std::pair<const char*, std::span<const uint8_t>> files[] = {
        {"datagram_fuzz", datagram},
        {"pipeline_fuzz", datagram},
        {"frame_fuzz", datagram.subspan(prism::net::kHeaderSize)},
    };
    for (const auto& [target, bytes] : files) {
      std::filesystem::create_directories(root / target);
      if (!write_file(root / target / name, bytes)) {
        std::fprintf(stderr, "make_seeds: cannot write %s\n", (root / target / name).c_str());
        return 1;
      }
    }
  }
  return 0;
}
