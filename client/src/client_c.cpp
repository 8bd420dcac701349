// The C API (prism/client.h) over prism::client::Client. Nothing throws across this
// boundary: every entry point catches and turns an exception into a return code.
#include "prism/client.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include "net/crypto/key_file.hpp"
#include "prism/client.hpp"

struct prism_client {
  prism::client::Client client;
  std::string last_error;
};

namespace {

// The reply fields this build writes; a caller's struct must be at least this large.
constexpr size_t kReplyV1Size = offsetof(prism_client_reply_t, payload_len) + sizeof(size_t);

void copy_error(std::string_view text, char* err, size_t err_len) {
  if (err == nullptr || err_len == 0) return;
  const size_t n = std::min(text.size(), err_len - 1);
  std::memcpy(err, text.data(), n);
  err[n] = '\0';
}

void clear_reply(prism_client_reply_t* reply) {
  reply->status = 0;
  reply->message = nullptr;
  reply->message_len = 0;
  reply->payload = nullptr;
  reply->payload_len = 0;
}

int fail(prism_client_t* c, int code, std::string text) {
  c->last_error = std::move(text);
  return code;
}

// Copies a reply into the caller's struct with malloc'd buffers (prism_client_reply_free).
int copy_reply(prism_client_t* client, const prism::Expected<prism::client::Reply>& reply,
               prism_client_reply_t* out) {
  if (!reply) return fail(client, PRISM_CLIENT_EIO, reply.error());
  auto* message = static_cast<char*>(std::malloc(reply->message.size() + 1));
  uint8_t* data = nullptr;
  if (!reply->payload.empty()) data = static_cast<uint8_t*>(std::malloc(reply->payload.size()));
  if (message == nullptr || (data == nullptr && !reply->payload.empty())) {
    std::free(message);
    std::free(data);
    return fail(client, PRISM_CLIENT_ENOMEM, "out of memory copying the reply");
  }
  std::memcpy(message, reply->message.data(), reply->message.size());
  message[reply->message.size()] = '\0';
  if (data != nullptr) std::memcpy(data, reply->payload.data(), reply->payload.size());
  out->status = static_cast<int>(reply->status);
  out->message = message;
  out->message_len = reply->message.size();
  out->payload = data;
  out->payload_len = reply->payload.size();
  client->last_error.clear();
  return PRISM_CLIENT_OK;
}

// Runs `body` (which returns a PRISM_CLIENT_* code) with nothing thrown across the C
// boundary: an exception becomes ENOMEM or EINTERNAL with the reason in last_error.
template <class Body>
int guarded(prism_client_t* client, Body body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(client, PRISM_CLIENT_ENOMEM, "out of memory");
  } catch (const std::exception& e) {
    return fail(client, PRISM_CLIENT_EINTERNAL, std::string("internal error: ") + e.what());
  }
}

}  // namespace

