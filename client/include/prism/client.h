/*
 * libprism-client C API — for FFI (Python ctypes, C#, Rust, ...). Compiles as C11 and
 * as C++. A thin layer over prism::client::Client (prism/client.hpp).
 *
 * Rules that hold everywhere:
 *  - Fallible calls return 0 or a negative PRISM_CLIENT_E* value and never throw.
 *  - Beside every pointer: who owns it and how long it lives.
 *  - A prism_client_t is not thread-safe: use one per thread, or lock around it.
 *  - Every call blocks for at most the timeout given to prism_client_open.
 */
#ifndef PRISM_CLIENT_H
#define PRISM_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Return codes -------------------------------------------------------------- */

#define PRISM_CLIENT_OK 0
/* A NULL handle or output pointer, or a reply whose struct_size is too small. */
#define PRISM_CLIENT_EINVAL (-1)
/* The socket failed, the server's port is closed (connection refused), or the
 * payload does not fit in one datagram. prism_client_last_error says which. */
#define PRISM_CLIENT_EIO (-2)
/* prism_client_ping only: no pong before the timeout. (A call that times out is not
 * an error: it returns 0 with status PRISM_CLIENT_STATUS_TIMEOUT.) */
#define PRISM_CLIENT_ETIMEDOUT (-3)
/* Out of memory while copying a reply. */
#define PRISM_CLIENT_ENOMEM (-4)
/* An unexpected failure inside the library; prism_client_last_error has the text. */
#define PRISM_CLIENT_EINTERNAL (-5)

/* Wire statuses (prism.v1.Status, docs/protocol.md §3.3) that a caller most often
 * tests for; the others have the values of that enum. */
#define PRISM_CLIENT_STATUS_OK 0
#define PRISM_CLIENT_STATUS_INVALID_PACKET 1
#define PRISM_CLIENT_STATUS_UNAVAILABLE 8
#define PRISM_CLIENT_STATUS_TIMEOUT 9

/* ---- Types ------------------------------------------------------------------------ */

/* One connection to prismd. Owned by the caller from prism_client_open until
 * prism_client_close. */
typedef struct prism_client prism_client_t;

/* The answer to one request. The caller allocates the struct and sets struct_size to
 * sizeof(prism_client_reply_t) (PRISM_CLIENT_REPLY_INIT does both); the library fills
 * it and owns the buffers it points to until prism_client_reply_free. */
typedef struct prism_client_reply {
  uint32_t struct_size;
  /* The wire status: PRISM_CLIENT_STATUS_OK (0), PRISM_CLIENT_STATUS_TIMEOUT when no
   * reply came in time, or another prism.v1.Status value. */
  int status;
  /* The status message, NUL-terminated ("" on success). Owned by the reply; valid
   * until prism_client_reply_free. Never NULL after a successful call. */
  char *message;
  size_t message_len;
  /* The reply payload, payload_len bytes (not NUL-terminated). Owned by the reply;
   * valid until prism_client_reply_free. NULL when payload_len is 0. */
  uint8_t *payload;
  size_t payload_len;
} prism_client_reply_t;

#define PRISM_CLIENT_REPLY_INIT {sizeof(prism_client_reply_t), 0, NULL, 0, NULL, 0}

/* ---- Functions --------------------------------------------------------------------- */

/* Resolves host (a name or numeric address; IPv6 without brackets), opens a UDP
 * socket to host:port and runs the secure handshake (docs/protocol.md §5) against the
 * server's public key. timeout_ms bounds the handshake and every later call and ping
 * (0 means the default, 2000 ms).
 * host: borrowed, read during the call only.
 * server_key: borrowed, read during the call only: "prism1:<64 hex digits>", as
 *      prismd logs it and writes it to server.pub.
 * err: caller's buffer of err_len bytes, may be NULL; on failure it receives a
 *      NUL-terminated reason, truncated to fit.
 * Returns a handle owned by the caller (free it with prism_client_close), or NULL. */
