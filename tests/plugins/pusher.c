/* pusher: exercises ABI 1.2 (push, topics, timers, events) from plain C11 against
 * plugin.h alone, for tests/integration/push_test.cpp. Range 6000-6019. Methods
 * (payloads are text):
 *   0 push_me     "TEXT"            pushes TEXT back (method 10), then replies OK
 *   1 subscribe   "TOPIC"           subscribes the caller; replies with subscribe's status
 *   2 unsubscribe "TOPIC"
 *   3 publish     "TOPIC TEXT"      publishes TEXT to TOPIC (method 11)
 *   4 ticks       "AFTER REPEAT N"  a timer that pushes "tick K" (method 12) to the caller
 *                                   N times, then stops itself; replies with the timer id
 *   5 watch       "TOPIC"           subscribes the plugin itself; each message then
 *                                   reaches the caller as "saw TOPIC TEXT" (method 13)
 *   6 whoami      ""                the caller's session id, decimal
 *   7 push_to     "SESSION TEXT"    pushes TEXT to another session (method 10)
 *   8 events      ""                "opened=N closed=M last=REASON"
 *   9 push_big    "BYTES DELIVERY COUNT"  pushes COUNT messages of BYTES bytes to the
 *                                   caller in this one call, each starting with its number
 *                                   ("7 xxxx..."); replies with the last push's status
 *  14 push_on     "TOPIC TEXT"      push_topic: TEXT to the caller alone as a message of
 *                                   TOPIC (method 10); replies with its status
 * Channels (ABI 1.2): serves "push:*" and "@pusher-*" (every topic of a socket opened at
 * /socket/pusher-<n>/websocket, seen as "@pusher-<n>/TOPIC"), and the HTTP route
 * "/pusher/" + anything: it answers {"method","path","connect","body"} (the body must be JSON),
 * or NOT_FOUND "no such thing" for /pusher/missing. A JOIN of "push:closed" is refused ("room is
 * closed"); any other JOIN answers {"joined":"TOPIC"}; an EVENT "echo" answers its payload,
 * "push_me" pushes the payload to the socket (push, method 10) and "push_here" on this
 * channel only (push_topic), each answering the push's status as {"status":N}; any other
 * event is refused NOT_FOUND ("no event NAME"); a LEAVE answers OK.
 * Not concurrent: the host serialises every call, timers and events included. */
#include <prism/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ticker {
  uint64_t session;
  unsigned left;
  unsigned sent;
} ticker_t;

typedef struct pusher {
  const prism_host_api_t *api;
  prism_host_t *host;
  uint64_t watcher; /* the session that asked to see the plugin's topic messages */
  unsigned opened, closed;
  char last_reason[128];
} pusher_t;

static const prism_method_t methods[] = {
    {"push_me", 0}, {"subscribe", 1}, {"unsubscribe", 2}, {"publish", 3}, {"ticks", 4},
    {"watch", 5},   {"whoami", 6},    {"push_to", 7},     {"events", 8},  {"push_big", 9},
    {"push_on", 14}};

static prism_bytes_t text_bytes(const char *s, size_t n) {
  prism_bytes_t b;
  b.data = (const uint8_t *)s;
  b.len = n;
  return b;
}

static prism_status_t reply_text(pusher_t *self, prism_request_t *request, prism_status_t status,
                                 const char *text) {
  self->api->reply(request, status, "", text_bytes(text, strlen(text)));
  return PRISM_OK;
}

static prism_status_t reply_with(pusher_t *self, prism_request_t *request, prism_status_t status,
                                 const char *message, const char *payload, size_t len) {
  self->api->reply(request, status, message, text_bytes(payload, len));
  return PRISM_OK;
}

static prism_status_t pusher_init(const prism_host_api_t *api, prism_host_t *host,
                                  prism_bytes_t config, void **instance, char *error,
                                  size_t error_len) {
  pusher_t *self;
  (void)config;
  if (!PRISM_HAS_FIELD(api, prism_host_api_t, timer_stop)) {
    if (error_len > 0) {
      strncpy(error, "host has no ABI 1.2 real-time calls", error_len - 1);
      error[error_len - 1] = '\0';
    }
    return PRISM_UNAVAILABLE;
  }
  self = calloc(1, sizeof *self);
  if (self == NULL) return PRISM_INTERNAL;
  self->api = api;
  self->host = host;
  *instance = self;
  return PRISM_OK;
}

