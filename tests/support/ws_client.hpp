// A small blocking WebSocket client for the integration tests (RFC 6455 handshake,
// masked text frames, the server's close code and reason), speaking to prismd's gateway.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace prism::testing {

// One WebSocket connection. Frames from the server are not masked (RFC 6455 §5.1).
class WsClient {
 public:
  // `headers`: more request header lines, each ending in \r\n. `receive_buffer`: the
  // socket's SO_RCVBUF when nonzero (a small one makes a slow reader).
  WsClient(uint16_t port, const std::string& path, const std::string& headers = {},
           int receive_buffer = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;  // each frame goes out at once (no Nagle wait on a delayed ACK)
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
    const std::string request = "GET " + path +
                                " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                "Sec-WebSocket-Version: 13\r\n" + headers + "\r\n";
    (void)!::write(fd_, request.data(), request.size());
    while (buffer_.find("\r\n\r\n") == std::string::npos) {
      if (!fill()) return;
    }
    const size_t end = buffer_.find("\r\n\r\n") + 4;
    status_line_ = buffer_.substr(0, buffer_.find("\r\n"));
    response_headers_ = buffer_.substr(0, end);
    buffer_.erase(0, end);
  }
  ~WsClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool upgraded() const { return status_line_.find(" 101 ") != std::string::npos; }
  // Drops the connection without a close frame, as a tab that goes away.
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  const std::string& status_line() const { return status_line_; }
  // The response's header lines, lower-cased (header names are case-insensitive).
  std::string response_headers() const {
    std::string lower = response_headers_;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return lower;
  }
  // Reads whatever arrives until the server closes or resets the connection; false if
  // it is still open after `limit` of silence.
  bool read_until_closed(std::chrono::milliseconds limit) {
    char buf[65536];
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) return false;
      if (::read(fd_, buf, sizeof buf) <= 0) return true;
    }
  }

  void send_text(const std::string& text) {
    std::string frame;
    frame += static_cast<char>(0x81);  // FIN, text
    const size_t n = text.size();
    if (n < 126) {
      frame += static_cast<char>(0x80 | n);
    } else {
      frame += static_cast<char>(0x80 | 126);
      frame += static_cast<char>((n >> 8) & 0xff);
      frame += static_cast<char>(n & 0xff);
    }
    const char mask[4] = {0x12, 0x34, 0x56, 0x78};
    frame.append(mask, 4);
    for (size_t i = 0; i < n; ++i) frame += static_cast<char>(text[i] ^ mask[i % 4]);
    (void)!::write(fd_, frame.data(), frame.size());
  }
  void send(const nlohmann::json& frame) { send_text(frame.dump()); }

  // The next text message; nullopt once the server closed (close_code() says how).
  std::optional<std::string> next() {
    for (;;) {
      if (buffer_.size() >= 2) {
        const auto b0 = static_cast<uint8_t>(buffer_[0]);
        const auto b1 = static_cast<uint8_t>(buffer_[1]);
        size_t len = b1 & 0x7f, at = 2;
        bool header = true;  // the whole header is in the buffer
        if (len == 126) {
          // A 16-bit length follows; it may itself be 126, so no length value marks
          // "not read yet".
          header = buffer_.size() >= 4;
          if (header) len = (static_cast<uint8_t>(buffer_[2]) << 8) | static_cast<uint8_t>(buffer_[3]);
          at = 4;
        } else if (len == 127) {
          return std::nullopt;  // not used by these tests
        }
        if (header && buffer_.size() >= at + len) {
          std::string payload = buffer_.substr(at, len);
          buffer_.erase(0, at + len);
          const int opcode = b0 & 0x0f;
          if (opcode == 0x8) {  // close: status code, then the reason
            if (payload.size() >= 2) {
              close_code_ = (static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]);
              close_reason_ = payload.substr(2);
            }
            return std::nullopt;
          }
          if (opcode == 0x1) return payload;
          continue;  // ping/pong: not expected
        }
      }
      if (!fill()) return std::nullopt;
    }
  }
  // The next message as JSON (null once closed).
  nlohmann::json next_json() {
    auto text = next();
    return text ? nlohmann::json::parse(*text) : nlohmann::json(nullptr);
  }
  int close_code() const { return close_code_; }
  const std::string& close_reason() const { return close_reason_; }

 private:
  bool fill() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return false;  // bounds a broken server only
    char buf[4096];
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buffer_;
  std::string status_line_;
  std::string response_headers_;
  int close_code_ = 0;
  std::string close_reason_;
};

// Whether `frame` is a Phoenix reply with status "ok"; when not, the failure shows the
// whole frame, whose reason says why (ASSERT_TRUE(replied_ok(ws.next_json()))).
inline ::testing::AssertionResult replied_ok(const nlohmann::json& frame) {
  if (frame.is_array() && frame.size() == 5 && frame[3] == "phx_reply" && frame[4].is_object() &&
      frame[4].value("status", "") == "ok") {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "not an ok reply: " << frame.dump();
}

}  // namespace prism::testing
