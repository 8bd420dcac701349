// The inventory service end to end: a real prismd with the plugin and its embedded
// sqlite store, driven through libprism-client with the service's protobuf messages
// (docs/inventory.md). Every test starts its own prismd with small limits so that the
// limits themselves can be reached.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <latch>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "prism/client.hpp"
#include "prism/inventory/v1/inventory.pb.h"
#include "prismd_process.hpp"

namespace prism::testing {
namespace {

namespace inv = prism::inventory::v1;
using prism::v1::Status;

constexpr uint32_t kFirstPacketId = 1100;  // docs/inventory.md "Requests"
constexpr int64_t kTwoTo53 = int64_t{1} << 53;

// The limits every test runs under (plugins.d/inventory.yaml `settings:`).
constexpr const char* kSettings =
    "settings:\n"
    "  max_items_per_player: 3\n"
    "  max_metadata_bytes: 64\n"
    "  op_retention: 4\n";

PrismdOptions inventory_options(const std::string& settings = kSettings) {
  PrismdOptions options;
  options.request_timeout_ms = 10000;
  options.plugin_configs["inventory"] = settings;
  return options;
}

Expected<client::Client> connect_to(const PrismdProcess& prismd) {
  client::ConnectOptions options;
  options.server_key = prismd.server_key();
  options.timeout = std::chrono::seconds(15);
  return client::Client::connect({"127.0.0.1", prismd.port()}, options);
}

std::string describe(const client::Reply& reply) {
  return std::string(client::status_name(reply.status)) + " \"" + reply.message + "\"";
}

class InventoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    auto c = connect_to(prismd);
    ASSERT_TRUE(c) << c.error();
    client.emplace(std::move(*c));
  }

  client::Reply call_raw(inv::Method method, std::string_view payload) {
    auto reply = client->call(kFirstPacketId + method, payload);
    EXPECT_TRUE(reply) << reply.error();
    return reply ? *reply : client::Reply{Status::STATUS_INTERNAL, reply.error(), ""};
  }
  client::Reply call(inv::Method method, const google::protobuf::MessageLite& request) {
    return call_raw(method, request.SerializeAsString());
  }

  // A request expected to succeed, its reply parsed.
  template <class ReplyMessage>
  ReplyMessage ok(inv::Method method, const google::protobuf::MessageLite& request) {
    const client::Reply reply = call(method, request);
    EXPECT_EQ(reply.status, Status::STATUS_OK) << describe(reply);
    ReplyMessage out;
    EXPECT_TRUE(out.ParseFromString(reply.payload));
    return out;
  }

  // A request expected to be refused with `status` and a message containing `text`.
  void expect_refused(inv::Method method, const google::protobuf::MessageLite& request,
                      Status status, const std::string& text) {
    const client::Reply reply = call(method, request);
    EXPECT_EQ(reply.status, status) << describe(reply);
    EXPECT_NE(reply.message.find(text), std::string::npos) << describe(reply);
    EXPECT_TRUE(reply.payload.empty());
  }

  inv::GrantReply grant(std::string op, std::string player, std::string sku, int64_t quantity,
                        std::optional<std::string> metadata = std::nullopt) {
    return ok<inv::GrantReply>(inv::METHOD_GRANT, grant_request(op, player, sku, quantity, metadata));
  }

  // The player's stacks as "sku=quantity" joined by commas, in sku order.
  std::string holdings(const std::string& player) {
    inv::ListRequest request;
    request.set_player_id(player);
    const auto reply = ok<inv::ListReply>(inv::METHOD_LIST, request);
    std::string out;
    for (const auto& item : reply.items()) {
      out += (out.empty() ? "" : ",") + item.sku() + "=" + std::to_string(item.quantity());
    }
    return out;
  }

  int64_t quantity(const std::string& player, const std::string& sku) {
    inv::GetRequest request;
    request.set_player_id(player);
    request.set_sku(sku);
    const client::Reply reply = call(inv::METHOD_GET, request);
    if (reply.status == Status::STATUS_NOT_FOUND) return 0;
    EXPECT_EQ(reply.status, Status::STATUS_OK) << describe(reply);
    inv::GetReply out;
    EXPECT_TRUE(out.ParseFromString(reply.payload));
    return out.item().quantity();
  }