prism_client_t *prism_client_open(const char *host, uint16_t port, const char *server_key,
                                  uint32_t timeout_ms, char *err, size_t err_len);

/* Logs the session in to a service (LOGIN, docs/protocol.md §5.10).
 * service, token: borrowed, NUL-terminated, read during the call only.
 * out: as for prism_client_call; its status is OK, INVALID_SERVICE,
 *      INVALID_CREDENTIALS or RATE_LIMITED.
 * Returns 0, or PRISM_CLIENT_EINVAL / EIO / ENOMEM / EINTERNAL. */
int prism_client_login(prism_client_t *client, const char *service, const char *token,
                       prism_client_reply_t *out);

/* Sends CLOSE, closes the socket and frees the handle. client: owned by the caller until this
 * call, invalid after it; NULL is ignored. */
void prism_client_close(prism_client_t *client);

/* Sends one request and waits for its reply.
 * client: borrowed.
 * payload: borrowed, read during the call only; may be NULL when len is 0.
 * out: caller's struct with struct_size set; on success it holds the reply (any
 *      status, including TIMEOUT) and must be released with prism_client_reply_free.
 *      On failure it holds no buffers (freeing it anyway is harmless).
 * Returns 0, or PRISM_CLIENT_EINVAL / EIO / ENOMEM / EINTERNAL. */
int prism_client_call(prism_client_t *client, uint32_t packet_id, const uint8_t *payload,
                      size_t len, prism_client_reply_t *out);

/* Frees the buffers of a reply filled by prism_client_call and clears its pointers,
 * so freeing twice is harmless. reply: borrowed; NULL is ignored. */
void prism_client_reply_free(prism_client_reply_t *reply);

/* Measures one Ping/Pong round trip.
 * client: borrowed. rtt_ns: caller's, receives the round-trip time in nanoseconds.
 * Returns 0, or PRISM_CLIENT_ETIMEDOUT / EINVAL / EIO / EINTERNAL. */
int prism_client_ping(prism_client_t *client, uint64_t *rtt_ns);

/* A message the server sent unasked (a push, docs/protocol.md §3.2): its packet id, its
 * topic when a publish sent it (topic_len 0 otherwise) and its payload. topic and payload
 * are owned by the client and valid until the callback returns; copy what you keep.
 * Called from inside prism_client_poll, prism_client_call and the other calls that wait. */
typedef void (*prism_client_push_fn)(void *user, uint32_t packet_id, const char *topic,
                                     size_t topic_len, const uint8_t *payload, size_t len);

/* Routes pushes with this packet id (or, for on_topic, this topic: borrowed, read during
 * the call) to fn with user. A topic's callback takes precedence over a packet id's;
 * pushes neither matches are dropped. Setting one again replaces it; fn NULL removes it.
 * Returns 0, or PRISM_CLIENT_EINVAL / ENOMEM. */
int prism_client_on_push(prism_client_t *client, uint32_t packet_id, prism_client_push_fn fn,
                         void *user);
int prism_client_on_topic(prism_client_t *client, const char *topic, prism_client_push_fn fn,
                          void *user);

/* Waits up to max_wait_ms for traffic and handles it (pushes to their callbacks).
 * Returns 0, or PRISM_CLIENT_EIO when the socket failed or the session is closed
 * (prism_client_last_error says why) / EINVAL / ENOMEM / EINTERNAL. */
int prism_client_poll(prism_client_t *client, uint32_t max_wait_ms);

/* The name of a wire status without its prefix: "OK", "INVALID_PACKET", "TIMEOUT";
 * "UNKNOWN" for another value. Static storage: never freed, valid forever. */
const char *prism_client_status_name(int status);

/* Why the last failed call on `client` failed, NUL-terminated; "" when nothing failed
 * yet. Owned by the client; valid until the next call on it or prism_client_close. */
const char *prism_client_last_error(const prism_client_t *client);

#ifdef __cplusplus
}
#endif

#endif /* PRISM_CLIENT_H */
