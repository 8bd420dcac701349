/*
 * Prism plugin C ABI — the only stable contract between prismd and a plugin
 * (DESIGN.md §4, docs/plugin-api.md). Compiles as C11 and as C++.
 *
 * Read top to bottom: versions, status codes, plain types, the host function table,
 * the plugin descriptor, the entry symbol.
 *
 * Rules that hold everywhere:
 *  - Every struct that may grow starts with `uint32_t struct_size`. A reader accepts a
 *    larger size and treats fields beyond a smaller size as absent (PRISM_HAS_FIELD).
 *  - Nothing throws across this boundary; fallible calls return prism_status_t.
 *  - Beside every pointer: who owns it and how long it lives. Whoever must keep data
 *    longer than that copies it.
 *  - Arrays that cross the boundary carry the size of one element (method_size,
 *    write_size, document_size ...) from ABI 1.2 on: step through them by that size, so
 *    their element structs can grow as the tables do (Redis's RedisModuleCommandInfo
 *    does the same). Without it (older minors) the element is the 1.1 layout.
 *  - Completions and events never run inside the host call that caused them: a storage
 *    completion, a topic message the plugin published to itself, a timer started with
 *    after_ms 0 all come later, from the worker's loop.
 *  - handle, on_event and the host calls made from them run on a prismd worker thread;
 *    init, snapshot, restore and shutdown run on the thread that loads or unloads the
 *    plugin, never while another callback of that plugin runs. A plugin without
 *    PRISM_PLUGIN_CONCURRENT is never entered by two threads at once.
 */
#ifndef PRISM_PLUGIN_H
#define PRISM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Versions ------------------------------------------------------------------ */

/* A plugin built for another major version is refused. The host accepts a plugin
 * built for an older or equal minor version; newer host minors only add tail fields. */
#define PRISM_ABI_VERSION_MAJOR 1
#define PRISM_ABI_VERSION_MINOR 2

/* True when a struct read through `ptr` (whose first field is struct_size) is large
 * enough to contain `field`. */
#define PRISM_HAS_FIELD(ptr, type, field) \
  ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

#if defined(__GNUC__)
#define PRISM_EXPORT __attribute__((visibility("default")))
#else
#define PRISM_EXPORT
#endif

/* Packet ids below this belong to the host (docs/protocol.md §4); a plugin's range starts
 * at or above it. */
#define PRISM_FIRST_PLUGIN_PACKET_ID 100

/* ---- Status codes (docs/protocol.md §3.3) -------------------------------------- */

/* 0 is success; failures are negative, the wire status negated. */
typedef int32_t prism_status_t;

#define PRISM_OK 0
#define PRISM_INVALID_PACKET (-1)
#define PRISM_LOGIN_REQUIRED (-2)
#define PRISM_INVALID_SERVICE (-3)
#define PRISM_INVALID_CREDENTIALS (-4)
#define PRISM_NOT_FOUND (-5)
#define PRISM_CONFLICT (-6)
#define PRISM_INVALID_ARGUMENT (-7)
#define PRISM_UNAVAILABLE (-8)
#define PRISM_TIMEOUT (-9)
#define PRISM_RATE_LIMITED (-10)
#define PRISM_INTERNAL (-11)

/* ---- Plain types ------------------------------------------------------------------ */

/* A byte string with an explicit length. Ownership is stated where it is used. */
typedef struct prism_bytes {
  const uint8_t *data;
  size_t len;
} prism_bytes_t;

/* The host's handle for one loaded plugin version. Owned by the host; valid from the
 * call to init until shutdown returns. */
typedef struct prism_host prism_host_t;

/* One in-flight request. Owned by the host; valid from the call to handle until the
 * plugin passes it to prism_host_api_t.reply (exactly once). */
typedef struct prism_request prism_request_t;

/* A named monotonic counter registered by a plugin. Owned by the host; valid until
 * the plugin's shutdown returns. */
typedef struct prism_counter prism_counter_t;

typedef enum prism_log_level {
  PRISM_LOG_DEBUG = 0,
  PRISM_LOG_INFO = 1,
  PRISM_LOG_WARN = 2,
  PRISM_LOG_ERROR = 3
} prism_log_level_t;

