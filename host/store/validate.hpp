// Argument checks every storage backend applies the same way (backend.hpp's limits), so
// that sqlite, redis and postgres refuse exactly the same calls with kInvalidArgument.
// Each returns an ok Status or kInvalidArgument whose message names the argument.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/backend.hpp"

namespace prism::store {

// A name (collection, key, counter, board, owner): 1..kMaxNameSize bytes, no NUL.
// `what` names the argument in the message, e.g. "collection".
Status check_name(std::string_view what, std::string_view name);
// A prefix or a list cursor (list's prefix/after): like a name but may be empty.
Status check_prefix(std::string_view what, std::string_view prefix);
Status check_value(std::string_view value);        // ≤ kMaxValueSize
Status check_metadata(std::string_view metadata);  // ≤ kMaxMetadataSize
Status check_status(std::string_view status);      // ≤ kMaxStatusSize (presence status/prefix)
Status check_limit(uint32_t limit);                // 1..kMaxListLimit
Status check_ttl(std::chrono::milliseconds ttl);   // > 0
Status check_spec(const BoardSpec& spec);          // board name, known order and operator
Status check_entry(const Entry& entry);            // owner name and metadata size
// One write of an apply() batch, per its kind (an unknown kind is invalid).
Status check_write(const Write& write);
// Every write of a batch; the first invalid one's status, through batch_error.
Status check_batch(const std::vector<Write>& writes);

// The status of a batch that failed at writes[index]: same code, the message prefixed
// "write <index>: " so every backend reports the failing op the same way.
Status batch_error(size_t index, Status status);

}  // namespace prism::store