 public:
  static inv::GrantRequest grant_request(std::string op, std::string player, std::string sku,
                                         int64_t quantity,
                                         std::optional<std::string> metadata = std::nullopt) {
    inv::GrantRequest r;
    r.set_op_id(std::move(op));
    r.set_player_id(std::move(player));
    r.set_sku(std::move(sku));
    r.set_quantity(quantity);
    if (metadata) r.set_metadata(*metadata);
    return r;
  }
  static inv::ConsumeRequest consume_request(std::string op, std::string player, std::string sku,
                                             int64_t quantity) {
    inv::ConsumeRequest r;
    r.set_op_id(std::move(op));
    r.set_player_id(std::move(player));
    r.set_sku(std::move(sku));
    r.set_quantity(quantity);
    return r;
  }
  static inv::TransferRequest transfer_request(std::string op, std::string from, std::string to,
                                               std::string sku, int64_t quantity) {
    inv::TransferRequest r;
    r.set_op_id(std::move(op));
    r.set_from_player_id(std::move(from));
    r.set_to_player_id(std::move(to));
    r.set_sku(std::move(sku));
    r.set_quantity(quantity);
    return r;
  }

 protected:
  PrismdProcess prismd{inventory_options()};
  std::optional<client::Client> client;
};

// ---- values -------------------------------------------------------------------------------

TEST_F(InventoryTest, GrantCreatesAndAddsToAStackWithItsMetadata) {
  const auto first = grant("g1", "alice", "sword", 5, "sharp");
  EXPECT_EQ(first.item().sku(), "sword");
  EXPECT_EQ(first.item().quantity(), 5);
  EXPECT_EQ(first.item().metadata(), "sharp");
  const auto second = grant("g2", "alice", "sword", 3);  // no metadata: kept
  EXPECT_EQ(second.item().quantity(), 8);
  EXPECT_EQ(second.item().metadata(), "sharp");
  grant("g3", "alice", "apple", 2);

  inv::ListRequest list;
  list.set_player_id("alice");
  const auto listed = ok<inv::ListReply>(inv::METHOD_LIST, list);
  ASSERT_EQ(listed.items_size(), 2);
  EXPECT_EQ(listed.item_count(), 2u);
  EXPECT_EQ(listed.items(0).sku(), "apple");
  EXPECT_EQ(listed.items(1).sku(), "sword");
  EXPECT_EQ(listed.items(1).quantity(), 8);
  EXPECT_EQ(listed.items(1).metadata(), "sharp");
  EXPECT_TRUE(listed.next_after_sku().empty());

  inv::GetRequest get;
  get.set_player_id("alice");
  get.set_sku("sword");
  const auto got = ok<inv::GetReply>(inv::METHOD_GET, get);
  EXPECT_EQ(got.item().quantity(), 8);
  EXPECT_EQ(got.item().metadata(), "sharp");
}

TEST_F(InventoryTest, ListPagesAndAnUnknownPlayerHoldsNothing) {
  grant("p1", "bob", "c", 3);
  grant("p2", "bob", "a", 1);
  grant("p3", "bob", "b", 2);
  inv::ListRequest list;
  list.set_player_id("bob");
  list.set_limit(2);
  const auto page1 = ok<inv::ListReply>(inv::METHOD_LIST, list);
  ASSERT_EQ(page1.items_size(), 2);
  EXPECT_EQ(page1.items(0).sku(), "a");
  EXPECT_EQ(page1.next_after_sku(), "b");
  EXPECT_EQ(page1.item_count(), 3u);
  list.set_after_sku(page1.next_after_sku());
  const auto page2 = ok<inv::ListReply>(inv::METHOD_LIST, list);
  ASSERT_EQ(page2.items_size(), 1);
  EXPECT_EQ(page2.items(0).sku(), "c");
  EXPECT_TRUE(page2.next_after_sku().empty());

  EXPECT_EQ(holdings("nobody"), "");
  inv::GetRequest get;
  get.set_player_id("bob");
  get.set_sku("zzz");
  expect_refused(inv::METHOD_GET, get, Status::STATUS_NOT_FOUND, "holds no sku 'zzz'");
}

