// One HTTP/1.1 exchange over a fresh connection (Connection: close) for the integration
// tests: the request as given, the answer read until the server closes.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <string>

namespace prism::testing {

struct HttpReply {
  int status = 0;
  std::string headers;  // lower-cased
  std::string body;
};

// `headers`: more header lines, each ending in \r\n.
inline HttpReply http_request(uint16_t port, const std::string& method, const std::string& path,
                              const std::string& body = {}, const std::string& headers = {}) {
  HttpReply reply;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return reply;
  }
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers;
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    request += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  (void)!::write(fd, request.data(), request.size());
  std::string raw;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;  // bounds a broken server only
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t split = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || split == std::string::npos) return reply;
  reply.status = std::stoi(raw.substr(9, 3));
  reply.headers = raw.substr(0, split);
  for (char& ch : reply.headers) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  reply.body = raw.substr(split + 4);
  return reply;
}

inline HttpReply http_get(uint16_t port, const std::string& path) {
  return http_request(port, "GET", path);
}

}  // namespace prism::testing
