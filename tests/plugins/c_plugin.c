/* cplug: a plugin written in plain C11 against prism/plugin.h alone, built with -std=c11
 * -pedantic, to prove the ABI header compiles as C and that a C plugin is served. */
#include <prism/plugin.h>
#include <stdlib.h>
#include <string.h>

/* The instance: the host's table and handle, both valid until shutdown returns. */
typedef struct cplug {
  const prism_host_api_t *api;
  prism_host_t *host;
} cplug_t;

static const prism_method_t cplug_methods[] = {{"hello", 0}, {"fail", 1}};

static void copy_error(const char *reason, char *error, size_t error_len) {
  size_t n;
  if (error == NULL || error_len == 0) return;
  n = strlen(reason);
  if (n >= error_len) n = error_len - 1;
  memcpy(error, reason, n);
  error[n] = '\0';
}

static prism_status_t cplug_init(const prism_host_api_t *api, prism_host_t *host,
                                 prism_bytes_t config, void **instance, char *error,
                                 size_t error_len) {
  cplug_t *self;
  (void)config;
  if (!PRISM_HAS_FIELD(api, prism_host_api_t, reply)) {
    copy_error("host table has no reply", error, error_len);
    return PRISM_INVALID_ARGUMENT;
  }
  self = malloc(sizeof *self);
  if (self == NULL) {
    copy_error("out of memory", error, error_len);
    return PRISM_INTERNAL;
  }
  self->api = api;
  self->host = host;
  *instance = self;
  return PRISM_OK;
}

static prism_status_t cplug_handle(void *instance, prism_request_t *request, uint32_t method,
                                   prism_bytes_t payload) {
  static const char hello[] = "hello from C";
  cplug_t *self = instance;
  prism_bytes_t reply;
  (void)payload;
  switch (method) {
    case 0:
      reply.data = (const uint8_t *)hello;
      reply.len = sizeof hello - 1;
      self->api->reply(request, PRISM_OK, "OK", reply);
      return PRISM_OK;
    case 1:
      return PRISM_NOT_FOUND; /* not replied: the host answers with this status */
    default:
      return PRISM_INVALID_PACKET;
  }
}

static void cplug_shutdown(void *instance) { free(instance); }

static const prism_plugin_descriptor_t cplug_descriptor = {
    .struct_size = sizeof(prism_plugin_descriptor_t),
    .abi_version_major = PRISM_ABI_VERSION_MAJOR,
    .abi_version_minor = PRISM_ABI_VERSION_MINOR,
    .name = "cplug",
    .version = "1.0.0",
    .packet_id_first = 900,
    .packet_id_count = 10,
    .flags = PRISM_PLUGIN_CONCURRENT,
    .methods = cplug_methods,
    .method_count = sizeof cplug_methods / sizeof cplug_methods[0],
    .init = cplug_init,
    .handle = cplug_handle,
    .shutdown = cplug_shutdown, /* on_event, snapshot, restore: NULL */
    .method_size = sizeof(prism_method_t),
};

const prism_plugin_descriptor_t *prism_plugin_entry(void) { return &cplug_descriptor; }