TEST_F(InventoryTest, ConsumeTakesFromTheStackAndRemovesItWhenEmpty) {
  grant("c0", "carol", "potion", 5);
  const auto after = ok<inv::ConsumeReply>(inv::METHOD_CONSUME, consume_request("c1", "carol", "potion", 2));
  EXPECT_EQ(after.item().quantity(), 3);
  const auto empty = ok<inv::ConsumeReply>(inv::METHOD_CONSUME, consume_request("c2", "carol", "potion", 3));
  EXPECT_EQ(empty.item().quantity(), 0);
  EXPECT_EQ(holdings("carol"), "");
}

TEST_F(InventoryTest, InsufficientConsumeIsRefusedAndNeverGoesNegative) {
  grant("i0", "dave", "potion", 2);
  expect_refused(inv::METHOD_CONSUME, consume_request("i1", "dave", "potion", 5),
                 Status::STATUS_CONFLICT,
                 "insufficient quantity of sku 'potion' for player 'dave': have 2, need 5");
  EXPECT_EQ(quantity("dave", "potion"), 2);
  ok<inv::ConsumeReply>(inv::METHOD_CONSUME, consume_request("i2", "dave", "potion", 2));
  expect_refused(inv::METHOD_CONSUME, consume_request("i3", "dave", "potion", 1),
                 Status::STATUS_CONFLICT, "have 0, need 1");
  // An unknown sku is "insufficient" too (docs/inventory.md): the same status for both.
  expect_refused(inv::METHOD_CONSUME, consume_request("i4", "dave", "elixir", 1),
                 Status::STATUS_CONFLICT, "insufficient quantity of sku 'elixir'");
  EXPECT_EQ(holdings("dave"), "");
}

TEST_F(InventoryTest, QuantityCannotPassTwoToThe53) {
  grant("q0", "erin", "gold", kTwoTo53);
  expect_refused(inv::METHOD_GRANT, grant_request("q1", "erin", "gold", 1), Status::STATUS_CONFLICT,
                 "would exceed 2^53");
  EXPECT_EQ(quantity("erin", "gold"), kTwoTo53);
}

TEST_F(InventoryTest, APlayerHoldsAtMostMaxItemsPerPlayerSkus) {
  grant("m1", "fay", "a", 1);
  grant("m2", "fay", "b", 1);
  grant("m3", "fay", "c", 1);
  expect_refused(inv::METHOD_GRANT, grant_request("m4", "fay", "d", 1), Status::STATUS_CONFLICT,
                 "inventory of player 'fay' is full: 3 skus");
  grant("m5", "fay", "a", 4);  // a held sku still grows
  EXPECT_EQ(holdings("fay"), "a=5,b=1,c=1");
}

// ---- transfer -------------------------------------------------------------------------------

TEST_F(InventoryTest, TransferMovesBetweenPlayers) {
  grant("t0", "gus", "gem", 5, "blue");
  const auto moved = ok<inv::TransferReply>(inv::METHOD_TRANSFER,
                                            transfer_request("t1", "gus", "hal", "gem", 3));
  EXPECT_EQ(moved.from_item().quantity(), 2);
  EXPECT_EQ(moved.to_item().quantity(), 3);
  EXPECT_EQ(moved.to_item().metadata(), "blue");
  EXPECT_EQ(holdings("gus"), "gem=2");
  EXPECT_EQ(holdings("hal"), "gem=3");
  const auto all = ok<inv::TransferReply>(inv::METHOD_TRANSFER,
                                          transfer_request("t2", "gus", "hal", "gem", 2));
  EXPECT_EQ(all.from_item().quantity(), 0);
  EXPECT_EQ(all.to_item().quantity(), 5);
  EXPECT_EQ(holdings("gus"), "");
  EXPECT_EQ(holdings("hal"), "gem=5");
}

TEST_F(InventoryTest, TransferTheSenderCannotCoverMovesNothing) {
  grant("u0", "ida", "gem", 2);
  grant("u1", "jon", "gem", 1);
  expect_refused(inv::METHOD_TRANSFER, transfer_request("u2", "ida", "jon", "gem", 3),
                 Status::STATUS_CONFLICT, "insufficient quantity of sku 'gem' for player 'ida': have 2, need 3");
  EXPECT_EQ(holdings("ida"), "gem=2");
  EXPECT_EQ(holdings("jon"), "gem=1");
}

