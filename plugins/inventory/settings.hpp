// The inventory service's settings (plugins.d/inventory.yaml `settings:`, docs/inventory.md
// "Settings") and the fixed limits beside them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace prism::inventory {

// Fixed limits (docs/inventory.md "Limits").
inline constexpr size_t kMaxIdBytes = 64;                      // player_id, sku, op_id
inline constexpr int64_t kMaxQuantity = int64_t{1} << 53;      // per request and per stack
inline constexpr uint32_t kDefaultListLimit = 100;
inline constexpr uint32_t kMaxListLimit = 1000;
// The storage facade's limit on one document (plugin-api.md §5.9); a player's record
// must fit in it even when full.
inline constexpr size_t kMaxDocumentBytes = size_t{1} << 20;
// Worst-case protobuf bytes a stack costs in a PlayerRecord beside its metadata (sku of
// kMaxIdBytes, quantity, tags and lengths), and an op id in its history.
inline constexpr size_t kItemOverheadBytes = 96;
inline constexpr size_t kOpIdOverheadBytes = 72;

struct Settings {
  uint32_t max_items_per_player = 1000;  // distinct skus a player may hold
  uint32_t max_metadata_bytes = 512;     // one stack's metadata
  uint32_t op_retention = 1000;          // op ids remembered per player

  // The largest a player's record can grow to under these settings.
  size_t worst_case_record_bytes() const;
};

// Parses the YAML text the host hands to init: a flat mapping of the keys above to
// integers, in block (`key: 1` per line) or flow (`{key: 1, ...}`) style; empty text gives
// the defaults. Throws std::invalid_argument naming the key and the reason for an unknown
// key, a value that is not an integer or is out of range, or settings under which a full
// player's record would exceed kMaxDocumentBytes.
Settings parse_settings(std::string_view yaml);

}  // namespace prism::inventory