/* A method a plugin answers: `id` is relative to the start of the plugin's packet-id
 * range (packet id = range start + id), so an operator may move the range. */
typedef struct prism_method {
  const char *name; /* owned by the plugin; static for the life of the loaded file */
  uint32_t id;
} prism_method_t;

/* Filled by prism_host_api_t.server_info. */
typedef struct prism_server_info {
  uint32_t struct_size;    /* set by the caller to sizeof(prism_server_info_t) */
  const char *version;     /* owned by the host; static */
  uint64_t started_at_ms;  /* Unix time in milliseconds when prismd started */
  uint64_t now_ms;         /* Unix time in milliseconds, now */
  uint32_t workers;        /* number of worker threads */
  /* ABI 1.2, later: this node's id in its cluster (prism.yaml cluster.node_id), "" when
   * it runs alone; owned by the host, static. NULL from an older host. */
  const char *node_id;
} prism_server_info_t;

/* One loaded plugin, as handed to a prism_plugin_visitor_fn. */
typedef struct prism_plugin_info {
  uint32_t struct_size;    /* set by the host to the size it filled */
  const char *name;        /* owned by the host; valid until the visitor returns */
  const char *version;     /* owned by the host; valid until the visitor returns */
  uint32_t first_packet_id;
  uint32_t last_packet_id; /* inclusive */
  uint64_t requests;       /* requests handled by this version */
  uint64_t errors;         /* replies with a status other than PRISM_OK */
} prism_plugin_info_t;

typedef void (*prism_plugin_visitor_fn)(void *user, const prism_plugin_info_t *info);

typedef enum prism_event_type {
  PRISM_EVENT_SESSION_OPENED = 1, /* a client finished its handshake */
  PRISM_EVENT_SESSION_CLOSED = 2, /* the session is gone; `reason` says why (ABI 1.2) */
  PRISM_EVENT_TOPIC_MESSAGE = 3,  /* ABI 1.2: a publish to a topic the plugin subscribed to */
  PRISM_EVENT_TIMER = 4,          /* ABI 1.2: a timer of this plugin version fired */
  /* ABI 1.2, later: a lease this node held for the service (prism_host_api_t.lease) is
   * another node's now: this node was cut off from the cluster's Redis for longer than
   * the lease's TTL. `payload` is the lease's name. Whatever the lease guarded must stop
   * here: the other node serves it now. */
  PRISM_EVENT_LEASE_LOST = 5
} prism_event_type_t;

/* Handed to on_event, on the worker thread the event belongs to (the session's, the
 * publisher's, the timer's). Owned by the host; everything it points at is valid until
 * on_event returns. Fields a type does not use are zero. */
typedef struct prism_event {
  uint32_t struct_size;
  uint32_t type; /* a prism_event_type_t; a fixed-width field keeps the layout compiler-independent */
  uint64_t session_id; /* SESSION_OPENED, SESSION_CLOSED */
  /* ---- ABI 1.2 */
  const char *reason;     /* SESSION_CLOSED: NUL-terminated, never NULL for that type */
  prism_bytes_t topic;    /* TOPIC_MESSAGE */
  uint32_t packet_id;     /* TOPIC_MESSAGE: the publisher's absolute packet id */
  prism_bytes_t payload;  /* TOPIC_MESSAGE; LEASE_LOST: the lease's name */
  uint64_t timer_id;      /* TIMER: as timer_start returned it */
  void *timer_user;       /* TIMER: the pointer given to timer_start */
} prism_event_t;

/* How a push or a topic message travels to a client (docs/protocol.md §5.6). */
#define PRISM_DELIVERY_RELIABLE_ORDERED 0
#define PRISM_DELIVERY_RELIABLE_UNORDERED 1
#define PRISM_DELIVERY_UNRELIABLE 2 /* at most one datagram; may be lost */

/* subscribe/unsubscribe with this session id subscribe the plugin version itself: it
 * receives PRISM_EVENT_TOPIC_MESSAGE instead of a client receiving a push. No session
 * has id 0. */
#define PRISM_SESSION_PLUGIN 0

/* Topics: 1..PRISM_MAX_TOPIC_LEN bytes, printable ASCII without spaces (0x21-0x7e). */
#define PRISM_MAX_TOPIC_LEN 200

