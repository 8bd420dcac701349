// The inventory's rules in memory (ledger.hpp); docs/inventory.md states them for users.
#include "ledger.hpp"

#include <algorithm>

namespace prism::inventory {
namespace {

Refusal invalid(std::string message) { return {PRISM_INVALID_ARGUMENT, std::move(message)}; }
Refusal conflict(std::string message) { return {PRISM_CONFLICT, std::move(message)}; }

// Valid UTF-8 (no overlong forms, no surrogates) without control characters: ids become
// storage keys, which some backends keep as text.
bool is_clean_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    if (cp < 0xa0 && cp >= 0x80) return false;  // C1 control characters
    i += n + 1;
  }
  return true;
}

Outcome check_id(std::string_view field, std::string_view value) {
  if (value.empty()) return invalid(std::string(field) + ": missing (1.." +
                                    std::to_string(kMaxIdBytes) + " bytes)");
  if (value.size() > kMaxIdBytes) {
    return invalid(std::string(field) + ": " + std::to_string(value.size()) +
                   " bytes, more than " + std::to_string(kMaxIdBytes));
  }
  if (!is_clean_utf8(value)) {
    return invalid(std::string(field) + ": not UTF-8 text without control characters");
  }
  return std::nullopt;
}

Outcome check_op_id(std::string_view value) {
  if (value.empty()) return invalid("op_id: missing (every change needs an idempotency key)");
  return check_id("op_id", value);
}

Outcome check_quantity(int64_t quantity) {
  if (quantity <= 0) {
    return invalid("quantity: " + std::to_string(quantity) + " is not positive (1.." +
                   std::to_string(kMaxQuantity) + ")");
  }
  if (quantity > kMaxQuantity) {
    return invalid("quantity: " + std::to_string(quantity) + " is more than 2^53 (" +
                   std::to_string(kMaxQuantity) + ")");
  }
  return std::nullopt;
}

template <class... Checks>
Outcome first_refusal(Checks&&... checks) {
  Outcome out;
  // Left to right, stopping at the first refusal.
  ((out ? void() : void(out = checks())), ...);
  return out;
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// Index of the first stack whose sku is not less than `sku`.
int lower_bound_of(const v1::PlayerRecord& record, std::string_view sku) {
  const auto& items = record.items();
  const auto it = std::lower_bound(items.begin(), items.end(), sku,
                                   [](const v1::Item& item, std::string_view s) {
                                     return std::string_view(item.sku()) < s;
                                   });
  return static_cast<int>(it - items.begin());
}

v1::Item* find_mutable(v1::PlayerRecord& record, std::string_view sku) {
  const int i = lower_bound_of(record, sku);
  if (i < record.items_size() && record.items(i).sku() == sku) return record.mutable_items(i);
  return nullptr;
}

// A new stack at its sorted place.
v1::Item* insert_item(v1::PlayerRecord& record, std::string_view sku) {
  const int at = lower_bound_of(record, sku);
  v1::Item* item = record.add_items();
  item->set_sku(std::string(sku));
  for (int i = record.items_size() - 1; i > at; --i) record.mutable_items()->SwapElements(i, i - 1);
  return record.mutable_items(at);
}

void remove_item(v1::PlayerRecord& record, std::string_view sku) {
  const int i = lower_bound_of(record, sku);
  if (i < record.items_size() && record.items(i).sku() == sku) {
    record.mutable_items()->DeleteSubrange(i, 1);
  }
}

Outcome refuse_insufficient(std::string_view player, std::string_view sku, int64_t have,
                            int64_t need) {
  return conflict("insufficient quantity of sku " + quoted(sku) + " for player " +
                  quoted(player) + ": have " + std::to_string(have) + ", need " +
                  std::to_string(need));
}

// Whether `player` can receive `quantity` of `sku`: room for a new stack, no overflow.
Outcome check_receive(const v1::PlayerRecord& record, std::string_view player,
                      std::string_view sku, int64_t quantity, const Settings& settings) {
  const v1::Item* item = find_item(record, sku);
  if (item == nullptr) {
    if (static_cast<uint32_t>(record.items_size()) >= settings.max_items_per_player) {
      return conflict("inventory of player " + quoted(player) + " is full: " +
                      std::to_string(record.items_size()) +
                      " skus (max_items_per_player)");
    }
    return std::nullopt;
  }
  if (item->quantity() > kMaxQuantity - quantity) {
    return conflict("sku " + quoted(sku) + " of player " + quoted(player) +
                    " would exceed 2^53: have " + std::to_string(item->quantity()) + ", adding " +
                    std::to_string(quantity));
  }
  return std::nullopt;
}

}  // namespace

