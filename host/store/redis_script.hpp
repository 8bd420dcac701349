// The Lua script that gives the Redis backend its atomic operations (EVALSHA, loaded once
// per connection): documents with versions, the per-collection key index, leaderboards
// with exact 64-bit scores and tie rules, presence with expiry, and all-or-nothing batches.
#pragma once

#include <string_view>

namespace prism::store {

// ARGV[1] is the operation, ARGV[2] the key prefix, the rest the operation's arguments
// (see the comment above each operation in redis_script.cpp). A refused operation
// answers the error "PRISM <CODE> <write index> <message>" with CODE one of NOT_FOUND,
// CONFLICT, INVALID; anything else is an internal error.
extern const std::string_view kRedisStoreScript;

}  // namespace prism::store