/* ---- Channels (ABI 1.2; DESIGN.md §8, docs/plugin-api.md "Channels") ----------------
 *
 * The WebSocket gateway speaks Phoenix Channels: a client joins a topic ("room:42"),
 * pushes events on it and leaves. A plugin declares the topics it serves
 * (prism_plugin_descriptor_t.channel_topics) and receives each of those as a request
 * through its `channel` callback, answered with reply() like any request: for a JOIN, OK
 * admits the client (the reply payload, JSON, is the join's response) and any other
 * status refuses it with the message as reason; for an EVENT the reply is the client's
 * phx_reply; a LEAVE (the client left or went away) needs an answer too, which no one
 * reads. The session of a channel request is the WebSocket connection's: push,
 * subscribe and publish reach it like a UDP session. */

typedef enum prism_channel_kind {
  PRISM_CHANNEL_JOIN = 1,
  PRISM_CHANNEL_EVENT = 2,
  PRISM_CHANNEL_LEAVE = 3,
  /* An HTTP request on ws.listen whose path a pattern starting with '/' matches
   * ("/api/instances*"): `topic` is the path, `event` the method (GET, POST, PUT, PATCH,
   * DELETE), `payload` the body as sent (possibly empty), `connect` {"params", "token"
   * (Authorization: Bearer), "admin" (true when that is the admin token)}. No login is
   * asked: the plugin decides from connect. The reply's payload is the response body
   * (JSON), its status the HTTP status (OK 200, INVALID_ARGUMENT 400, LOGIN_REQUIRED 401,
   * NOT_FOUND 404, CONFLICT 409, RATE_LIMITED 429, UNAVAILABLE 503, else 500, with
   * {"error": message}). docs/plugin-api.md §5.11. */
  PRISM_CHANNEL_HTTP = 4
} prism_channel_kind_t;

/* Handed to `channel`. Owned by the host; valid until `channel` returns. */
typedef struct prism_channel_message {
  uint32_t struct_size;
  uint32_t kind;          /* a prism_channel_kind_t */
  prism_bytes_t topic;    /* the joined topic, e.g. "room:42" */
  prism_bytes_t event;    /* EVENT: the client's event name; JOIN: "phx_join"; LEAVE: "phx_leave" */
  prism_bytes_t payload;  /* the client's payload as JSON text ("{}" when it sent none) */
  /* How the socket connected, as a JSON object (docs/protocol.md §7.1): "socket", the
   * <id> of /socket/<id>/websocket (absent for /socket/websocket); "params", the URL's
   * query parameters as strings (vsn included); "token", the bearer token of the
   * `base64url.bearer.phx.<token>` sub-protocol, decoded (absent when none was sent).
   * The gateway checks nothing in it: a plugin that authenticates refuses the JOIN.
   * Empty when struct_size ends before it. */
  prism_bytes_t connect;
} prism_channel_message_t;

/* ---- Across a cluster (ABI 1.2, later; DESIGN.md §7, docs/plugin-api.md "Cluster") ----
 *
 * A request may be served by the same service on another node (the one that holds the
 * lease on what it asks for): `forward` hands it there. That node's host calls the
 * service's handle (kind 0) or channel (a prism_channel_kind_t) with this copy of the
 * request; its session is a stand-in for the client, and push, push_topic, subscribe,
 * unsubscribe, end_channel and publish_except on that session reach the real one on its
 * node. Its answer travels back and answers the request here. When that node leaves the
 * cluster, its stand-ins close there (PRISM_EVENT_SESSION_CLOSED) and the subscriptions
 * it made for sessions here end with rejoin (end_channel): the clients join again, and
 * find the service wherever it is served then. */
typedef struct prism_forward {
  uint32_t struct_size;   /* sizeof(prism_forward_t) when built */
  uint32_t kind;          /* 0: a request to `method`; else the prism_channel_kind_t */
  uint32_t method;        /* kind 0: the relative method id, as handle got it */
  prism_bytes_t payload;  /* as handle or channel got it */
  prism_bytes_t topic;    /* channel kinds: as channel got them */
  prism_bytes_t event;
  prism_bytes_t connect;
  /* Optional (empty for none): this node starts receiving `receive_topic` from the other
   * nodes before the request leaves, so nothing the serving node publishes to it after
   * answering is missed: a join's topic. */
  prism_bytes_t receive_topic;
} prism_forward_t;

