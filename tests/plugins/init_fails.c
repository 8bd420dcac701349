/* A plugin whose init refuses to start, as one whose database is down would: the loader
 * must refuse it with the reason written here, and never call shutdown. */
#include <string.h>

#include "stub_plugin.h"

static prism_status_t init_fails_init(const prism_host_api_t *api, prism_host_t *host,
                                      prism_bytes_t config, void **instance, char *error,
                                      size_t error_len) {
  static const char reason[] = "database unreachable";
  size_t n = sizeof reason - 1;
  (void)api;
  (void)host;
  (void)config;
  *instance = NULL;
  if (error != NULL && error_len > 0) {
    if (n >= error_len) n = error_len - 1;
    memcpy(error, reason, n);
    error[n] = '\0';
  }
  return PRISM_INTERNAL;
}

static const prism_plugin_descriptor_t descriptor = {
    .struct_size = sizeof(prism_plugin_descriptor_t),
    .abi_version_major = PRISM_ABI_VERSION_MAJOR,
    .abi_version_minor = PRISM_ABI_VERSION_MINOR,
    .name = "initfails",
    .version = "1.0.0",
    .packet_id_first = 920,
    .packet_id_count = 10,
    .flags = PRISM_PLUGIN_CONCURRENT,
    .methods = stub_methods,
    .method_count = 1,
    .init = init_fails_init,
    .handle = stub_handle,
    .shutdown = stub_shutdown,
};

const prism_plugin_descriptor_t *prism_plugin_entry(void) { return &descriptor; }