static prism_status_t pusher_handle(void *instance, prism_request_t *request, uint32_t method,
                                    prism_bytes_t payload) {
  pusher_t *self = instance;
  const prism_host_api_t *api = self->api;
  const uint64_t session = api->request_session(request);
  char text[256];
  char out[256];
  const char *space;
  size_t n = payload.len < sizeof text - 1 ? payload.len : sizeof text - 1;
  memcpy(text, payload.data, n);
  text[n] = '\0';
  space = strchr(text, ' ');
  switch (method) {
    case 0:
      api->push(self->host, session, 10, PRISM_DELIVERY_RELIABLE_ORDERED, payload);
      return reply_text(self, request, PRISM_OK, "");
    case 1:
      return reply_text(self, request, api->subscribe(self->host, session, text_bytes(text, n)), "");
    case 2:
      return reply_text(self, request, api->unsubscribe(self->host, session, text_bytes(text, n)), "");
    case 3:
      if (space == NULL) return PRISM_INVALID_ARGUMENT;
      return reply_text(self, request,
                        api->publish(self->host, text_bytes(text, (size_t)(space - text)), 11,
                                     text_bytes(space + 1, strlen(space + 1))),
                        "");
    case 4: {
      unsigned long after = 0, repeat = 0, count = 0;
      uint64_t id = 0;
      ticker_t *t;
      prism_status_t status;
      if (sscanf(text, "%lu %lu %lu", &after, &repeat, &count) != 3 || count == 0) {
        return PRISM_INVALID_ARGUMENT;
      }
      t = calloc(1, sizeof *t);
      if (t == NULL) return PRISM_INTERNAL;
      t->session = session;
      t->left = (unsigned)count;
      status = api->timer_start(self->host, after, repeat, t, &id);
      if (status != PRISM_OK) free(t);
      snprintf(out, sizeof out, "%llu", (unsigned long long)id);
      return reply_text(self, request, status, out);
    }
    case 5:
      self->watcher = session;
      return reply_text(self, request,
                        api->subscribe(self->host, PRISM_SESSION_PLUGIN, text_bytes(text, n)), "");
    case 6:
      snprintf(out, sizeof out, "%llu", (unsigned long long)session);
      return reply_text(self, request, PRISM_OK, out);
    case 7: {
      unsigned long long target = 0;
      if (space == NULL || sscanf(text, "%llu", &target) != 1) return PRISM_INVALID_ARGUMENT;
      return reply_text(self, request,
                        api->push(self->host, target, 10, PRISM_DELIVERY_RELIABLE_ORDERED,
                                  text_bytes(space + 1, strlen(space + 1))),
                        "");
    }
    case 8:
      snprintf(out, sizeof out, "opened=%u closed=%u last=%s", self->opened, self->closed,
               self->last_reason);
      return reply_text(self, request, PRISM_OK, out);
    case 9: {
      unsigned long size = 0, delivery = 0, count = 0, i;
      char *big;
      prism_status_t status = PRISM_OK;
      if (sscanf(text, "%lu %lu %lu", &size, &delivery, &count) != 3 || size < 16) {
        return PRISM_INVALID_ARGUMENT;
      }
      big = malloc(size + 1);
      if (big == NULL) return PRISM_INTERNAL;
      memset(big, 'x', size);
      for (i = 1; i <= count; ++i) {
        int n = snprintf(big, 16, "%lu ", i);
        big[n] = 'x'; /* snprintf's NUL */
        status = api->push(self->host, session, 10, (uint32_t)delivery, text_bytes(big, size));
      }
      free(big);
      snprintf(out, sizeof out, "%d", (int)status);
      return reply_text(self, request, PRISM_OK, out);
    }
    case 14: {
      if (space == NULL) return PRISM_INVALID_ARGUMENT;
      snprintf(out, sizeof out, "%d",
               (int)api->push_topic(self->host, session, text_bytes(text, (size_t)(space - text)),
                                    10, PRISM_DELIVERY_RELIABLE_ORDERED,
                                    text_bytes(space + 1, strlen(space + 1))));
      return reply_text(self, request, PRISM_OK, out);
    }
    default:
      return PRISM_INVALID_PACKET;
  }
}

static void pusher_on_event(void *instance, const prism_event_t *event) {
  pusher_t *self = instance;
  const prism_host_api_t *api = self->api;
  char out[512];
  switch (event->type) {
    case PRISM_EVENT_SESSION_OPENED:
      ++self->opened;
      break;
    case PRISM_EVENT_SESSION_CLOSED:
      ++self->closed;
      strncpy(self->last_reason, event->reason, sizeof self->last_reason - 1);
      break;
    case PRISM_EVENT_TIMER: {
      ticker_t *t = event->timer_user;
      int n = snprintf(out, sizeof out, "tick %u", ++t->sent);
      api->push(self->host, t->session, 12, PRISM_DELIVERY_RELIABLE_ORDERED,
                text_bytes(out, (size_t)n));
      if (--t->left == 0) {
        api->timer_stop(self->host, event->timer_id); /* NOT_FOUND for a one-shot: fine */
        free(t);
      }
      break;
    }
    case PRISM_EVENT_TOPIC_MESSAGE: {
      int n = snprintf(out, sizeof out, "saw %.*s %.*s", (int)event->topic.len,
                       (const char *)event->topic.data, (int)event->payload.len,
                       (const char *)event->payload.data);
      if (self->watcher != 0) {
        api->push(self->host, self->watcher, 13, PRISM_DELIVERY_RELIABLE_ORDERED,
                  text_bytes(out, (size_t)n));
      }
      break;
    }
    default:
      break;
  }
}