TEST_F(InventoryTest, TransferToAFullInventoryMovesNothing) {
  grant("v0", "kim", "gem", 4);
  grant("v1", "lee", "a", 1);
  grant("v2", "lee", "b", 1);
  grant("v3", "lee", "c", 1);
  expect_refused(inv::METHOD_TRANSFER, transfer_request("v4", "kim", "lee", "gem", 1),
                 Status::STATUS_CONFLICT, "inventory of player 'lee' is full");
  EXPECT_EQ(holdings("kim"), "gem=4");
  EXPECT_EQ(holdings("lee"), "a=1,b=1,c=1");
}

// ---- idempotency ------------------------------------------------------------------------------

TEST_F(InventoryTest, RetriedGrantIsAppliedOnceWithTheSameReply) {
  const client::Reply first = call(inv::METHOD_GRANT, grant_request("rg", "max", "arrow", 10));
  ASSERT_EQ(first.status, Status::STATUS_OK) << describe(first);
  grant("rg-other", "max", "arrow", 1);  // the stack moves on between the tries
  const client::Reply retry = call(inv::METHOD_GRANT, grant_request("rg", "max", "arrow", 10));
  ASSERT_EQ(retry.status, Status::STATUS_OK) << describe(retry);
  EXPECT_EQ(retry.payload, first.payload);  // the first answer (quantity 10), not a new one
  EXPECT_EQ(quantity("max", "arrow"), 11);
}

TEST_F(InventoryTest, RetriedConsumeIsAppliedOnceWithTheSameReply) {
  grant("rc0", "ned", "arrow", 10);
  const client::Reply first = call(inv::METHOD_CONSUME, consume_request("rc", "ned", "arrow", 4));
  ASSERT_EQ(first.status, Status::STATUS_OK) << describe(first);
  for (int i = 0; i < 3; ++i) {
    const client::Reply retry = call(inv::METHOD_CONSUME, consume_request("rc", "ned", "arrow", 4));
    ASSERT_EQ(retry.status, Status::STATUS_OK) << describe(retry);
    EXPECT_EQ(retry.payload, first.payload);
  }
  EXPECT_EQ(quantity("ned", "arrow"), 6);
}

TEST_F(InventoryTest, RetriedTransferIsAppliedOnceWithTheSameReply) {
  grant("rt0", "oda", "coin", 9);
  const client::Reply first = call(inv::METHOD_TRANSFER, transfer_request("rt", "oda", "pia", "coin", 4));
  ASSERT_EQ(first.status, Status::STATUS_OK) << describe(first);
  const client::Reply retry = call(inv::METHOD_TRANSFER, transfer_request("rt", "oda", "pia", "coin", 4));
  ASSERT_EQ(retry.status, Status::STATUS_OK) << describe(retry);
  EXPECT_EQ(retry.payload, first.payload);
  EXPECT_EQ(holdings("oda"), "coin=5");
  EXPECT_EQ(holdings("pia"), "coin=4");
}

TEST_F(InventoryTest, OpIdReusedWithDifferentContentIsRefused) {
  grant("dup", "quin", "arrow", 1);
  expect_refused(inv::METHOD_GRANT, grant_request("dup", "quin", "arrow", 2), Status::STATUS_CONFLICT,
                 "op_id 'dup' was already used for a different grant request");
  expect_refused(inv::METHOD_GRANT, grant_request("dup", "quin", "arrow", 1, "meta"),
                 Status::STATUS_CONFLICT, "already used");
  expect_refused(inv::METHOD_GRANT, grant_request("dup", "rose", "arrow", 1), Status::STATUS_CONFLICT,
                 "already used");  // op ids are one namespace across players
  expect_refused(inv::METHOD_CONSUME, consume_request("dup", "quin", "arrow", 1),
                 Status::STATUS_CONFLICT, "already used for a different grant request");
  expect_refused(inv::METHOD_TRANSFER, transfer_request("dup", "quin", "rose", "arrow", 1),
                 Status::STATUS_CONFLICT, "already used");
  EXPECT_EQ(holdings("quin"), "arrow=1");
  EXPECT_EQ(holdings("rose"), "");
}

