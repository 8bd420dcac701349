/* A C plugin that holds requests instead of answering them at once, so the dispatch
 * tests can exercise late replies, deadlines and replies after a timeout.
 * Service "deferred", packet ids 950-959. Not concurrent: the host serialises it. */
#include <prism/plugin.h>
#include <stdio.h>
#include <string.h>

#define MAX_HELD 16

static const prism_host_api_t *g_api;
static prism_request_t *g_held[MAX_HELD];
static size_t g_held_count;
static prism_host_t *g_host;
static prism_status_t g_last_status;

static prism_status_t deferred_init(const prism_host_api_t *api, prism_host_t *host,
                                    prism_bytes_t config, void **instance, char *error,
                                    size_t error_len) {
  (void)config; (void)error; (void)error_len;
  g_api = api;
  g_host = host;
  g_held_count = 0;
  *instance = &g_held_count;
  return PRISM_OK;
}

static prism_status_t deferred_handle(void *instance, prism_request_t *request, uint32_t method,
                                      prism_bytes_t payload) {
  (void)instance; (void)payload;
  prism_bytes_t none = {NULL, 0};
  switch (method) {
    case 0: /* hold: answer later */
      if (g_held_count == MAX_HELD) return PRISM_UNAVAILABLE;
      g_held[g_held_count++] = request;
      return PRISM_OK;
    case 1: { /* release: answer every held request, then this one with the count */
      size_t i;
      prism_status_t late = PRISM_OK;
      static const char released[] = "released";
      prism_bytes_t text = {(const uint8_t *)released, sizeof released - 1};
      for (i = 0; i < g_held_count; ++i) {
        prism_status_t s = g_api->reply(g_held[i], PRISM_OK, NULL, text);
        if (s != PRISM_OK) late = s;
      }
      g_held_count = 0;
      /* Tells the test what the host said to the late replies (PRISM_TIMEOUT after expiry). */
      return g_api->reply(request, late, late == PRISM_OK ? NULL : "late", none) == PRISM_OK
                 ? PRISM_OK : PRISM_INTERNAL;
    }
    case 2: /* fail without replying */
      return PRISM_CONFLICT;
    case 3: /* reply twice: the second is refused */
      g_api->reply(request, PRISM_OK, NULL, none);
      return g_api->reply(request, PRISM_OK, NULL, none) == PRISM_INVALID_ARGUMENT
                 ? PRISM_OK : PRISM_INTERNAL;
    case 4: { /* too_big: a reply larger than any datagram; remembers what reply said */
      static uint8_t big[70000];
      prism_bytes_t payload = {big, sizeof big};
      g_last_status = g_api->reply(request, PRISM_OK, NULL, payload);
      return PRISM_OK;
    }
    case 5: { /* last_status: the status the previous too_big/bad_payload reply returned */
      char text[16];
      int n = snprintf(text, sizeof text, "%d", (int)g_last_status);
      prism_bytes_t payload = {(const uint8_t *)text, (size_t)n};
      g_api->reply(request, PRISM_OK, NULL, payload);
      return PRISM_OK;
    }
    case 6: { /* bad_payload: NULL data with a length */
      prism_bytes_t payload = {NULL, 5};
      g_last_status = g_api->reply(request, PRISM_OK, NULL, payload);
      return PRISM_OK;
    }
    case 7: /* reserved_counter: the host's own series are refused, others granted */
      return g_api->counter_register(g_host, "requests_total", "x") == NULL &&
                     g_api->counter_register(g_host, "held_total", "x") != NULL
                 ? (g_api->reply(request, PRISM_OK, NULL, none), PRISM_OK)
                 : PRISM_INTERNAL;
    default:
      return PRISM_INVALID_PACKET;
  }
}

static void deferred_shutdown(void *instance) {
  (void)instance;
}

static const prism_method_t kMethods[] = {
    {"hold", 0},    {"release", 1},     {"fail", 2},        {"reply_twice", 3},
    {"too_big", 4}, {"last_status", 5}, {"bad_payload", 6}, {"reserved_counter", 7}};

static const prism_plugin_descriptor_t kDescriptor = {
    sizeof(prism_plugin_descriptor_t),
    PRISM_ABI_VERSION_MAJOR,
    PRISM_ABI_VERSION_MINOR,
    "deferred",
    "1.0.0",
    950,
    10,
    0,
    kMethods,
    sizeof kMethods / sizeof kMethods[0],
    deferred_init,
    deferred_handle,
    NULL,
    NULL,
    NULL,
    deferred_shutdown,
    sizeof(prism_method_t),
    NULL,
    NULL,
};

PRISM_EXPORT const prism_plugin_descriptor_t *prism_plugin_entry(void) { return &kDescriptor; }
