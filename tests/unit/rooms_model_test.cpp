// The rooms model without I/O (plugins/rooms/model.hpp): channel kinds, presence diffs,
// limits and what is stored.
#include <gtest/gtest.h>

#include "model.hpp"

namespace prism::rooms {
namespace {

TEST(RoomsModel, AnAccumulativeChannelKeepsTheLastNMessagesWithGrowingIds) {
  Channel chat("chat", ChannelType::kAccumulative);
  for (int i = 0; i < 5; ++i) {
    const Applied a = chat.apply("alice", json{{"n", i}}, 1000, 3);  // one millisecond: no overwrite
    ASSERT_TRUE(a.ok);
    EXPECT_EQ(a.delta["id"], i + 1);
  }
  const json state = chat.state();
  ASSERT_EQ(state.size(), 3u);
  EXPECT_EQ(state[0]["id"], 3);
  EXPECT_EQ(state[2]["payload"]["n"], 4);
}

TEST(RoomsModel, ACollaborativeChannelKeepsEachUsersLastState) {
  Channel cursors("cursors", ChannelType::kCollaborative);
  cursors.apply("alice", json{{"x", 1}}, 0, 0);
  cursors.apply("bob", json{{"x", 2}}, 0, 0);
  const Applied a = cursors.apply("alice", json{{"x", 3}}, 0, 0);
  EXPECT_EQ(a.delta, json::parse(R"({"user":"alice","state":{"x":3}})"));
  EXPECT_EQ(cursors.state(), json::parse(R"({"alice":{"x":3},"bob":{"x":2}})"));
}

TEST(RoomsModel, ASharedChannelSetsKnownKeysAllOrNothing) {
  std::string error;
  auto schema = schema_from(json::parse(R"({"title":"string","score":"number"})"), &error);
  ASSERT_TRUE(schema) << error;
  Channel board("board", ChannelType::kShared, *schema);
  EXPECT_TRUE(board.apply("a", json{{"title", "t"}, {"score", 1}}, 0, 0).ok);
  const Applied refused = board.apply("b", json{{"title", "u"}, {"extra", 1}}, 0, 0);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.error, "unknown key 'extra' (not in the channel's schema)");
  EXPECT_EQ(board.state()["title"], "t");  // nothing of the refused push was set
  EXPECT_FALSE(board.apply("b", json::array({1}), 0, 0).ok);
  EXPECT_FALSE(schema_from(json::object(), &error));
  EXPECT_FALSE(schema_from(json{{"k", "date"}}, &error));
}

TEST(RoomsModel, PresenceDiffsNameWhoJoinedAndLeft) {
  Presence p;
  const json joined = p.join("alice", 7, 1000);
  EXPECT_TRUE(joined["joins"].contains("alice"));
  EXPECT_EQ(joined["joins"]["alice"]["metas"][0]["online_at"], "1000");
  p.join("alice", 8, 1001);  // a second tab
  EXPECT_EQ(p.state()["alice"]["metas"].size(), 2u);
  const json left = p.leave(7);
  EXPECT_TRUE(left["leaves"].contains("alice"));
  EXPECT_TRUE(p.has_user("alice"));
  p.leave(8);
  EXPECT_FALSE(p.has_user("alice"));
  EXPECT_TRUE(p.leave(8).is_null());
}

TEST(RoomsModel, APresenceBatchSendsABurstAsOneDiffAndDropsWhatCameAndWent) {
  Presence p;
  PresenceBatch batch;
  EXPECT_TRUE(batch.empty());
  const json alice_earlier = p.join("alice", 1, 1000);  // sent in an earlier batch
  batch.add(p.join("bob", 2, 1001));
  batch.add(p.join("carol", 3, 1002));
  batch.add(p.join("bob", 4, 1003));  // a second tab
  batch.add(p.leave(1));
  batch.add(p.join("dave", 5, 1004));
  batch.add(p.leave(5));  // came and went: nobody needs to hear of dave
  const json diff = batch.take();
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(diff["joins"].size(), 2u) << diff;
  EXPECT_EQ(diff["joins"]["bob"]["metas"].size(), 2u);
  EXPECT_TRUE(diff["joins"].contains("carol"));
  EXPECT_FALSE(diff["joins"].contains("dave"));
  EXPECT_EQ(diff["leaves"], json({{"alice", alice_earlier["joins"]["alice"]}})) << diff;
  EXPECT_EQ(batch.take(), json::parse(R"({"joins":{},"leaves":{}})"));
}

TEST(RoomsModel, AChannelRoundTripsThroughItsStoredForm) {
  Channel chat("chat", ChannelType::kAccumulative);
  chat.apply("alice", json{{"t", "hi"}}, 5, 10);
  std::string error;
  auto back = Channel::from_json(chat.to_json(), &error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->state(), chat.state());
  EXPECT_EQ(back->apply("bob", json{}, 6, 10).delta["id"], 2);  // ids go on
}

TEST(RoomsModel, LimitsAreCheckedKeyByKey) {
  std::string error;
  EXPECT_TRUE(limits_from(json{{"max_users", 5}}, Limits{}, &error));
  EXPECT_FALSE(limits_from(json{{"max_users", 0}}, Limits{}, &error));
  EXPECT_EQ(error, "limits.max_users: expected an integer 1..1000000");
  EXPECT_FALSE(limits_from(json{{"speed", 1}}, Limits{}, &error));
  Instance small("i", "t", "n", Limits{.max_channels = 2}, false);
  EXPECT_TRUE(small.add_channel(Channel("a", ChannelType::kAccumulative), &error));
  EXPECT_FALSE(small.add_channel(Channel("b", ChannelType::kAccumulative), &error));
  EXPECT_FALSE(small.remove_channel("lobby", &error));
}

TEST(RoomsModel, EachUsersPushesAreRateLimited) {
  Instance i("i", "t", "n", Limits{.messages_per_second = 2}, false);
  EXPECT_TRUE(i.allow_push("a", 0));
  EXPECT_TRUE(i.allow_push("a", 0));
  EXPECT_FALSE(i.allow_push("a", 0));
  EXPECT_TRUE(i.allow_push("b", 0));   // another user's bucket
  EXPECT_TRUE(i.allow_push("a", 500));  // one token back after half a second
}

}  // namespace
}  // namespace prism::rooms