TEST_F(InventoryTest, ARefusedChangeRecordsNothingUnderItsOpId) {
  expect_refused(inv::METHOD_CONSUME, consume_request("later", "sam", "potion", 1),
                 Status::STATUS_CONFLICT, "have 0, need 1");
  grant("later-g", "sam", "potion", 1);
  // The same op id, evaluated afresh now that the potion is there.
  const auto reply = ok<inv::ConsumeReply>(inv::METHOD_CONSUME, consume_request("later", "sam", "potion", 1));
  EXPECT_EQ(reply.item().quantity(), 0);
}

TEST_F(InventoryTest, OpIdsBeyondOpRetentionAreForgotten) {
  // op_retention is 4: the player's fifth later change pushes the first op id out.
  grant("old", "tia", "coin", 1);
  for (int i = 0; i < 3; ++i) grant("n" + std::to_string(i), "tia", "coin", 1);
  grant("old", "tia", "coin", 1);  // still remembered: not applied again
  EXPECT_EQ(quantity("tia", "coin"), 4);
  grant("n3", "tia", "coin", 1);  // now "old" is the fifth most recent
  EXPECT_EQ(quantity("tia", "coin"), 5);
  const auto again = grant("old", "tia", "coin", 1);  // forgotten: applied as new
  EXPECT_EQ(again.item().quantity(), 6);
}

// ---- bad input ------------------------------------------------------------------------------

TEST_F(InventoryTest, MalformedPayloadsAreRefusedForEveryMethod) {
  const std::string garbage("\xff\xff\xff\xff", 4);
  for (auto [method, type] : {std::pair{inv::METHOD_LIST, "ListRequest"},
                              std::pair{inv::METHOD_GET, "GetRequest"},
                              std::pair{inv::METHOD_GRANT, "GrantRequest"},
                              std::pair{inv::METHOD_CONSUME, "ConsumeRequest"},
                              std::pair{inv::METHOD_TRANSFER, "TransferRequest"}}) {
    const client::Reply reply = call_raw(method, garbage);
    EXPECT_EQ(reply.status, Status::STATUS_INVALID_ARGUMENT) << describe(reply);
    EXPECT_NE(reply.message.find(std::string("payload: not a prism.inventory.v1.") + type),
              std::string::npos)
        << describe(reply);
  }
  const client::Reply unknown = call_raw(static_cast<inv::Method>(50), "");
  EXPECT_EQ(unknown.status, Status::STATUS_INVALID_PACKET) << describe(unknown);
}

TEST_F(InventoryTest, BadFieldsAreRefusedByNameWithNoPartialWrite) {
  grant("base", "uma", "sword", 5, "x");
  const std::string before = holdings("uma");
  const std::string long_id(65, 'x');
  const Status bad = Status::STATUS_INVALID_ARGUMENT;
  expect_refused(inv::METHOD_GRANT, grant_request("b1", "uma", "sword", 0), bad, "quantity: 0 is not positive");
  expect_refused(inv::METHOD_GRANT, grant_request("b2", "uma", "sword", -3), bad, "quantity: -3 is not positive");
  expect_refused(inv::METHOD_GRANT, grant_request("b3", "uma", "sword", kTwoTo53 + 1), bad,
                 "quantity: 9007199254740993 is more than 2^53");
  expect_refused(inv::METHOD_GRANT, grant_request("b4", "uma", "sword", 1, std::string(65, 'm')), bad,
                 "metadata: 65 bytes, more than max_metadata_bytes (64)");
  expect_refused(inv::METHOD_GRANT, grant_request("b5", "uma", "", 1), bad, "sku: missing");
  expect_refused(inv::METHOD_GRANT, grant_request("b6", "uma", long_id, 1), bad, "sku: 65 bytes, more than 64");
  expect_refused(inv::METHOD_GRANT, grant_request("b7", "", "sword", 1), bad, "player_id: missing");
  expect_refused(inv::METHOD_GRANT, grant_request("b8", long_id, "sword", 1), bad, "player_id: 65 bytes");
  expect_refused(inv::METHOD_GRANT, grant_request("", "uma", "sword", 1), bad, "op_id: missing");
  expect_refused(inv::METHOD_GRANT, grant_request(long_id, "uma", "sword", 1), bad, "op_id: 65 bytes");
  expect_refused(inv::METHOD_GRANT, grant_request("b9", "uma", "bad\x01sku", 1), bad, "sku: not UTF-8");
  expect_refused(inv::METHOD_CONSUME, consume_request("b10", "uma", "sword", 0), bad, "quantity: 0");
  expect_refused(inv::METHOD_CONSUME, consume_request("b11", "uma", "sword", -1), bad, "quantity: -1");
  expect_refused(inv::METHOD_CONSUME, consume_request("", "uma", "sword", 1), bad, "op_id: missing");
  expect_refused(inv::METHOD_CONSUME, consume_request("b12", "uma", "", 1), bad, "sku: missing");
  expect_refused(inv::METHOD_TRANSFER, transfer_request("b13", "uma", "uma", "sword", 1), bad,
                 "to_player_id: equals from_player_id");
  expect_refused(inv::METHOD_TRANSFER, transfer_request("b14", "uma", "", "sword", 1), bad,
                 "to_player_id: missing");
  expect_refused(inv::METHOD_TRANSFER, transfer_request("b15", "", "vic", "sword", 1), bad,
                 "from_player_id: missing");
  expect_refused(inv::METHOD_TRANSFER, transfer_request("b16", "uma", "vic", "sword", -2), bad,
                 "quantity: -2");
  expect_refused(inv::METHOD_TRANSFER, transfer_request("", "uma", "vic", "sword", 1), bad,
                 "op_id: missing");
  inv::ListRequest list;
  list.set_player_id("uma");
  list.set_limit(5000);
  expect_refused(inv::METHOD_LIST, list, bad, "limit: 5000");
  inv::GetRequest get;
  get.set_player_id("uma");
  expect_refused(inv::METHOD_GET, get, bad, "sku: missing");

  EXPECT_EQ(holdings("uma"), before);
  EXPECT_EQ(holdings("vic"), "");
  // No op record was written for any of them: each op id is still free for a new change.
  for (const char* op : {"b1", "b2", "b4", "b10", "b13", "b16"}) {
    grant(op, "vic", "token", 1);
  }
  EXPECT_EQ(quantity("vic", "token"), 6);
}

