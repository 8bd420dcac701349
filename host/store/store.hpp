// The storage facade prismd offers plugins (DESIGN.md §6): which backend serves each
// facet. A deployment may mix them, e.g. documents on postgres, leaderboards and
// presence on redis; the embedded default is sqlite for all four.
#pragma once

#include "store/backend.hpp"

namespace prism::store {

struct Facets {
  Backend* documents = nullptr;
  Backend* counters = nullptr;
  Backend* leaderboards = nullptr;
  Backend* presence = nullptr;
};

}  // namespace prism::store
