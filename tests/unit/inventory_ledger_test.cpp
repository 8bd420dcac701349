// The inventory's rules in memory (plugins/inventory/ledger.hpp): request checks naming
// their field, grant / consume / transfer, refusals that change nothing, op history.
#include <gtest/gtest.h>

#include <string>

#include "ledger.hpp"

namespace prism::inventory {
namespace {

v1::GrantRequest grant_of(std::string player, std::string sku, int64_t quantity,
                          std::string op = "op-1") {
  v1::GrantRequest r;
  r.set_op_id(std::move(op));
  r.set_player_id(std::move(player));
  r.set_sku(std::move(sku));
  r.set_quantity(quantity);
  return r;
}

v1::ConsumeRequest consume_of(std::string player, std::string sku, int64_t quantity) {
  v1::ConsumeRequest r;
  r.set_op_id("op-c");
  r.set_player_id(std::move(player));
  r.set_sku(std::move(sku));
  r.set_quantity(quantity);
  return r;
}

v1::TransferRequest transfer_of(std::string from, std::string to, std::string sku,
                                int64_t quantity) {
  v1::TransferRequest r;
  r.set_op_id("op-t");
  r.set_from_player_id(std::move(from));
  r.set_to_player_id(std::move(to));
  r.set_sku(std::move(sku));
  r.set_quantity(quantity);
  return r;
}

// Refused with `status` and a message containing `text`.
void expect_refused(const Outcome& outcome, prism_status_t status, const std::string& text) {
  ASSERT_TRUE(outcome.has_value()) << "accepted, expected: " << text;
  EXPECT_EQ(outcome->status, status) << outcome->message;
  EXPECT_NE(outcome->message.find(text), std::string::npos) << outcome->message;
}

v1::PlayerRecord holding(std::initializer_list<std::pair<std::string, int64_t>> items) {
  v1::PlayerRecord r;
  Settings s;
  int n = 0;
  for (const auto& [sku, q] : items) {
    v1::GrantReply out;
    EXPECT_FALSE(grant(grant_of("p", sku, q, "seed" + std::to_string(n++)), s, r, out));
  }
  return r;
}

TEST(InventoryChecks, EachBadFieldIsNamed) {
  const Settings s;
  expect_refused(check(grant_of("p", "sword", 1, ""), s), PRISM_INVALID_ARGUMENT, "op_id: missing");
  expect_refused(check(grant_of("", "sword", 1), s), PRISM_INVALID_ARGUMENT, "player_id: missing");
  expect_refused(check(grant_of("p", "", 1), s), PRISM_INVALID_ARGUMENT, "sku: missing");
  expect_refused(check(grant_of("p", std::string(65, 's'), 1), s), PRISM_INVALID_ARGUMENT,
                 "sku: 65 bytes, more than 64");
  expect_refused(check(grant_of(std::string(65, 'p'), "s", 1), s), PRISM_INVALID_ARGUMENT,
                 "player_id: 65 bytes");
  expect_refused(check(grant_of("p", "s", 1, std::string(65, 'o')), s), PRISM_INVALID_ARGUMENT,
                 "op_id: 65 bytes");
  expect_refused(check(grant_of("p", "s", 0), s), PRISM_INVALID_ARGUMENT, "quantity: 0 is not positive");
  expect_refused(check(grant_of("p", "s", -4), s), PRISM_INVALID_ARGUMENT, "quantity: -4 is not positive");
  expect_refused(check(grant_of("p", "s", kMaxQuantity + 1), s), PRISM_INVALID_ARGUMENT,
                 "quantity: 9007199254740993 is more than 2^53");
  expect_refused(check(grant_of("p", "bad\nsku", 1), s), PRISM_INVALID_ARGUMENT, "sku: not UTF-8");
  expect_refused(check(grant_of("p", std::string("\xc3\x28", 2), 1), s), PRISM_INVALID_ARGUMENT,
                 "sku: not UTF-8");
  expect_refused(check(grant_of("p", std::string("a\0b", 3), 1), s), PRISM_INVALID_ARGUMENT, "sku");
  auto big = grant_of("p", "s", 1);
  big.set_metadata(std::string(s.max_metadata_bytes + 1, 'm'));
  expect_refused(check(big, s), PRISM_INVALID_ARGUMENT, "metadata: 513 bytes, more than max_metadata_bytes");
  EXPECT_FALSE(check(grant_of("p", "épée-✓", kMaxQuantity), s));
}

TEST(InventoryChecks, TransferToSelfAndBadListLimitAreRefused) {
  expect_refused(check(transfer_of("a", "a", "s", 1)), PRISM_INVALID_ARGUMENT,
                 "to_player_id: equals from_player_id");
  expect_refused(check(transfer_of("a", "", "s", 1)), PRISM_INVALID_ARGUMENT, "to_player_id: missing");
  expect_refused(check(consume_of("a", "s", -1)), PRISM_INVALID_ARGUMENT, "quantity: -1");
  v1::ListRequest list;
  list.set_player_id("p");
  list.set_limit(1001);
  expect_refused(check(list), PRISM_INVALID_ARGUMENT, "limit: 1001");
}

TEST(InventoryRules, GrantCreatesThenAddsAndKeepsSkusSorted) {
  v1::PlayerRecord r = holding({{"shield", 1}, {"apple", 3}, {"sword", 2}});
  v1::GrantReply out;
  ASSERT_FALSE(grant(grant_of("p", "apple", 4), Settings{}, r, out));
  EXPECT_EQ(out.item().quantity(), 7);
  ASSERT_EQ(r.items_size(), 3);
  EXPECT_EQ(r.items(0).sku(), "apple");
  EXPECT_EQ(r.items(1).sku(), "shield");
  EXPECT_EQ(r.items(2).sku(), "sword");
}

TEST(InventoryRules, GrantMetadataReplacesOnlyWhenPresent) {
  v1::PlayerRecord r;
  v1::GrantReply out;
  auto first = grant_of("p", "sword", 1);
  first.set_metadata("sharp");
  ASSERT_FALSE(grant(first, Settings{}, r, out));
  ASSERT_FALSE(grant(grant_of("p", "sword", 1), Settings{}, r, out));
  EXPECT_EQ(out.item().metadata(), "sharp");
  auto cleared = grant_of("p", "sword", 1);
  cleared.set_metadata("");
  ASSERT_FALSE(grant(cleared, Settings{}, r, out));
  EXPECT_EQ(out.item().metadata(), "");
  EXPECT_EQ(out.item().quantity(), 3);
}

TEST(InventoryRules, GrantBeyondTheItemLimitOrTwoToThe53IsRefusedUnchanged) {
  Settings s;
  s.max_items_per_player = 2;
  v1::PlayerRecord r = holding({{"a", 1}, {"b", kMaxQuantity}});
  const std::string before = r.SerializeAsString();
  v1::GrantReply out;
  expect_refused(grant(grant_of("p", "c", 1), s, r, out), PRISM_CONFLICT, "is full: 2 skus");
  expect_refused(grant(grant_of("p", "b", 1), s, r, out), PRISM_CONFLICT, "would exceed 2^53");
  EXPECT_EQ(r.SerializeAsString(), before);
  EXPECT_FALSE(grant(grant_of("p", "a", 5), s, r, out));  // an existing sku still grows
}

TEST(InventoryRules, ConsumeTakesAllOrNothingAndRemovesEmptyStacks) {
  v1::PlayerRecord r = holding({{"potion", 2}});
  v1::ConsumeReply out;
  expect_refused(consume(consume_of("p", "potion", 5), r, out), PRISM_CONFLICT,
                 "insufficient quantity of sku 'potion' for player 'p': have 2, need 5");
  EXPECT_EQ(find_item(r, "potion")->quantity(), 2);
  expect_refused(consume(consume_of("p", "elixir", 1), r, out), PRISM_CONFLICT, "have 0, need 1");
  ASSERT_FALSE(consume(consume_of("p", "potion", 1), r, out));
  EXPECT_EQ(out.item().quantity(), 1);
  ASSERT_FALSE(consume(consume_of("p", "potion", 1), r, out));
  EXPECT_EQ(out.item().quantity(), 0);
  EXPECT_EQ(out.item().sku(), "potion");
  EXPECT_EQ(find_item(r, "potion"), nullptr);
  EXPECT_EQ(r.items_size(), 0);
}

TEST(InventoryRules, TransferMovesBothSidesOrNeither) {
  v1::PlayerRecord from = holding({{"gem", 3}});
  from.mutable_items(0)->set_metadata("blue");
  v1::PlayerRecord to;
  v1::TransferReply out;
  ASSERT_FALSE(transfer(transfer_of("a", "b", "gem", 2), Settings{}, from, to, out));
  EXPECT_EQ(out.from_item().quantity(), 1);
  EXPECT_EQ(out.to_item().quantity(), 2);
  EXPECT_EQ(out.to_item().metadata(), "blue");  // a new stack travels with its metadata
  EXPECT_EQ(find_item(to, "gem")->quantity(), 2);

  const std::string from_before = from.SerializeAsString();
  const std::string to_before = to.SerializeAsString();
  expect_refused(transfer(transfer_of("a", "b", "gem", 2), Settings{}, from, to, out),
                 PRISM_CONFLICT, "have 1, need 2");
  Settings tiny;
  tiny.max_items_per_player = 1;
  v1::PlayerRecord full = holding({{"other", 1}});
  const std::string full_before = full.SerializeAsString();
  expect_refused(transfer(transfer_of("a", "b", "gem", 1), tiny, from, full, out), PRISM_CONFLICT,
                 "inventory of player 'b' is full");
  EXPECT_EQ(from.SerializeAsString(), from_before);
  EXPECT_EQ(to.SerializeAsString(), to_before);
  EXPECT_EQ(full.SerializeAsString(), full_before);

  ASSERT_FALSE(transfer(transfer_of("a", "b", "gem", 1), Settings{}, from, to, out));
  EXPECT_EQ(out.from_item().quantity(), 0);
  EXPECT_EQ(find_item(from, "gem"), nullptr);
  EXPECT_EQ(find_item(to, "gem")->quantity(), 3);
}

TEST(InventoryRules, ListPagesInSkuOrder) {
  v1::PlayerRecord r = holding({{"d", 4}, {"a", 1}, {"c", 3}, {"b", 2}, {"e", 5}});
  v1::ListRequest req;
  req.set_player_id("p");
  req.set_limit(2);
  std::string seen;
  for (int page = 0; page < 5; ++page) {
    const v1::ListReply reply = list_page(r, req);
    EXPECT_EQ(reply.item_count(), 5u);
    for (const auto& item : reply.items()) seen += item.sku();
    if (reply.next_after_sku().empty()) break;
    req.set_after_sku(reply.next_after_sku());
  }
  EXPECT_EQ(seen, "abcde");
  req.set_after_sku("bb");  // not a held sku: starts after where it would be
  req.set_limit(0);
  const v1::ListReply rest = list_page(r, req);
  ASSERT_EQ(rest.items_size(), 3);
  EXPECT_EQ(rest.items(0).sku(), "c");
  EXPECT_TRUE(rest.next_after_sku().empty());
}

TEST(InventoryRules, CanonicalFormIgnoresUnknownFieldsButNotContent) {
  const auto a = grant_of("p", "s", 1);
  std::string with_unknown = a.SerializeAsString();
  with_unknown += std::string("\xf8\x06\x01", 3);  // field 111, varint 1
  v1::GrantRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(with_unknown));
  EXPECT_EQ(canonical(parsed), canonical(a));
  EXPECT_NE(canonical(grant_of("p", "s", 2)), canonical(a));
  auto with_empty_metadata = a;
  with_empty_metadata.set_metadata("");  // present-but-empty clears: a different request
  EXPECT_NE(canonical(with_empty_metadata), canonical(a));
}

TEST(InventoryRules, OpHistoryKeepsTheNewestAndReportsEvictions) {
  v1::PlayerRecord r;
  EXPECT_TRUE(remember_op(r, "o1", 2).empty());
  EXPECT_TRUE(remember_op(r, "o2", 2).empty());
  const auto evicted = remember_op(r, "o3", 2);
  ASSERT_EQ(evicted.size(), 1u);
  EXPECT_EQ(evicted[0], "o1");
  EXPECT_TRUE(remember_op(r, "o2", 2).empty());  // an id is kept once
  ASSERT_EQ(r.recent_op_ids_size(), 2);
  EXPECT_EQ(r.recent_op_ids(0), "o3");
  EXPECT_EQ(r.recent_op_ids(1), "o2");
  // A lowered retention evicts every excess id at once.
  remember_op(r, "o4", 5);
  EXPECT_EQ(remember_op(r, "o5", 1).size(), 3u);
}

}  // namespace
}  // namespace prism::inventory