// ---- concurrency ------------------------------------------------------------------------------

// Sends `request` until it is answered with something other than "try again" (UNAVAILABLE
// after too many lost compare-and-sets, TIMEOUT): safe, since the op id makes it idempotent.
client::Reply until_settled(client::Client& c, uint32_t packet_id, const std::string& payload) {
  for (;;) {
    auto reply = c.call(packet_id, payload);
    if (!reply) return {Status::STATUS_INTERNAL, reply.error(), ""};
    if (reply->status != Status::STATUS_UNAVAILABLE && reply->status != Status::STATUS_TIMEOUT) {
      return *reply;
    }
  }
}

// Runs `body(client, t)` for clients t = 0..count-1, each on its own thread and session,
// all starting to send at the same moment; a client that cannot connect records why in
// errors[t].
template <class Body>
void race_clients(const PrismdProcess& prismd, int count, std::vector<std::string>& errors, Body body) {
  std::latch connected(count);
  std::vector<std::thread> threads;
  for (int t = 0; t < count; ++t) {
    threads.emplace_back([&, t] {
      auto c = connect_to(prismd);
      connected.arrive_and_wait();  // every client sends from the same moment on
      if (!c) {
        errors[t] = c.error();
        return;
      }
      body(*c, t);
    });
  }
  for (auto& thread : threads) thread.join();
}

