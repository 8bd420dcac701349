/* A plugin whose method table gives two methods the same id: the loader refuses it. */
#include <prism/plugin.h>

static prism_status_t dup_init(const prism_host_api_t *api, prism_host_t *host,
                               prism_bytes_t config, void **instance, char *error,
                               size_t error_len) {
  (void)api; (void)host; (void)config; (void)error; (void)error_len;
  *instance = NULL;
  return PRISM_OK;
}

static prism_status_t dup_handle(void *instance, prism_request_t *request, uint32_t method,
                                 prism_bytes_t payload) {
  (void)instance; (void)request; (void)method; (void)payload;
  return PRISM_INTERNAL;
}

static const prism_method_t kMethods[] = {{"first", 0}, {"second", 0}};

static const prism_plugin_descriptor_t kDescriptor = {
    sizeof(prism_plugin_descriptor_t), PRISM_ABI_VERSION_MAJOR, PRISM_ABI_VERSION_MINOR,
    "dupmethod", "1.0.0", 960, 10, 0, kMethods, 2, dup_init, dup_handle,
    NULL, NULL, NULL, NULL, sizeof(prism_method_t), NULL, NULL};

PRISM_EXPORT const prism_plugin_descriptor_t *prism_plugin_entry(void) { return &kDescriptor; }