/* Channel topic patterns: "room:lobby" matches that topic only, "room:*" every topic that
 * starts with "room:". At most this many per plugin; patterns of loaded plugins never
 * overlap. */
#define PRISM_MAX_CHANNEL_TOPICS 64

/* ---- Storage (ABI 1.1; DESIGN.md §6, docs/plugin-api.md "Storage") ------------------
 *
 * Every storage call returns at once and completes later through a prism_store_done_fn,
 * exactly once, never inside the call, on the worker thread that made the call (calls
 * made from handle, on_event or another completion; from any other thread, on a host
 * thread). A completion with PRISM_OK means the write is durable in its backend. Byte
 * strings passed to a call are owned by the caller and copied before the call returns. */

typedef struct prism_document {
  prism_bytes_t collection;
  prism_bytes_t key;
  prism_bytes_t value;
  uint64_t version; /* 1 for a new document, +1 per write */
} prism_document_t;

/* A leaderboard entry. In a submit, rank and submitted_ms are ignored. */
typedef struct prism_entry {
  prism_bytes_t owner;
  int64_t score;
  int64_t subscore;
  prism_bytes_t metadata; /* at most 1024 bytes */
  uint64_t rank;          /* 1-based */
  int64_t submitted_ms;   /* Unix ms of the submission that set the score */
} prism_entry_t;

typedef struct prism_presence {
  prism_bytes_t owner;
  prism_bytes_t status;
  int64_t expires_at_ms;
} prism_presence_t;

/* What a storage call produced. Owned by the host; valid until the completion returns
 * (copy what you keep). Only the arrays the call produces are non-empty. */
typedef struct prism_store_result {
  uint32_t struct_size;
  prism_status_t status;  /* PRISM_OK, NOT_FOUND, CONFLICT, INVALID_ARGUMENT, UNAVAILABLE, INTERNAL */
  const char *message;    /* NUL-terminated; "" on success */
  const prism_document_t *documents; /* doc_get (one), doc_list */
  size_t document_count;
  const prism_entry_t *entries;      /* board_submit, board_rank (one), top, page, around */
  size_t entry_count;
  const prism_presence_t *presences; /* presence_get (one), presence_list */
  size_t presence_count;
  const int64_t *values;             /* doc_put: new version; store counters: value; apply: per write */
  size_t value_count;
  /* ---- ABI 1.2: the size of one element of each array above, as laid out by the host;
   * step through the arrays by these. A host serving a plugin built for an older minor
   * lays them out as that minor did. */
  size_t document_size;
  size_t entry_size;
  size_t presence_size;
} prism_store_result_t;

typedef void (*prism_store_done_fn)(void *user, const prism_store_result_t *result);

/* doc_put / doc_delete condition: any version, document absent, or exactly this version. */
#define PRISM_VERSION_ANY (-1)
#define PRISM_VERSION_ABSENT 0

#define PRISM_ORDER_DESCENDING 0 /* higher scores rank first */
#define PRISM_ORDER_ASCENDING 1
#define PRISM_OP_BEST 0      /* keep the better score */
#define PRISM_OP_SET 1       /* replace */
#define PRISM_OP_INCREMENT 2 /* add */

#define PRISM_WRITE_PUT 0
#define PRISM_WRITE_DELETE 1
#define PRISM_WRITE_COUNTER_ADD 2
#define PRISM_WRITE_SUBMIT 3

/* One write of an atomic batch (store_apply). */
typedef struct prism_write {
  uint32_t kind;            /* PRISM_WRITE_* */
  prism_bytes_t collection; /* PUT, DELETE */
  prism_bytes_t key;        /* PUT, DELETE */
  prism_bytes_t value;      /* PUT */
  int64_t expected_version; /* PUT, DELETE: PRISM_VERSION_ANY, _ABSENT or a version */
  prism_bytes_t counter;    /* COUNTER_ADD */
  int64_t delta;            /* COUNTER_ADD */
  prism_bytes_t board;      /* SUBMIT */
  prism_entry_t entry;      /* SUBMIT */
} prism_write_t;

/* ---- The host function table ----------------------------------------------------- */

/* Passed to init. Owned by the host; valid until shutdown returns. Check
 * PRISM_HAS_FIELD before calling a function added in a later minor version. */
