/* A plugin that calls itself "admin", the name LOGIN reserves for the admin service:
 * the loader must refuse it. */
#include "stub_plugin.h"

static const prism_plugin_descriptor_t descriptor = {
    .struct_size = sizeof(prism_plugin_descriptor_t),
    .abi_version_major = PRISM_ABI_VERSION_MAJOR,
    .abi_version_minor = PRISM_ABI_VERSION_MINOR,
    .name = "admin",
    .version = "1.0.0",
    .packet_id_first = 5000,
    .packet_id_count = 10,
    .flags = PRISM_PLUGIN_CONCURRENT,
    .methods = stub_methods,
    .method_count = 1,
    .init = stub_init,
    .handle = stub_handle,
    .shutdown = stub_shutdown,
};

const prism_plugin_descriptor_t *prism_plugin_entry(void) { return &descriptor; }