extern "C" {

prism_client_t* prism_client_open(const char* host, uint16_t port, const char* server_key,
                                  uint32_t timeout_ms, char* err, size_t err_len) {
  try {
    if (host == nullptr || server_key == nullptr) {
      copy_error(host == nullptr ? "host is NULL" : "server_key is NULL", err, err_len);
      return nullptr;
    }
    auto key = prism::net::crypto::decode_public_key(server_key);
    if (!key) {
      copy_error(key.error(), err, err_len);
      return nullptr;
    }
    prism::client::ConnectOptions options;
    options.server_key = *key;
    options.timeout = std::chrono::milliseconds(timeout_ms == 0 ? 2000 : timeout_ms);
    auto client = prism::client::Client::connect({.host = host, .port = port}, options);
    if (!client) {
      copy_error(client.error(), err, err_len);
      return nullptr;
    }
    return new prism_client{std::move(*client), {}};
  } catch (const std::exception& e) {
    copy_error(std::string("internal error: ") + e.what(), err, err_len);
    return nullptr;
  }
}

void prism_client_close(prism_client_t* client) { delete client; }

int prism_client_call(prism_client_t* client, uint32_t packet_id, const uint8_t* payload,
                      size_t len, prism_client_reply_t* out) {
  if (client == nullptr) return PRISM_CLIENT_EINVAL;
  if (out == nullptr || out->struct_size < kReplyV1Size) {
    return fail(client, PRISM_CLIENT_EINVAL, "reply is NULL or its struct_size is too small");
  }
  clear_reply(out);
  if (payload == nullptr && len != 0) {
    return fail(client, PRISM_CLIENT_EINVAL, "payload is NULL but len is not 0");
  }
  return guarded(client, [&] {
    const std::string_view bytes(reinterpret_cast<const char*>(payload), payload ? len : 0);
    return copy_reply(client, client->client.call(packet_id, bytes), out);
  });
}

int prism_client_login(prism_client_t* client, const char* service, const char* token,
                       prism_client_reply_t* out) {
  if (client == nullptr) return PRISM_CLIENT_EINVAL;
  if (out == nullptr || out->struct_size < kReplyV1Size) {
    return fail(client, PRISM_CLIENT_EINVAL, "reply is NULL or its struct_size is too small");
  }
  clear_reply(out);
  if (service == nullptr || token == nullptr) {
    return fail(client, PRISM_CLIENT_EINVAL, "service or token is NULL");
  }
  return guarded(client, [&] {
    return copy_reply(client, client->client.login(service, token), out);
  });
}

void prism_client_reply_free(prism_client_reply_t* reply) {
  if (reply == nullptr || reply->struct_size < kReplyV1Size) return;
  std::free(reply->message);
  std::free(reply->payload);
  clear_reply(reply);
}

int prism_client_ping(prism_client_t* client, uint64_t* rtt_ns) {
  if (client == nullptr) return PRISM_CLIENT_EINVAL;
  if (rtt_ns == nullptr) return fail(client, PRISM_CLIENT_EINVAL, "rtt_ns is NULL");
  return guarded(client, [&] {
    auto rtt = client->client.ping();
    if (!rtt) {
      // The text of a ping timeout is documented in prism/client.hpp.
      const bool timed_out = std::string_view(rtt.error()).starts_with("no pong within");
      return fail(client, timed_out ? PRISM_CLIENT_ETIMEDOUT : PRISM_CLIENT_EIO, rtt.error());
    }
    *rtt_ns = static_cast<uint64_t>(rtt->count());
    client->last_error.clear();
    return PRISM_CLIENT_OK;
  });
}

namespace {

// A C callback as a C++ push callback: the views it hands out live until it returns.
prism::client::PushCallback c_callback(prism_client_push_fn fn, void* user) {
  if (fn == nullptr) return {};
  return [fn, user](const prism::v1::Message& m) {
    fn(user, m.packet_id(), m.topic().data(), m.topic().size(),
       reinterpret_cast<const uint8_t*>(m.payload().data()), m.payload().size());
  };
}

}  // namespace

int prism_client_on_push(prism_client_t* client, uint32_t packet_id, prism_client_push_fn fn,
                         void* user) {
  if (client == nullptr) return PRISM_CLIENT_EINVAL;
  return guarded(client, [&] {
    client->client.on_push(packet_id, c_callback(fn, user));
    return PRISM_CLIENT_OK;
  });
}

int prism_client_on_topic(prism_client_t* client, const char* topic, prism_client_push_fn fn,
                          void* user) {
  if (client == nullptr) return PRISM_CLIENT_EINVAL;
  if (topic == nullptr) return fail(client, PRISM_CLIENT_EINVAL, "topic is NULL");
  return guarded(client, [&] {
    client->client.on_topic(topic, c_callback(fn, user));
    return PRISM_CLIENT_OK;
  });
}

int prism_client_poll(prism_client_t* client, uint32_t max_wait_ms) {
  if (client == nullptr) return PRISM_CLIENT_EINVAL;
  return guarded(client, [&] {
    auto polled = client->client.poll(std::chrono::milliseconds(max_wait_ms));
    if (!polled) return fail(client, PRISM_CLIENT_EIO, polled.error());
    if (!client->client.connected()) {
      return fail(client, PRISM_CLIENT_EIO, "session closed: " + client->client.close_reason());
    }
    client->last_error.clear();
    return PRISM_CLIENT_OK;
  });
}

const char* prism_client_status_name(int status) {
  if (!prism::v1::Status_IsValid(status)) return "UNKNOWN";
  // Views into protobuf's static enum names, which are NUL-terminated std::strings.
  return prism::client::status_name(static_cast<prism::v1::Status>(status)).data();
}

const char* prism_client_last_error(const prism_client_t* client) {
  return client == nullptr ? "" : client->last_error.c_str();
}

}  // extern "C"