typedef struct prism_host_api {
  uint32_t struct_size;
  uint16_t abi_version_major;
  uint16_t abi_version_minor;

  /* Answers `request` and releases it: call exactly once per request, on the thread
   * that called handle (host completions run there too). `message` (NUL-terminated,
   * may be NULL) and `payload` are owned by the caller and copied before this returns.
   * After the call the request handle is invalid. Returns PRISM_INVALID_ARGUMENT if
   * the payload is larger than the transport allows; the request is then answered
   * with PRISM_INTERNAL and still released. */
  prism_status_t (*reply)(prism_request_t *request, prism_status_t status,
                          const char *message, prism_bytes_t payload);

  /* The session a request came from; stable for the life of the session. */
  uint64_t (*request_session)(const prism_request_t *request);

  /* Writes one log line tagged with the plugin's name. `message` is owned by the
   * caller and need not be NUL-terminated. */
  void (*log)(prism_host_t *host, prism_log_level_t level, const char *message, size_t len);

  /* Registers a counter exported as prism_plugin_<name> with a label plugin="<plugin>".
   * `name` ([a-z0-9_]{1,64}) and `help` are copied. Returns NULL on a bad name or on a
   * name the host reserves for its own series (requests_total, errors_total,
   * request_seconds*).
   * Registering a name again (also from a newer version of the plugin) returns the same
   * counter, so totals survive a reload. */
  prism_counter_t *(*counter_register)(prism_host_t *host, const char *name, const char *help);

  /* Adds to a counter; lock-free, callable from any callback. */
  void (*counter_add)(prism_counter_t *counter, uint64_t delta);

  /* Fills `out` (whose struct_size the caller sets) with facts about the server. */
  void (*server_info)(prism_host_t *host, prism_server_info_t *out);

  /* Calls `visit` once per loaded plugin, in packet-id order, before returning. */
  void (*visit_plugins)(prism_host_t *host, prism_plugin_visitor_fn visit, void *user);

  /* ---- ABI 1.1: storage. Check PRISM_HAS_FIELD(api, prism_host_api_t, store_apply). */
  void (*doc_get)(prism_host_t *host, prism_bytes_t collection, prism_bytes_t key,
                  prism_store_done_fn done, void *user);
  void (*doc_put)(prism_host_t *host, prism_bytes_t collection, prism_bytes_t key,
                  prism_bytes_t value, int64_t expected_version, prism_store_done_fn done,
                  void *user);
  void (*doc_delete)(prism_host_t *host, prism_bytes_t collection, prism_bytes_t key,
                     int64_t expected_version, prism_store_done_fn done, void *user);
  /* Keys of `collection` starting with `prefix`, after `after` (exclusive), key order. */
  void (*doc_list)(prism_host_t *host, prism_bytes_t collection, prism_bytes_t prefix,
                   prism_bytes_t after, uint32_t limit, prism_store_done_fn done, void *user);
  void (*store_counter_add)(prism_host_t *host, prism_bytes_t counter, int64_t delta,
                            prism_store_done_fn done, void *user);
  void (*store_counter_get)(prism_host_t *host, prism_bytes_t counter, prism_store_done_fn done,
                            void *user);
  /* Idempotent for the same order and operator; CONFLICT for different ones. */
  void (*board_create)(prism_host_t *host, prism_bytes_t board, uint32_t order, uint32_t op,
                       prism_store_done_fn done, void *user);
  void (*board_submit)(prism_host_t *host, prism_bytes_t board, const prism_entry_t *entry,
                       prism_store_done_fn done, void *user);
  void (*board_top)(prism_host_t *host, prism_bytes_t board, uint32_t limit,
                    prism_store_done_fn done, void *user);
  void (*board_page)(prism_host_t *host, prism_bytes_t board, uint64_t after_rank, uint32_t limit,
                     prism_store_done_fn done, void *user);
  void (*board_around)(prism_host_t *host, prism_bytes_t board, prism_bytes_t owner,
                       uint32_t limit, prism_store_done_fn done, void *user);
  void (*board_rank)(prism_host_t *host, prism_bytes_t board, prism_bytes_t owner,
                     prism_store_done_fn done, void *user);
  void (*board_remove)(prism_host_t *host, prism_bytes_t board, prism_bytes_t owner,
                       prism_store_done_fn done, void *user);
  void (*board_reset)(prism_host_t *host, prism_bytes_t board, prism_store_done_fn done,
                      void *user);
  void (*presence_set)(prism_host_t *host, prism_bytes_t owner, prism_bytes_t status,
                       uint32_t ttl_ms, prism_store_done_fn done, void *user);
  void (*presence_get)(prism_host_t *host, prism_bytes_t owner, prism_store_done_fn done,
                       void *user);
  void (*presence_remove)(prism_host_t *host, prism_bytes_t owner, prism_store_done_fn done,
                          void *user);
  void (*presence_list)(prism_host_t *host, prism_bytes_t status_prefix, uint32_t limit,
                        prism_store_done_fn done, void *user);
  /* A batch of writes, all or nothing per backend: on a failed condition nothing of its
   * backend's part is applied and the status is CONFLICT with the failing write's index in
   * the message ("write 3: ..."). When the operator put the batch's facets on different
   * backends (docs/operations.md §3.4), the batch runs as one part per backend, in the
   * order their first writes appear, each after the previous one committed: a failure
   * in a later part leaves the earlier parts applied. Put the writes that others could
   * not repair first, or keep a batch's facets on one backend. */
  void (*store_apply)(prism_host_t *host, const prism_write_t *writes, size_t count,
                      prism_store_done_fn done, void *user);

  /* ---- ABI 1.2: real time (DESIGN.md §4, docs/plugin-api.md "Real time"). Check
   * PRISM_HAS_FIELD(api, prism_host_api_t, timer_stop). Callable from any callback, on
   * any thread; a session on another worker is reached through that worker's queue, so
   * PRISM_OK means "accepted", not "delivered". `method` is relative to the plugin's
   * range, like prism_method_t.id: the client sees packet id = range start + method.
   * `payload` and `topic` are owned by the caller and copied before the call returns. */

  /* Sends one message the session did not ask for. PRISM_NOT_FOUND: no such session
   * (when it is on the calling worker; on another worker a push to a session gone meanwhile
   * is dropped and counted); PRISM_INVALID_ARGUMENT: method outside the range, unknown
   * delivery, or an unreliable payload larger than one datagram; PRISM_RATE_LIMITED: the
   * session's send backlog is full (a reliable push then closes the session, "slow
   * consumer"; an unreliable one is dropped). */
  prism_status_t (*push)(prism_host_t *host, uint64_t session, uint32_t method, uint32_t delivery,
                         prism_bytes_t payload);

  /* Subscribes `session` (or the plugin itself: PRISM_SESSION_PLUGIN) to `topic`.
   * Idempotent. A session's subscriptions end when it closes; the plugin's own end with
   * this plugin version. PRISM_RATE_LIMITED: the session is at server.max_topics_per_session
   * or the topic at server.max_subscribers_per_topic; PRISM_INVALID_ARGUMENT: a bad topic. */
  prism_status_t (*subscribe)(prism_host_t *host, uint64_t session, prism_bytes_t topic);
  prism_status_t (*unsubscribe)(prism_host_t *host, uint64_t session, prism_bytes_t topic);

  /* Sends `payload` to every subscriber of `topic`: each subscribed session receives a
   * push (reliable, ordered) carrying the topic and packet id range start + method; each
   * subscribed plugin version a PRISM_EVENT_TOPIC_MESSAGE. Messages one caller publishes
   * to one topic arrive in the order published. */
  prism_status_t (*publish)(prism_host_t *host, prism_bytes_t topic, uint32_t method,
                            prism_bytes_t payload);

  /* Starts a timer on the calling worker (on worker 0 when called outside a worker, from
   * init for instance): PRISM_EVENT_TIMER after `after_ms`, then every `repeat_ms` until
   * stopped when repeat_ms > 0. `user` is handed back in the event. Writes the timer's id
   * (never 0) to `*timer_id`. A version's timers stop when it is replaced or unloaded. */
  prism_status_t (*timer_start)(prism_host_t *host, uint64_t after_ms, uint64_t repeat_ms,
                                void *user, uint64_t *timer_id);
  /* Stops a timer of this plugin version; a one-shot that already fired is NOT_FOUND. */
  prism_status_t (*timer_stop)(prism_host_t *host, uint64_t timer_id);

  /* ---- ABI 1.2, later: check PRISM_HAS_FIELD(api, prism_host_api_t, push_topic). push
   * with a topic: the session alone receives it as a message of `topic` (a UDP client in
   * the push's topic field, a WebSocket on that channel, which it must have joined, else
   * PRISM_NOT_FOUND). For what one client should hear on one channel: a join's state,
   * a presence snapshot. An empty topic is push. */
  prism_status_t (*push_topic)(prism_host_t *host, uint64_t session, prism_bytes_t topic,
                               uint32_t method, uint32_t delivery, prism_bytes_t payload);

  /* publish to every subscriber but the session `except` (Phoenix's broadcast_from: the
   * member who sent a change hears it in its reply, the others as a message). Check
   * PRISM_HAS_FIELD(api, prism_host_api_t, publish_except); 0 excepts no one. */
  prism_status_t (*publish_except)(prism_host_t *host, prism_bytes_t topic, uint64_t except,
                                   uint32_t method, prism_bytes_t payload);

  /* store_apply with the size of one prism_write_t as the caller built it
   * (sizeof(prism_write_t)), so the struct can grow. A write_size below the ABI 1.1
   * layout completes PRISM_INVALID_ARGUMENT; bytes beyond the host's own layout are
   * ignored. */
  void (*store_apply_sized)(prism_host_t *host, const prism_write_t *writes, size_t count,
                            size_t write_size, prism_store_done_fn done, void *user);

  /* Ends a session's membership of `topic` from the service's side (check
   * PRISM_HAS_FIELD(api, prism_host_api_t, end_channel)): it is unsubscribed and, on a
   * WebSocket that joined the channel, the gateway sends phx_error with `reason` when
   * `rejoin` is nonzero (what Phoenix sends when a channel crashes: the stock client
   * rejoins, after 1, 2, 5, then every 10 s) or phx_close when it is zero (the channel is
   * gone for good: the client stops). A UDP session is only unsubscribed. For state that
   * went away under its members: an instance that failed, stopped or was deleted. */
  prism_status_t (*end_channel)(prism_host_t *host, uint64_t session, prism_bytes_t topic,
                                prism_bytes_t reason, int rejoin);

  /* ---- ABI 1.2, later: the cluster (see "Across a cluster" above); check
   * PRISM_HAS_FIELD(api, prism_host_api_t, lease_release).
   *
   * Takes or keeps the lease `name` (1..PRISM_MAX_TOPIC_LEN bytes of 0x21-0x7e) for this
   * node: completes PRISM_OK when this node holds it (kept by its heartbeat until
   * lease_release, or until the node dies or is cut off for longer than the cluster's
   * TTL: PRISM_EVENT_LEASE_LOST), PRISM_CONFLICT when another live node does (`message`
   * is that node's id, for forward), PRISM_UNAVAILABLE when the cluster's Redis does not
   * answer. A node that is not in a cluster holds every lease. Leases are the service's,
   * not the version's: a reload keeps them. The completion runs like a storage call's. */
  void (*lease)(prism_host_t *host, prism_bytes_t name, prism_store_done_fn done, void *user);
  /* Gives the lease up (no-op when not held). */
  prism_status_t (*lease_release)(prism_host_t *host, prism_bytes_t name);
  /* Hands `request` to this service on node `node` (a lease holder's id): PRISM_OK, and
   * the request is the host's now: it is answered with that node's answer, or
   * PRISM_UNAVAILABLE when the node does not answer or leaves. Any other status leaves
   * the request with the caller: PRISM_UNAVAILABLE (no cluster, Redis unreachable),
   * PRISM_INVALID_ARGUMENT (a bad `what`, or `node` is this node). */
  prism_status_t (*forward)(prism_host_t *host, prism_request_t *request, prism_bytes_t node,
                            const prism_forward_t *what);
} prism_host_api_t;

