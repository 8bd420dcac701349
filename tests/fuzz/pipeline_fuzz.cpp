// Fuzzes DatagramPipeline::on_datagram, what a worker does with each datagram it
// receives, behind a handler that answers every request at once (an echo plugin).
// Checked after every input (docs/protocol.md §2.4, §3.1, §3.3): bad input is never
// answered; good input gets exactly one reply per request and one pong per ping, each
// a well-formed datagram within the limit, addressed with the request's connection id.
#include <google/protobuf/stubs/logging.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "net/datagram.hpp"
#include "net/pipeline.hpp"

namespace {

using namespace prism::net;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// Captures what the pipeline would send (as tests/unit/codec_test.cpp does).
struct CaptureOutbox final : Outbox {
  std::vector<uint8_t> buffer = std::vector<uint8_t>(kMaxDatagramSize);
  std::vector<std::vector<uint8_t>> sent;
  std::span<uint8_t> next_buffer() override { return buffer; }
  void commit(const PeerAddress&, size_t len) override {
    sent.emplace_back(buffer.begin(), buffer.begin() + static_cast<long>(len));
  }
};

// Answers every request through the pipeline, with its own payload, as a plugin would.
struct EchoHandler final : RequestHandler {
  ReplyTransport* transport = nullptr;
  int requests = 0;
  void on_request(const RequestOrigin& origin, const prism::v1::Message& m) override {
    ++requests;
    transport->send_reply(origin, m.request_id(), m.packet_id(), prism::v1::STATUS_OK, "",
                          {reinterpret_cast<const uint8_t*>(m.payload().data()),
                           m.payload().size()});
  }
};

// One worker's pipeline at a given server.max_datagram. It lives for the whole run, as a
// worker's does, so state left behind by one datagram meets the next.
struct Worker {
  explicit Worker(size_t max) : max_datagram(max), pipeline(outbox, max) {
    handler.transport = &pipeline;
    pipeline.set_handler(&handler);
  }
  size_t max_datagram;
  CaptureOutbox outbox;
  EchoHandler handler;
  DatagramPipeline pipeline;
};

// §2.3: the smallest setting, the default, and the absolute limit.
constexpr std::array<size_t, 3> kLimits = {576, 1400, kMaxDatagramSize};

void run(Worker& w, std::span<const uint8_t> datagram) {
  w.outbox.sent.clear();
  w.handler.requests = 0;
  w.pipeline.on_datagram(datagram, PeerAddress{});

  // What the pipeline should have made of it, decided independently.
  DatagramHeader header;
  prism::v1::Packet packet;
  if (decode_datagram(datagram, w.max_datagram, header, packet) != DropReason::kNone) {
    // §2.4: nothing malformed is ever answered, and nothing reaches a plugin.
    check(w.outbox.sent.empty());
    check(w.handler.requests == 0);
    return;
  }
  int requests = 0;
  int pings = 0;
  for (const auto& frame : packet.frames()) {
    if (frame.has_message() && !frame.message().is_reply()) ++requests;
    if (frame.has_ping()) ++pings;
  }
  // §3.1, §3.3: each request is handed up once and answered once, each ping once.
  check(w.handler.requests == requests);
  check(w.outbox.sent.size() == static_cast<size_t>(requests + pings));
  for (const auto& reply : w.outbox.sent) {
    DatagramHeader rh;
    prism::v1::Packet rp;
    // §2.3: never larger than the limit; and never larger than what arrived by more
    // than a reply's own framing (tests/unit/codec_test.cpp, no amplification per reply).
    check(reply.size() <= w.max_datagram);
    check(reply.size() <= datagram.size() + 4);
    check(decode_datagram(reply, w.max_datagram, rh, rp) == DropReason::kNone);
    check(rh.connection_id == header.connection_id);
    check(rp.frames_size() == 1);
    const auto& f = rp.frames(0);
    check(f.has_pong() || (f.has_message() && f.message().is_reply()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // protobuf logs each string field that is not UTF-8; see datagram_fuzz.cpp.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxDatagramSize) return 0;  // §2.3: no UDP datagram is larger
  static std::array<std::unique_ptr<Worker>, kLimits.size()> workers = [] {
    std::array<std::unique_ptr<Worker>, kLimits.size()> w;
    for (size_t i = 0; i < kLimits.size(); ++i) w[i] = std::make_unique<Worker>(kLimits[i]);
    return w;
  }();
  for (auto& w : workers) run(*w, {data, size});
  return 0;
}
