/* Callbacks shared by the loader-test plugins that exist to be refused or inspected
 * (wrong_abi, overlap, init_fails): an instance-less plugin that answers every request
 * with an empty OK. Each including file defines its own descriptor. */
#ifndef PRISM_TEST_STUB_PLUGIN_H
#define PRISM_TEST_STUB_PLUGIN_H

#include <prism/plugin.h>

static inline prism_status_t stub_init(const prism_host_api_t *api, prism_host_t *host,
                                       prism_bytes_t config, void **instance, char *error,
                                       size_t error_len) {
  (void)host;
  (void)config;
  (void)error;
  (void)error_len;
  *instance = (void *)api; /* the table outlives the instance; nothing to allocate */
  return PRISM_OK;
}

static inline prism_status_t stub_handle(void *instance, prism_request_t *request, uint32_t method,
                                         prism_bytes_t payload) {
  const prism_host_api_t *api = instance;
  prism_bytes_t empty = {NULL, 0};
  (void)method;
  (void)payload;
  api->reply(request, PRISM_OK, "OK", empty);
  return PRISM_OK;
}

static inline void stub_shutdown(void *instance) { (void)instance; }

static const prism_method_t stub_methods[] = {{"ping", 0}};

#endif /* PRISM_TEST_STUB_PLUGIN_H */