Outcome check(const v1::ListRequest& request) {
  return first_refusal([&] { return check_id("player_id", request.player_id()); },
                       [&]() -> Outcome {
                         if (request.after_sku().empty()) return std::nullopt;
                         return check_id("after_sku", request.after_sku());
                       },
                       [&]() -> Outcome {
                         if (request.limit() <= kMaxListLimit) return std::nullopt;
                         return invalid("limit: " + std::to_string(request.limit()) +
                                        " is more than " + std::to_string(kMaxListLimit));
                       });
}

Outcome check(const v1::GetRequest& request) {
  return first_refusal([&] { return check_id("player_id", request.player_id()); },
                       [&] { return check_id("sku", request.sku()); });
}

Outcome check(const v1::GrantRequest& request, const Settings& settings) {
  return first_refusal([&] { return check_op_id(request.op_id()); },
                       [&] { return check_id("player_id", request.player_id()); },
                       [&] { return check_id("sku", request.sku()); },
                       [&] { return check_quantity(request.quantity()); },
                       [&]() -> Outcome {
                         if (request.metadata().size() <= settings.max_metadata_bytes) {
                           return std::nullopt;
                         }
                         return invalid("metadata: " + std::to_string(request.metadata().size()) +
                                        " bytes, more than max_metadata_bytes (" +
                                        std::to_string(settings.max_metadata_bytes) + ")");
                       });
}

Outcome check(const v1::ConsumeRequest& request) {
  return first_refusal([&] { return check_op_id(request.op_id()); },
                       [&] { return check_id("player_id", request.player_id()); },
                       [&] { return check_id("sku", request.sku()); },
                       [&] { return check_quantity(request.quantity()); });
}

Outcome check(const v1::TransferRequest& request) {
  return first_refusal([&] { return check_op_id(request.op_id()); },
                       [&] { return check_id("from_player_id", request.from_player_id()); },
                       [&] { return check_id("to_player_id", request.to_player_id()); },
                       [&]() -> Outcome {
                         if (request.from_player_id() != request.to_player_id()) {
                           return std::nullopt;
                         }
                         return invalid("to_player_id: equals from_player_id (transfer to self)");
                       },
                       [&] { return check_id("sku", request.sku()); },
                       [&] { return check_quantity(request.quantity()); });
}

std::string canonical(const v1::GrantRequest& request) {
  v1::GrantRequest c;
  c.set_op_id(request.op_id());
  c.set_player_id(request.player_id());
  c.set_sku(request.sku());
  c.set_quantity(request.quantity());
  if (request.has_metadata()) c.set_metadata(request.metadata());
  return c.SerializeAsString();
}

std::string canonical(const v1::ConsumeRequest& request) {
  v1::ConsumeRequest c;
  c.set_op_id(request.op_id());
  c.set_player_id(request.player_id());
  c.set_sku(request.sku());
  c.set_quantity(request.quantity());
  return c.SerializeAsString();
}

std::string canonical(const v1::TransferRequest& request) {
  v1::TransferRequest c;
  c.set_op_id(request.op_id());
  c.set_from_player_id(request.from_player_id());
  c.set_to_player_id(request.to_player_id());
  c.set_sku(request.sku());
  c.set_quantity(request.quantity());
  return c.SerializeAsString();
}

const v1::Item* find_item(const v1::PlayerRecord& record, std::string_view sku) {
  const int i = lower_bound_of(record, sku);
  if (i < record.items_size() && record.items(i).sku() == sku) return &record.items(i);
  return nullptr;
}