TEST_F(InventoryTest, ConcurrentConsumesNeverLoseAnUpdateNorOverdraw) {
  constexpr int kGranted = 60;
  constexpr int kClients = 4;
  constexpr int kConsumesEach = 25;  // 100 tries for 60 potions
  grant("cc-grant", "wes", "potion", kGranted);

  std::vector<std::vector<int64_t>> remaining(kClients);
  std::vector<std::string> errors(kClients);
  std::atomic<int> insufficient{0};
  race_clients(prismd, kClients, errors, [&](client::Client& c, int t) {
    for (int i = 0; i < kConsumesEach; ++i) {
      const auto request = consume_request("cc-" + std::to_string(t) + "-" + std::to_string(i),
                                           "wes", "potion", 1);
      const client::Reply reply = until_settled(c, kFirstPacketId + inv::METHOD_CONSUME,
                                                request.SerializeAsString());
      if (reply.status == Status::STATUS_OK) {
        inv::ConsumeReply out;
        out.ParseFromString(reply.payload);
        remaining[t].push_back(out.item().quantity());
      } else if (reply.status == Status::STATUS_CONFLICT &&
                 reply.message.find("insufficient") != std::string::npos) {
        ++insufficient;
      } else {
        errors[t] += describe(reply) + "; ";
      }
    }
  });

  std::multiset<int64_t> seen;
  for (int t = 0; t < kClients; ++t) {
    EXPECT_TRUE(errors[t].empty()) << "client " << t << ": " << errors[t];
    seen.insert(remaining[t].begin(), remaining[t].end());
  }
  // Exactly the granted potions were consumed, each success saw its own remaining count
  // (59, 58, ..., 0, each once: no two consumes read the same stack), the rest were refused.
  EXPECT_EQ(seen.size(), static_cast<size_t>(kGranted));
  for (int64_t q = 0; q < kGranted; ++q) EXPECT_EQ(seen.count(q), 1u) << "remaining " << q;
  EXPECT_EQ(insufficient.load(), kClients * kConsumesEach - kGranted);
  EXPECT_EQ(quantity("wes", "potion"), 0);
}

TEST_F(InventoryTest, OneOpIdSentBySeveralClientsAtOnceIsAppliedOnce) {
  constexpr int kClients = 4;
  constexpr int kOps = 4;  // op_retention: every op id stays remembered throughout
  // Every client sends the same four grants (+1 each): racing copies of one op id.
  std::vector<std::vector<std::string>> replies(kClients);
  std::vector<std::string> errors(kClients);
  race_clients(prismd, kClients, errors, [&](client::Client& c, int t) {
    for (int i = 0; i < kOps; ++i) {
      const auto request = grant_request("same-" + std::to_string(i), "zed", "arrow", 1);
      const client::Reply reply = until_settled(c, kFirstPacketId + inv::METHOD_GRANT,
                                                request.SerializeAsString());
      if (reply.status != Status::STATUS_OK) errors[t] += describe(reply) + "; ";
      replies[t].push_back(reply.payload);
    }
  });
  for (int t = 0; t < kClients; ++t) {
    EXPECT_TRUE(errors[t].empty()) << errors[t];
    ASSERT_EQ(replies[t].size(), static_cast<size_t>(kOps));
    for (int i = 0; i < kOps; ++i) EXPECT_EQ(replies[t][i], replies[0][i]) << "op " << i;
  }
  EXPECT_EQ(quantity("zed", "arrow"), kOps);
}

TEST_F(InventoryTest, ConcurrentTransfersConserveTheTotal) {
  grant("ct-a", "xia", "coin", 50);
  grant("ct-b", "yul", "coin", 50);
  constexpr int kClients = 4;
  constexpr int kTransfersEach = 20;
  std::vector<std::string> errors(kClients);
  race_clients(prismd, kClients, errors, [&](client::Client& c, int t) {
    for (int i = 0; i < kTransfersEach; ++i) {
      const bool forth = (t + i) % 2 == 0;
      const auto request = transfer_request("ct-" + std::to_string(t) + "-" + std::to_string(i),
                                            forth ? "xia" : "yul", forth ? "yul" : "xia", "coin", 3);
      const client::Reply reply = until_settled(c, kFirstPacketId + inv::METHOD_TRANSFER,
                                                request.SerializeAsString());
      if (reply.status != Status::STATUS_OK) errors[t] += describe(reply) + "; ";
    }
  });
  for (int t = 0; t < kClients; ++t) EXPECT_TRUE(errors[t].empty()) << errors[t];
  const int64_t xia = quantity("xia", "coin");
  const int64_t yul = quantity("yul", "coin");
  EXPECT_EQ(xia + yul, 100);
  EXPECT_EQ(xia, 50);  // as many transfers went each way, all of them applied
}

// ---- settings -------------------------------------------------------------------------------

TEST(InventorySettingsTest, ABadSettingRefusesThePluginWithTheReason) {
  PrismdProcess prismd(inventory_options("settings:\n  op_retention: 0\n"));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  EXPECT_TRUE(prismd.wait_for_log("op_retention: 0 is outside 1..100000")) << prismd.log();
  EXPECT_NE(prismd.log().find("event=plugin_refused"), std::string::npos) << prismd.log();
}

}  // namespace
}  // namespace prism::testing