/* ---- The plugin descriptor -------------------------------------------------------- */

/* The plugin's handlers may run on several worker threads at once. Without it the
 * host serialises every call into the plugin. */
#define PRISM_PLUGIN_CONCURRENT (1u << 0)

typedef struct prism_plugin_descriptor {
  uint32_t struct_size; /* sizeof(prism_plugin_descriptor_t) when built */
  uint16_t abi_version_major; /* PRISM_ABI_VERSION_MAJOR when built */
  uint16_t abi_version_minor; /* PRISM_ABI_VERSION_MINOR when built */

  const char *name;    /* service name, [a-z0-9_-]{1,32}; owned by the plugin, static */
  const char *version; /* semantic version "MAJOR.MINOR.PATCH"; owned by the plugin, static */

  /* The packet ids requested: [packet_id_first, packet_id_first + packet_id_count).
   * Ids below PRISM_FIRST_PLUGIN_PACKET_ID belong to the host; ranges of loaded plugins
   * never overlap. */
  uint32_t packet_id_first;
  uint32_t packet_id_count;

  uint32_t flags; /* PRISM_PLUGIN_* */

  const prism_method_t *methods; /* owned by the plugin, static; may be NULL */
  size_t method_count;            /* elements of method_size bytes each (below) */

  /* Creates the plugin's instance. `config` is the plugin's settings document (YAML
   * text, may be empty), owned by the host and valid until init returns. On failure
   * return a status other than PRISM_OK and write a NUL-terminated reason of at most
   * `error_len` bytes into `error`; the plugin is refused and shutdown is not called. */
  prism_status_t (*init)(const prism_host_api_t *api, prism_host_t *host, prism_bytes_t config,
                         void **instance, char *error, size_t error_len);

  /* Handles one request for method `method` (relative id, see prism_method_t).
   * `payload` is owned by the host and valid until handle returns; copy to keep.
   * Return PRISM_OK after replying, or when the plugin will reply later through
   * api->reply. Any other status means the plugin has not replied and never will:
   * the host answers with that status and the request handle is invalid. */
  prism_status_t (*handle)(void *instance, prism_request_t *request, uint32_t method,
                           prism_bytes_t payload);

  /* Optional (may be NULL): a session opened or closed (every session, whatever service
   * it uses), and, from ABI 1.2, the plugin's topic messages and timers. */
  void (*on_event)(void *instance, const prism_event_t *event);

  /* Optional (may be NULL): state handed to the next version on hot reload. `*state`
   * is owned by the plugin and must stay valid until the next call into the plugin.
   * The host calls it once no other callback of this version is running. */
  prism_status_t (*snapshot)(void *instance, prism_bytes_t *state);

  /* Optional (may be NULL): receives the previous version's snapshot, owned by the host
   * and valid until restore returns. A status other than PRISM_OK fails the reload: the
   * new version is shut down and the previous one keeps serving. */
  prism_status_t (*restore)(void *instance, prism_bytes_t state);

  /* Releases the instance. Called once, after the last request has been answered. */
  void (*shutdown)(void *instance);

  /* ---- ABI 1.2: sizeof(prism_method_t) when built; the host steps through `methods` by
   * it. 0, or a descriptor that ends before it: the ABI 1.0 layout. */
  uint32_t method_size;

  /* ---- ABI 1.2: the Phoenix channel topics this plugin serves on the WebSocket gateway
   * (see "Channels" above): a NULL-terminated array of at most PRISM_MAX_CHANNEL_TOPICS
   * patterns, owned by the plugin, static; NULL for none. Each pattern is a topic
   * (1..PRISM_MAX_TOPIC_LEN bytes of 0x21-0x7e) that may end in '*'. */
  const char *const *channel_topics;

  /* Required when channel_topics is set: one JOIN, EVENT or LEAVE on those topics, with
   * the same contract as handle (answer `request` exactly once through reply; a status
   * other than PRISM_OK returned without replying is sent as the answer). */
  prism_status_t (*channel)(void *instance, prism_request_t *request,
                            const prism_channel_message_t *message);
} prism_plugin_descriptor_t;

/* ---- The entry symbol --------------------------------------------------------------- */

#define PRISM_PLUGIN_ENTRY_SYMBOL "prism_plugin_entry"

/* Returns the plugin's descriptor, owned by the plugin and static for the life of the
 * loaded file. Called once, before init. */
typedef const prism_plugin_descriptor_t *(*prism_plugin_entry_fn)(void);

PRISM_EXPORT const prism_plugin_descriptor_t *prism_plugin_entry(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PRISM_PLUGIN_H */
