// The storage half of the host function table (plugin.h ABI 1.1): plugins reach the
// storage facade (host/store) only through these entries.
#pragma once

#include "prism/plugin.h"
#include "store/store.hpp"

namespace prism::plugins {

// The backends plugins use; set by prismd before plugins load (null: every storage call
// completes UNAVAILABLE). The facets must outlive every plugin.
void set_store(const store::Facets* facets);

// Fills the storage entries of `api`.
void add_store_api(prism_host_api_t& api);

}  // namespace prism::plugins