static prism_status_t pusher_channel(void *instance, prism_request_t *request,
                                     const prism_channel_message_t *message) {
  pusher_t *self = instance;
  char out[300];
  const int topic_len = (int)message->topic.len;
  const char *topic = (const char *)message->topic.data;
  if (message->kind == PRISM_CHANNEL_JOIN) {
    if (message->topic.len == 11 && memcmp(topic, "push:closed", 11) == 0) {
      return reply_with(self, request, PRISM_CONFLICT, "room is closed", NULL, 0);
    }
    snprintf(out, sizeof out, "{\"joined\":\"%.*s\"}", topic_len, topic);
    return reply_with(self, request, PRISM_OK, "", out, strlen(out));
  }
  if (message->kind == PRISM_CHANNEL_HTTP) {
    /* /pusher/missing: NOT_FOUND; anything else: what came, the body as JSON. */
    char *echo;
    size_t n;
    prism_status_t status;
    if (message->topic.len == 15 && memcmp(topic, "/pusher/missing", 15) == 0) {
      return reply_with(self, request, PRISM_NOT_FOUND, "no such thing", NULL, 0);
    }
    n = message->topic.len + message->event.len + message->connect.len + message->payload.len + 64;
    echo = malloc(n);
    if (echo == NULL) return PRISM_INTERNAL;
    snprintf(echo, n, "{\"method\":\"%.*s\",\"path\":\"%.*s\",\"connect\":%.*s,\"body\":%.*s}",
             (int)message->event.len, (const char *)message->event.data, topic_len, topic,
             (int)message->connect.len, (const char *)message->connect.data,
             (int)message->payload.len, (const char *)message->payload.data);
    status = reply_with(self, request, PRISM_OK, "", echo, strlen(echo));
    free(echo);
    return status;
  }
  if (message->kind == PRISM_CHANNEL_EVENT) {
    if (message->event.len == 4 && memcmp(message->event.data, "echo", 4) == 0) {
      return reply_with(self, request, PRISM_OK, "", (const char *)message->payload.data,
                        message->payload.len);
    }
    if ((message->event.len == 7 && memcmp(message->event.data, "push_me", 7) == 0) ||
        (message->event.len == 9 && memcmp(message->event.data, "push_here", 9) == 0)) {
      const uint64_t session = self->api->request_session(request);
      const prism_bytes_t none = {NULL, 0};
      const prism_status_t pushed = self->api->push_topic(
          self->host, session, message->event.len == 9 ? message->topic : none, 10,
          PRISM_DELIVERY_RELIABLE_ORDERED, message->payload);
      snprintf(out, sizeof out, "{\"status\":%d}", (int)pushed);
      return reply_with(self, request, PRISM_OK, "", out, strlen(out));
    }
    snprintf(out, sizeof out, "no event %.*s", (int)message->event.len,
             (const char *)message->event.data);
    return reply_with(self, request, PRISM_NOT_FOUND, out, NULL, 0);
  }
  return reply_with(self, request, PRISM_OK, "", NULL, 0);
}

static void pusher_shutdown(void *instance) { free(instance); }

/* "@pusher-*": the topics of sockets opened at /socket/pusher-<n>/websocket (protocol.md
 * §7.2, socket-scoped topics). */
static const char *const pusher_topics[] = {"push:*", "@pusher-*", "/pusher/*", NULL};

static const prism_plugin_descriptor_t descriptor = {
    .struct_size = sizeof(prism_plugin_descriptor_t),
    .abi_version_major = PRISM_ABI_VERSION_MAJOR,
    .abi_version_minor = PRISM_ABI_VERSION_MINOR,
    .name = "pusher",
    .version = "1.0.0",
    .packet_id_first = 6000,
    .packet_id_count = 20,
    .flags = 0,
    .methods = methods,
    .method_count = sizeof methods / sizeof methods[0],
    .init = pusher_init,
    .handle = pusher_handle,
    .on_event = pusher_on_event,
    .shutdown = pusher_shutdown,
    .method_size = sizeof(prism_method_t),
    .channel_topics = pusher_topics,
    .channel = pusher_channel,
};

const prism_plugin_descriptor_t *prism_plugin_entry(void) { return &descriptor; }
