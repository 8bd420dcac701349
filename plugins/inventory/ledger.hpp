// The inventory's rules, apart from storage: request checks, the canonical form an op id
// is bound to, and grant / consume / transfer applied to players' records in memory. The
// plugin reads the records, calls these, and writes the result back in one batch.
#pragma once

#include <prism/plugin.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prism/inventory/v1/inventory.pb.h"
#include "settings.hpp"

namespace prism::inventory {

namespace v1 = ::prism::inventory::v1;

// Why a request is refused: the status and a message naming the field or the cause.
struct Refusal {
  prism_status_t status;
  std::string message;
};
// nullopt: accepted.
using Outcome = std::optional<Refusal>;

// Shape checks, before any storage is touched (PRISM_INVALID_ARGUMENT).
Outcome check(const v1::ListRequest& request);
Outcome check(const v1::GetRequest& request);
Outcome check(const v1::GrantRequest& request, const Settings& settings);
Outcome check(const v1::ConsumeRequest& request);
Outcome check(const v1::TransferRequest& request);

// The request's known fields re-serialised (unknown fields dropped): what an op id is
// bound to. A retry with the same op id must carry the same canonical bytes.
std::string canonical(const v1::GrantRequest& request);
std::string canonical(const v1::ConsumeRequest& request);
std::string canonical(const v1::TransferRequest& request);

// The stack of `sku`, or nullptr.
const v1::Item* find_item(const v1::PlayerRecord& record, std::string_view sku);

// One page of the player's stacks for a ListRequest already checked.
v1::ListReply list_page(const v1::PlayerRecord& record, const v1::ListRequest& request);

// State changes. Each either changes the record(s) and fills the reply, or refuses
// (PRISM_CONFLICT) and leaves everything as it was.
Outcome grant(const v1::GrantRequest& request, const Settings& settings,
              v1::PlayerRecord& record, v1::GrantReply& reply);
Outcome consume(const v1::ConsumeRequest& request, v1::PlayerRecord& record,
                v1::ConsumeReply& reply);
Outcome transfer(const v1::TransferRequest& request, const Settings& settings,
                 v1::PlayerRecord& from, v1::PlayerRecord& to, v1::TransferReply& reply);

// Appends `op_id` to the record's op history and returns the op ids pushed out beyond
// `retention` (oldest first), whose op documents the same batch deletes.
std::vector<std::string> remember_op(v1::PlayerRecord& record, std::string_view op_id,
                                     uint32_t retention);

}  // namespace prism::inventory
