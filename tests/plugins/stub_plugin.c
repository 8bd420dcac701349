/* One source for the loader-test plugins that exist to be refused or inspected: an
 * instance-less plugin that answers every request with an empty OK. Each build
 * (tests/plugins/CMakeLists.txt) defines what makes it what it is:
 *   STUB_NAME        the service name (wrongabi, overlap, initfails, admin)
 *   STUB_FIRST       its first packet id; ten ids from there
 *   STUB_ABI_MAJOR   the ABI major it claims (default: this header's)
 *   STUB_ABI_MINOR   the ABI minor it claims (default: this header's); 0 also makes the
 *                    descriptor as short as ABI 1.0's (it ends at shutdown)
 *   STUB_METHOD_SIZE its methods are laid out this many bytes apart (a newer header's
 *                    larger prism_method_t), and method_size says so
 *   STUB_CLAIM_METHOD_SIZE  method_size says this, the methods being the usual ones
 *   STUB_CHANNEL     serves this channel topic pattern (answering every message OK)
 *   STUB_CHANNEL_NO_CALLBACK  declares STUB_CHANNEL but has no channel callback
 *   STUB_INIT_FAILS  init refuses to start with "database unreachable", as a plugin
 *                    whose database is down would, and shutdown is never called
 * Strict C11 against plugin.h alone. */
#include <prism/plugin.h>
#include <stddef.h>
#include <string.h>

#ifndef STUB_ABI_MAJOR
#define STUB_ABI_MAJOR PRISM_ABI_VERSION_MAJOR
#endif
#ifndef STUB_ABI_MINOR
#define STUB_ABI_MINOR PRISM_ABI_VERSION_MINOR
#endif

static prism_status_t stub_init(const prism_host_api_t *api, prism_host_t *host,
                                prism_bytes_t config, void **instance, char *error,
                                size_t error_len) {
  (void)host;
  (void)config;
#ifdef STUB_INIT_FAILS
  {
    static const char reason[] = "database unreachable";
    size_t n = sizeof reason - 1;
    (void)api;
    *instance = NULL;
    if (error != NULL && error_len > 0) {
      if (n >= error_len) n = error_len - 1;
      memcpy(error, reason, n);
      error[n] = '\0';
    }
    return PRISM_INTERNAL;
  }
#else
  (void)error;
  (void)error_len;
  *instance = (void *)api; /* the table outlives the instance; nothing to allocate */
  return PRISM_OK;
#endif
}

static prism_status_t stub_handle(void *instance, prism_request_t *request, uint32_t method,
                                  prism_bytes_t payload) {
  const prism_host_api_t *api = instance;
  prism_bytes_t empty = {NULL, 0};
  (void)method;
  (void)payload;
  api->reply(request, PRISM_OK, "OK", empty);
  return PRISM_OK;
}

static void stub_shutdown(void *instance) { (void)instance; }

#ifdef STUB_CHANNEL
static const char *const stub_topics[] = {STUB_CHANNEL, NULL};
#endif
#if defined(STUB_CHANNEL) && !defined(STUB_CHANNEL_NO_CALLBACK)
static prism_status_t stub_channel(void *instance, prism_request_t *request,
                                   const prism_channel_message_t *message) {
  const prism_host_api_t *api = instance;
  prism_bytes_t empty = {NULL, 0};
  (void)message;
  api->reply(request, PRISM_OK, "OK", empty);
  return PRISM_OK;
}
#endif

#ifdef STUB_METHOD_SIZE
/* A method as a later minor might lay it out: 1.0's fields, then more. */
typedef struct wide_method {
  prism_method_t method;
  unsigned char later[STUB_METHOD_SIZE - sizeof(prism_method_t)];
} wide_method_t;
static const wide_method_t stub_wide_methods[] = {{{"ping", 0}, {0}}, {{"pong", 1}, {0}}};
#define STUB_METHODS (&stub_wide_methods[0].method)
#define STUB_METHOD_COUNT 2
#else
static const prism_method_t stub_methods[] = {{"ping", 0}};
#define STUB_METHODS stub_methods
#define STUB_METHOD_COUNT 1
#endif

#if STUB_ABI_MINOR == 0
/* An ABI 1.0 build knew no field after shutdown. */
#define STUB_DESCRIPTOR_SIZE \
  (offsetof(prism_plugin_descriptor_t, shutdown) + sizeof(void (*)(void *)))
#else
#define STUB_DESCRIPTOR_SIZE sizeof(prism_plugin_descriptor_t)
#endif

static const prism_plugin_descriptor_t descriptor = {
    .struct_size = STUB_DESCRIPTOR_SIZE,
    .abi_version_major = STUB_ABI_MAJOR,
    .abi_version_minor = STUB_ABI_MINOR,
    .name = STUB_NAME,
    .version = "1.0.0",
    .packet_id_first = STUB_FIRST,
    .packet_id_count = 10,
    .flags = PRISM_PLUGIN_CONCURRENT,
    .methods = STUB_METHODS,
    .method_count = STUB_METHOD_COUNT,
    .init = stub_init,
    .handle = stub_handle,
    .shutdown = stub_shutdown,
#if defined(STUB_METHOD_SIZE)
    .method_size = STUB_METHOD_SIZE,
#elif defined(STUB_CLAIM_METHOD_SIZE)
    .method_size = STUB_CLAIM_METHOD_SIZE,
#endif
#ifdef STUB_CHANNEL
    .channel_topics = stub_topics,
#ifndef STUB_CHANNEL_NO_CALLBACK
    .channel = stub_channel,
#endif
#endif
};

const prism_plugin_descriptor_t *prism_plugin_entry(void) { return &descriptor; }