v1::ListReply list_page(const v1::PlayerRecord& record, const v1::ListRequest& request) {
  v1::ListReply reply;
  const uint32_t limit = request.limit() == 0 ? kDefaultListLimit : request.limit();
  int i = 0;
  if (!request.after_sku().empty()) {
    i = lower_bound_of(record, request.after_sku());
    if (i < record.items_size() && record.items(i).sku() == request.after_sku()) ++i;
  }
  for (; i < record.items_size() && static_cast<uint32_t>(reply.items_size()) < limit; ++i) {
    *reply.add_items() = record.items(i);
  }
  if (i < record.items_size() && reply.items_size() > 0) {
    reply.set_next_after_sku(reply.items(reply.items_size() - 1).sku());
  }
  reply.set_item_count(static_cast<uint32_t>(record.items_size()));
  return reply;
}

Outcome grant(const v1::GrantRequest& request, const Settings& settings,
              v1::PlayerRecord& record, v1::GrantReply& reply) {
  if (Outcome refused = check_receive(record, request.player_id(), request.sku(),
                                      request.quantity(), settings)) {
    return refused;
  }
  v1::Item* item = find_mutable(record, request.sku());
  if (item == nullptr) item = insert_item(record, request.sku());
  item->set_quantity(item->quantity() + request.quantity());
  if (request.has_metadata()) item->set_metadata(request.metadata());
  *reply.mutable_item() = *item;
  return std::nullopt;
}

Outcome consume(const v1::ConsumeRequest& request, v1::PlayerRecord& record,
                v1::ConsumeReply& reply) {
  v1::Item* item = find_mutable(record, request.sku());
  const int64_t have = item != nullptr ? item->quantity() : 0;
  if (have < request.quantity()) {
    return refuse_insufficient(request.player_id(), request.sku(), have, request.quantity());
  }
  item->set_quantity(have - request.quantity());
  *reply.mutable_item() = *item;
  if (item->quantity() == 0) remove_item(record, request.sku());
  return std::nullopt;
}

Outcome transfer(const v1::TransferRequest& request, const Settings& settings,
                 v1::PlayerRecord& from, v1::PlayerRecord& to, v1::TransferReply& reply) {
  v1::Item* source = find_mutable(from, request.sku());
  const int64_t have = source != nullptr ? source->quantity() : 0;
  if (have < request.quantity()) {
    return refuse_insufficient(request.from_player_id(), request.sku(), have,
                               request.quantity());
  }
  if (Outcome refused = check_receive(to, request.to_player_id(), request.sku(),
                                      request.quantity(), settings)) {
    return refused;
  }
  // Both sides are known to succeed from here on: nothing is changed before this point.
  v1::Item* target = find_mutable(to, request.sku());
  if (target == nullptr) {
    target = insert_item(to, request.sku());
    target->set_metadata(source->metadata());  // a new stack travels with its metadata
  }
  target->set_quantity(target->quantity() + request.quantity());
  *reply.mutable_to_item() = *target;
  source->set_quantity(have - request.quantity());
  *reply.mutable_from_item() = *source;
  if (source->quantity() == 0) remove_item(from, request.sku());
  return std::nullopt;
}

std::vector<std::string> remember_op(v1::PlayerRecord& record, std::string_view op_id,
                                     uint32_t retention) {
  auto* ops = record.mutable_recent_op_ids();
  // An id appears once: were it there twice, evicting the older copy would delete the
  // op document the newer one still needs.
  for (int i = ops->size() - 1; i >= 0; --i) {
    if (ops->Get(i) == op_id) ops->DeleteSubrange(i, 1);
  }
  record.add_recent_op_ids(std::string(op_id));
  std::vector<std::string> evicted;
  const int excess = ops->size() - static_cast<int>(retention);
  if (excess > 0) {
    evicted.assign(ops->begin(), ops->begin() + excess);
    ops->DeleteSubrange(0, excess);
  }
  return evicted;
}

}  // namespace prism::inventory
