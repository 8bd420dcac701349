// The conformance suite's tests (store_conformance.hpp says what they hold every backend
// to). Compiled once, into the store-conformance object library, and instantiated by each
// backend's test binary with INSTANTIATE_STORE_CONFORMANCE.
#include "unit/store_conformance.hpp"

namespace prism::store::conformance {

// ---- documents -------------------------------------------------------------------------

TEST_P(StoreConformance, NameIsNotEmpty) { EXPECT_FALSE(store().name().empty()); }

TEST_P(StoreConformance, GetOfMissingDocumentIsNotFound) {
  PRISM_EXPECT_CODE(get("users", "nobody").status, Code::kNotFound);
}

TEST_P(StoreConformance, PutCreatesVersionOneAndGetReturnsTheBytes) {
  const std::string value("a\0b\xff" "c", 5);
  auto created = put("users", "alice", value);
  ASSERT_TRUE(created.status.ok()) << created.status.message;
  EXPECT_EQ(created.value, 1u);
  auto got = get("users", "alice");
  ASSERT_TRUE(got.status.ok()) << got.status.message;
  EXPECT_EQ(got.value.collection, "users");
  EXPECT_EQ(got.value.key, "alice");
  EXPECT_EQ(got.value.value, value);
  EXPECT_EQ(got.value.version, 1u);
}

TEST_P(StoreConformance, UnconditionalPutBumpsTheVersion) {
  ASSERT_EQ(put("users", "alice", "1").value, 1u);
  ASSERT_EQ(put("users", "alice", "2").value, 2u);
  auto third = put("users", "alice", "3");
  ASSERT_TRUE(third.status.ok());
  EXPECT_EQ(third.value, 3u);
  EXPECT_EQ(get("users", "alice").value.value, "3");
}

TEST_P(StoreConformance, CreateOnlyPutConflictsWhenTheDocumentExists) {
  auto created = put("users", "alice", "first", 0);
  ASSERT_TRUE(created.status.ok()) << created.status.message;
  EXPECT_EQ(created.value, 1u);
  PRISM_EXPECT_CODE(put("users", "alice", "second", 0).status, Code::kConflict);
  auto got = get("users", "alice");
  EXPECT_EQ(got.value.value, "first");
  EXPECT_EQ(got.value.version, 1u);
}

TEST_P(StoreConformance, PutWithTheMatchingVersionSucceeds) {
  ASSERT_TRUE(put("users", "alice", "1").status.ok());
  auto second = put("users", "alice", "2", 1);
  ASSERT_TRUE(second.status.ok()) << second.status.message;
  EXPECT_EQ(second.value, 2u);
  EXPECT_EQ(get("users", "alice").value.value, "2");
}

TEST_P(StoreConformance, PutWithAStaleVersionConflictsAndChangesNothing) {
  ASSERT_TRUE(put("users", "alice", "1").status.ok());
  ASSERT_TRUE(put("users", "alice", "2").status.ok());
  PRISM_EXPECT_CODE(put("users", "alice", "stale", 1).status, Code::kConflict);
  PRISM_EXPECT_CODE(put("users", "alice", "future", 7).status, Code::kConflict);
  auto got = get("users", "alice");
  EXPECT_EQ(got.value.value, "2");
  EXPECT_EQ(got.value.version, 2u);
}

TEST_P(StoreConformance, PutExpectingAVersionOfAMissingDocumentConflicts) {
  PRISM_EXPECT_CODE(put("users", "ghost", "x", 1).status, Code::kConflict);
  PRISM_EXPECT_CODE(get("users", "ghost").status, Code::kNotFound);
}

TEST_P(StoreConformance, RemoveOfAMissingDocumentIsNotFound) {
  PRISM_EXPECT_CODE(remove("users", "ghost"), Code::kNotFound);
  PRISM_EXPECT_CODE(remove("users", "ghost", 0), Code::kNotFound);
  PRISM_EXPECT_CODE(remove("users", "ghost", 3), Code::kConflict);
}

TEST_P(StoreConformance, RemoveDeletesTheDocument) {
  ASSERT_TRUE(put("users", "alice", "1").status.ok());
  PRISM_EXPECT_CODE(remove("users", "alice"), Code::kOk);
  PRISM_EXPECT_CODE(get("users", "alice").status, Code::kNotFound);
}

TEST_P(StoreConformance, RemoveWithAConditionHonoursTheVersion) {
  ASSERT_TRUE(put("users", "alice", "1").status.ok());
  ASSERT_TRUE(put("users", "alice", "2").status.ok());
  PRISM_EXPECT_CODE(remove("users", "alice", 1), Code::kConflict);
  PRISM_EXPECT_CODE(remove("users", "alice", 0), Code::kConflict);
  EXPECT_TRUE(get("users", "alice").status.ok());
  PRISM_EXPECT_CODE(remove("users", "alice", 2), Code::kOk);
  PRISM_EXPECT_CODE(get("users", "alice").status, Code::kNotFound);
}

TEST_P(StoreConformance, ADeletedDocumentStartsAgainAtVersionOne) {
  ASSERT_TRUE(put("users", "alice", "1").status.ok());
  ASSERT_TRUE(put("users", "alice", "2").status.ok());
  ASSERT_TRUE(remove("users", "alice").ok());
  auto again = put("users", "alice", "new", 0);
  ASSERT_TRUE(again.status.ok()) << again.status.message;
  EXPECT_EQ(again.value, 1u);
}

TEST_P(StoreConformance, CollectionsAreSeparate) {
  ASSERT_TRUE(put("users", "k", "u").status.ok());
  ASSERT_TRUE(put("items", "k", "i").status.ok());
  EXPECT_EQ(get("users", "k").value.value, "u");
  EXPECT_EQ(get("items", "k").value.value, "i");
}

TEST_P(StoreConformance, ListReturnsPrefixMatchesInKeyOrder) {
  for (const char* key : {"b2", "a1", "b1", "b", "c", "b10", "ba"}) {
    ASSERT_TRUE(put("items", key, std::string("v-") + key).status.ok());
  }
  ASSERT_TRUE(put("other", "b0", "x").status.ok());
  auto listed = list("items", "b", "", 100);
  ASSERT_TRUE(listed.status.ok()) << listed.status.message;
  EXPECT_EQ(keys_of(listed.value), (std::vector<std::string>{"b", "b1", "b10", "b2", "ba"}));
  ASSERT_EQ(listed.value.size(), 5u);
  EXPECT_EQ(listed.value[1].collection, "items");
  EXPECT_EQ(listed.value[1].value, "v-b1");
  EXPECT_EQ(listed.value[1].version, 1u);
}

TEST_P(StoreConformance, ListWithAnEmptyPrefixListsTheWholeCollection) {
  for (const char* key : {"z", "a", "m"}) ASSERT_TRUE(put("items", key, "v").status.ok());
  auto listed = list("items", "", "", 10);
  ASSERT_TRUE(listed.status.ok());
  EXPECT_EQ(keys_of(listed.value), (std::vector<std::string>{"a", "m", "z"}));
  auto empty = list("nothing", "", "", 10);
  ASSERT_TRUE(empty.status.ok());
  EXPECT_TRUE(empty.value.empty());
}

TEST_P(StoreConformance, ListPagesWithAfterAndLimit) {
  std::vector<std::string> all;
  for (int i = 0; i < 25; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "k%02d", i);
    all.push_back(key);
    ASSERT_TRUE(put("items", key, "v").status.ok());
  }
  std::vector<std::string> seen;
  std::string after;
  for (;;) {
    auto listed = list("items", "k", after, 10);
    ASSERT_TRUE(listed.status.ok()) << listed.status.message;
    ASSERT_LE(listed.value.size(), 10u);
    if (listed.value.empty()) break;
    for (const Document& d : listed.value) seen.push_back(d.key);
    after = listed.value.back().key;
  }
  EXPECT_EQ(seen, all);
  // `after` is exclusive and need not be an existing key.
  EXPECT_EQ(keys_of(list("items", "k", "k05", 2).value), (std::vector<std::string>{"k06", "k07"}));
  EXPECT_EQ(keys_of(list("items", "k", "k055", 2).value), (std::vector<std::string>{"k06", "k07"}));
  EXPECT_EQ(keys_of(list("items", "", "k23", 10).value), (std::vector<std::string>{"k24"}));
}

TEST_P(StoreConformance, ValueOfTheMaximumSizeRoundTrips) {
  const std::string big(kMaxValueSize, 'x');
  ASSERT_TRUE(put("blobs", "big", big).status.ok());
  EXPECT_EQ(get("blobs", "big").value.value.size(), kMaxValueSize);
  PRISM_EXPECT_CODE(put("blobs", "too-big", big + "y").status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(get("blobs", "too-big").status, Code::kNotFound);
}

// ---- counters --------------------------------------------------------------------------

TEST_P(StoreConformance, ACounterNeverAddedToIsZero) {
  auto got = counter_get("visits");
  ASSERT_TRUE(got.status.ok()) << got.status.message;
  EXPECT_EQ(got.value, 0);
}

TEST_P(StoreConformance, CounterAddReturnsTheNewValue) {
  EXPECT_EQ(counter_add("visits", 5).value, 5);
  EXPECT_EQ(counter_add("visits", -7).value, -2);
  EXPECT_EQ(counter_add("visits", 0).value, -2);
  EXPECT_EQ(counter_get("visits").value, -2);
  EXPECT_EQ(counter_get("other").value, 0);
}

TEST_P(StoreConformance, ConcurrentCounterAddsFromManyThreadsSumExactly) {
  constexpr int kThreads = 8;
  constexpr int kAddsPerThread = 100;
  CompletionLatch latch(kThreads * kAddsPerThread);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAddsPerThread; ++i) {
        store().counter_add("hits", t + 1, [&](Status status, int64_t) {
          if (!status.ok()) failures.fetch_add(1);
          latch.arrive();
        });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const bool all_completed = latch.wait(30s);
  if (!all_completed) store_.reset();  // completes the rest before the latch goes away
  ASSERT_TRUE(all_completed);
  EXPECT_EQ(failures.load(), 0);
  // sum over t of (t + 1) * kAddsPerThread
  EXPECT_EQ(counter_get("hits").value, int64_t{kAddsPerThread} * kThreads * (kThreads + 1) / 2);
}

// ---- leaderboards ----------------------------------------------------------------------

TEST_P(StoreConformance, BoardCreateIsIdempotentForTheSameSpec) {
  PRISM_EXPECT_CODE(board_create("weekly", SortOrder::kDescending, Operator::kBest), Code::kOk);
  PRISM_EXPECT_CODE(board_create("weekly", SortOrder::kDescending, Operator::kBest), Code::kOk);
}

TEST_P(StoreConformance, BoardCreateWithADifferentSpecConflicts) {
  ASSERT_TRUE(board_create("weekly", SortOrder::kDescending, Operator::kBest).ok());
  PRISM_EXPECT_CODE(board_create("weekly", SortOrder::kAscending, Operator::kBest),
                    Code::kConflict);
  PRISM_EXPECT_CODE(board_create("weekly", SortOrder::kDescending, Operator::kSet),
                    Code::kConflict);
}

TEST_P(StoreConformance, AnUnknownBoardIsNotFound) {
  PRISM_EXPECT_CODE(submit("nope", "alice", 1).status, Code::kNotFound);
  PRISM_EXPECT_CODE(top("nope", 10).status, Code::kNotFound);
  PRISM_EXPECT_CODE(page("nope", 0, 10).status, Code::kNotFound);
  PRISM_EXPECT_CODE(around("nope", "alice", 2).status, Code::kNotFound);
  PRISM_EXPECT_CODE(rank("nope", "alice").status, Code::kNotFound);
  PRISM_EXPECT_CODE(board_remove("nope", "alice"), Code::kNotFound);
  PRISM_EXPECT_CODE(board_reset("nope"), Code::kNotFound);
}

TEST_P(StoreConformance, SubmitReturnsTheEntryWithRankAndSubmissionTime) {
  ASSERT_TRUE(board_create("b").ok());
  ASSERT_TRUE(submit("b", "bob", 50).status.ok());
  const int64_t before = now_ms();
  auto entry = submit("b", "alice", 100, 7, "meta");
  const int64_t after = now_ms();
  ASSERT_TRUE(entry.status.ok()) << entry.status.message;
  EXPECT_EQ(entry.value.owner, "alice");
  EXPECT_EQ(entry.value.score, 100);
  EXPECT_EQ(entry.value.subscore, 7);
  EXPECT_EQ(entry.value.metadata, "meta");
  EXPECT_EQ(entry.value.rank, 1u);
  EXPECT_GE(entry.value.submitted_ms, before);
  EXPECT_LE(entry.value.submitted_ms, after);
  EXPECT_EQ(rank("b", "bob").value.rank, 2u);
}

TEST_P(StoreConformance, BestKeepsTheHigherScoreOnADescendingBoard) {
  ASSERT_TRUE(board_create("b", SortOrder::kDescending, Operator::kBest).ok());
  ASSERT_TRUE(submit("b", "alice", 10, 0, "first").status.ok());
  auto worse = submit("b", "alice", 5, 0, "worse");
  ASSERT_TRUE(worse.status.ok());
  EXPECT_EQ(worse.value.score, 10);
  EXPECT_EQ(worse.value.metadata, "first");
  auto better = submit("b", "alice", 20, 0, "better");
  EXPECT_EQ(better.value.score, 20);
  EXPECT_EQ(better.value.metadata, "better");
  EXPECT_EQ(rank("b", "alice").value.score, 20);
}

TEST_P(StoreConformance, BestKeepsTheLowerScoreOnAnAscendingBoard) {
  ASSERT_TRUE(board_create("laps", SortOrder::kAscending, Operator::kBest).ok());
  ASSERT_TRUE(submit("laps", "alice", 60).status.ok());
  EXPECT_EQ(submit("laps", "alice", 75).value.score, 60);
  EXPECT_EQ(submit("laps", "alice", 55).value.score, 55);
  EXPECT_EQ(rank("laps", "alice").value.score, 55);
}

TEST_P(StoreConformance, BestComparesTheSubscoreWhenScoresTie) {
  ASSERT_TRUE(board_create("d", SortOrder::kDescending, Operator::kBest).ok());
  ASSERT_TRUE(submit("d", "alice", 10, 3).status.ok());
  EXPECT_EQ(submit("d", "alice", 10, 1).value.subscore, 3);
  EXPECT_EQ(submit("d", "alice", 10, 9).value.subscore, 9);
  ASSERT_TRUE(board_create("a", SortOrder::kAscending, Operator::kBest).ok());
  ASSERT_TRUE(submit("a", "alice", 10, 3).status.ok());
  EXPECT_EQ(submit("a", "alice", 10, 9).value.subscore, 3);
  EXPECT_EQ(submit("a", "alice", 10, 1).value.subscore, 1);
}

TEST_P(StoreConformance, SetReplacesTheScoreInBothOrders) {
  for (SortOrder order : {SortOrder::kDescending, SortOrder::kAscending}) {
    const std::string board = order == SortOrder::kDescending ? "desc" : "asc";
    ASSERT_TRUE(board_create(board, order, Operator::kSet).ok());
    ASSERT_TRUE(submit(board, "alice", 10, 1, "a").status.ok());
    auto lower = submit(board, "alice", 5, 2, "b");
    ASSERT_TRUE(lower.status.ok());
    EXPECT_EQ(lower.value.score, 5) << board;
    EXPECT_EQ(lower.value.subscore, 2) << board;
    EXPECT_EQ(lower.value.metadata, "b") << board;
    EXPECT_EQ(submit(board, "alice", 30).value.score, 30) << board;
    EXPECT_EQ(rank(board, "alice").value.score, 30) << board;
  }
}

TEST_P(StoreConformance, IncrementAddsScoreAndSubscoreInBothOrders) {
  for (SortOrder order : {SortOrder::kDescending, SortOrder::kAscending}) {
    const std::string board = order == SortOrder::kDescending ? "desc" : "asc";
    ASSERT_TRUE(board_create(board, order, Operator::kIncrement).ok());
    auto first = submit(board, "alice", 10, 1);
    ASSERT_TRUE(first.status.ok());
    EXPECT_EQ(first.value.score, 10) << board;
    auto second = submit(board, "alice", 5, 2);
    EXPECT_EQ(second.value.score, 15) << board;
    EXPECT_EQ(second.value.subscore, 3) << board;
    auto third = submit(board, "alice", -20, 0);
    EXPECT_EQ(third.value.score, -5) << board;
    EXPECT_EQ(rank(board, "alice").value.score, -5) << board;
  }
}

TEST_P(StoreConformance, TopRanksADescendingBoardHighestFirst) {
  ASSERT_TRUE(board_create("b", SortOrder::kDescending).ok());
  ASSERT_TRUE(submit("b", "carol", 30).status.ok());
  ASSERT_TRUE(submit("b", "alice", 100).status.ok());
  ASSERT_TRUE(submit("b", "bob", -5).status.ok());
  ASSERT_TRUE(submit("b", "dave", 50).status.ok());
  auto all = top("b", 10);
  ASSERT_TRUE(all.status.ok()) << all.status.message;
  EXPECT_EQ(owners_of(all.value), (std::vector<std::string>{"alice", "dave", "carol", "bob"}));
  EXPECT_EQ(ranks_of(all.value), (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(all.value[0].score, 100);
  EXPECT_EQ(owners_of(top("b", 2).value), (std::vector<std::string>{"alice", "dave"}));
}

TEST_P(StoreConformance, TopRanksAnAscendingBoardLowestFirst) {
  ASSERT_TRUE(board_create("laps", SortOrder::kAscending).ok());
  ASSERT_TRUE(submit("laps", "carol", 30).status.ok());
  ASSERT_TRUE(submit("laps", "alice", 100).status.ok());
  ASSERT_TRUE(submit("laps", "bob", -5).status.ok());
  auto all = top("laps", 10);
  ASSERT_TRUE(all.status.ok());
  EXPECT_EQ(owners_of(all.value), (std::vector<std::string>{"bob", "carol", "alice"}));
  EXPECT_EQ(ranks_of(all.value), (std::vector<uint64_t>{1, 2, 3}));
}

// The ends of the 64-bit range, through every operator's path (an increment computes in
// the store, set and best only order): each order ranks them exactly and gives them back,
// from a submission and from a window (which sqlite reads from its rank index alone).
TEST_P(StoreConformance, ScoresAtTheEndsOfTheRangeRankExactlyInBothOrders) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::vector<std::pair<std::string, int64_t>> submitted{
      {"min", kMin}, {"minus1", -1}, {"zero", 0}, {"one", 1}, {"max", kMax}};
  for (Operator op : {Operator::kSet, Operator::kBest, Operator::kIncrement}) {
    for (SortOrder order : {SortOrder::kDescending, SortOrder::kAscending}) {
      const bool desc = order == SortOrder::kDescending;
      const std::string board = std::string(desc ? "desc" : "asc") + std::to_string(static_cast<int>(op));
      ASSERT_TRUE(board_create(board, order, op).ok());
      for (const auto& [owner, score] : submitted) {
        auto entry = submit(board, owner, score, score, owner + "'s");
        ASSERT_TRUE(entry.status.ok()) << board << " " << owner << ": " << entry.status.message;
        EXPECT_EQ(entry.value.score, score) << board << " " << owner;
        EXPECT_EQ(entry.value.subscore, score) << board << " " << owner;
      }
      auto all = top(board, 10);
      ASSERT_TRUE(all.status.ok()) << all.status.message;
      const std::vector<std::string> ascending{"min", "minus1", "zero", "one", "max"};
      EXPECT_EQ(owners_of(all.value),
                desc ? std::vector<std::string>(ascending.rbegin(), ascending.rend()) : ascending)
          << board;
      for (const Entry& e : all.value) {
        const auto it = std::find_if(submitted.begin(), submitted.end(),
                                     [&](const auto& s) { return s.first == e.owner; });
        ASSERT_NE(it, submitted.end()) << board << " " << e.owner;
        EXPECT_EQ(e.score, it->second) << board << " " << e.owner;
        EXPECT_EQ(e.subscore, it->second) << board << " " << e.owner;
        EXPECT_EQ(e.metadata, e.owner + "'s") << board << " " << e.owner;
      }
    }
  }
}
TEST_P(StoreConformance, TiesAreBrokenBySubscoreThenSubmissionTime) {
  for (SortOrder order : {SortOrder::kDescending, SortOrder::kAscending}) {
    const bool desc = order == SortOrder::kDescending;
    const std::string board = desc ? "desc" : "asc";
    ASSERT_TRUE(board_create(board, order, Operator::kSet).ok());
    // Same score; "zed" and "amy" also tie on the subscore, and zed submitted first.
    auto zed = submit(board, "zed", 10, 5);
    ASSERT_TRUE(zed.status.ok());
    wait_past_ms(zed.value.submitted_ms);
    ASSERT_TRUE(submit(board, "amy", 10, 5).status.ok());
    ASSERT_TRUE(submit(board, "low", 10, 1).status.ok());
    ASSERT_TRUE(submit(board, "high", 10, 9).status.ok());
    auto all = top(board, 10);
    ASSERT_TRUE(all.status.ok());
    if (desc) {
      EXPECT_EQ(owners_of(all.value), (std::vector<std::string>{"high", "zed", "amy", "low"}));
    } else {
      EXPECT_EQ(owners_of(all.value), (std::vector<std::string>{"low", "zed", "amy", "high"}));
    }
    EXPECT_EQ(rank(board, "zed").value.rank, 2u) << board;
    EXPECT_EQ(rank(board, "amy").value.rank, 3u) << board;
  }
}

TEST_P(StoreConformance, PageReturnsTheEntriesAfterARank) {
  ASSERT_TRUE(board_create("b").ok());
  for (int i = 1; i <= 10; ++i) {
    ASSERT_TRUE(submit("b", "p" + std::to_string(i), i * 10).status.ok());
  }
  auto second = page("b", 3, 4);
  ASSERT_TRUE(second.status.ok()) << second.status.message;
  EXPECT_EQ(owners_of(second.value), (std::vector<std::string>{"p7", "p6", "p5", "p4"}));
  EXPECT_EQ(ranks_of(second.value), (std::vector<uint64_t>{4, 5, 6, 7}));
  EXPECT_EQ(ranks_of(page("b", 8, 5).value), (std::vector<uint64_t>{9, 10}));
  EXPECT_TRUE(page("b", 10, 5).value.empty());
  EXPECT_EQ(ranks_of(page("b", 0, 2).value), (std::vector<uint64_t>{1, 2}));
}

TEST_P(StoreConformance, AroundReturnsTheOwnerAndItsNeighbours) {
  ASSERT_TRUE(board_create("b").ok());
  for (int i = 1; i <= 10; ++i) {
    ASSERT_TRUE(submit("b", "p" + std::to_string(i), i * 10).status.ok());
  }
  // p6 ranks 5th (p10 first).
  auto middle = around("b", "p6", 2);
  ASSERT_TRUE(middle.status.ok()) << middle.status.message;
  EXPECT_EQ(owners_of(middle.value), (std::vector<std::string>{"p8", "p7", "p6", "p5", "p4"}));
  EXPECT_EQ(ranks_of(middle.value), (std::vector<uint64_t>{3, 4, 5, 6, 7}));
  EXPECT_EQ(ranks_of(around("b", "p10", 2).value), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(ranks_of(around("b", "p1", 3).value), (std::vector<uint64_t>{7, 8, 9, 10}));
  EXPECT_EQ(ranks_of(around("b", "p5", 1000).value).size(), 10u);
  PRISM_EXPECT_CODE(around("b", "nobody", 2).status, Code::kNotFound);
}

TEST_P(StoreConformance, RankOfAnAbsentOwnerIsNotFound) {
  ASSERT_TRUE(board_create("b").ok());
  PRISM_EXPECT_CODE(rank("b", "nobody").status, Code::kNotFound);
  ASSERT_TRUE(submit("b", "alice", 1, 2, "m").status.ok());
  auto got = rank("b", "alice");
  ASSERT_TRUE(got.status.ok());
  EXPECT_EQ(got.value.owner, "alice");
  EXPECT_EQ(got.value.score, 1);
  EXPECT_EQ(got.value.subscore, 2);
  EXPECT_EQ(got.value.metadata, "m");
  EXPECT_EQ(got.value.rank, 1u);
  EXPECT_GT(got.value.submitted_ms, 0);
}

TEST_P(StoreConformance, BoardRemoveDropsTheOwnerAndCloseTheRanks) {
  ASSERT_TRUE(board_create("b").ok());
  ASSERT_TRUE(submit("b", "alice", 3).status.ok());
  ASSERT_TRUE(submit("b", "bob", 2).status.ok());
  ASSERT_TRUE(submit("b", "carol", 1).status.ok());
  PRISM_EXPECT_CODE(board_remove("b", "bob"), Code::kOk);
  PRISM_EXPECT_CODE(rank("b", "bob").status, Code::kNotFound);
  EXPECT_EQ(rank("b", "carol").value.rank, 2u);
  PRISM_EXPECT_CODE(board_remove("b", "bob"), Code::kNotFound);
}

TEST_P(StoreConformance, ResetRemovesEveryEntryButKeepsTheBoard) {
  ASSERT_TRUE(board_create("b", SortOrder::kAscending, Operator::kSet).ok());
  ASSERT_TRUE(submit("b", "alice", 3).status.ok());
  ASSERT_TRUE(submit("b", "bob", 2).status.ok());
  PRISM_EXPECT_CODE(board_reset("b"), Code::kOk);
  auto empty = top("b", 10);
  ASSERT_TRUE(empty.status.ok());
  EXPECT_TRUE(empty.value.empty());
  PRISM_EXPECT_CODE(board_create("b", SortOrder::kAscending, Operator::kSet), Code::kOk);
  PRISM_EXPECT_CODE(board_create("b", SortOrder::kDescending, Operator::kSet), Code::kConflict);
  EXPECT_EQ(submit("b", "bob", 9).value.rank, 1u);
}

TEST_P(StoreConformance, BoardsAreIndependent) {
  ASSERT_TRUE(board_create("one").ok());
  ASSERT_TRUE(board_create("two").ok());
  ASSERT_TRUE(submit("one", "alice", 5).status.ok());
  ASSERT_TRUE(submit("two", "alice", 50).status.ok());
  ASSERT_TRUE(submit("two", "bob", 60).status.ok());
  EXPECT_EQ(rank("one", "alice").value.rank, 1u);
  EXPECT_EQ(rank("two", "alice").value.rank, 2u);
  ASSERT_TRUE(board_reset("two").ok());
  EXPECT_EQ(rank("one", "alice").value.score, 5);
}

// ---- presence --------------------------------------------------------------------------

TEST_P(StoreConformance, PresenceSetThenGetReturnsTheStatusAndExpiry) {
  const int64_t before = now_ms();
  ASSERT_TRUE(presence_set("alice", "lobby:eu-1", 60s).ok());
  const int64_t after = now_ms();
  auto got = presence_get("alice");
  ASSERT_TRUE(got.status.ok()) << got.status.message;
  EXPECT_EQ(got.value.owner, "alice");
  EXPECT_EQ(got.value.status, "lobby:eu-1");
  EXPECT_GE(got.value.expires_at_ms, before + 60'000);
  EXPECT_LE(got.value.expires_at_ms, after + 60'000);
  PRISM_EXPECT_CODE(presence_get("bob").status, Code::kNotFound);
}

TEST_P(StoreConformance, PresenceSetReplacesTheEntry) {
  ASSERT_TRUE(presence_set("alice", "lobby", 60s).ok());
  ASSERT_TRUE(presence_set("alice", "match:42", 120s).ok());
  auto got = presence_get("alice");
  EXPECT_EQ(got.value.status, "match:42");
  EXPECT_GE(got.value.expires_at_ms, now_ms() + 60'000);
}

TEST_P(StoreConformance, PresenceDisappearsAfterItsTtl) {
  ASSERT_TRUE(presence_set("alice", "lobby", 100ms).ok());
  ASSERT_TRUE(presence_set("bob", "lobby", 60s).ok());
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  Reply<Presence> got;
  do {
    got = presence_get("alice");
    if (got.status.code == Code::kNotFound) break;
    ASSERT_TRUE(got.status.ok()) << got.status.message;
    std::this_thread::yield();
  } while (std::chrono::steady_clock::now() < deadline);
  PRISM_EXPECT_CODE(got.status, Code::kNotFound);
  auto listed = presence_list("lobby", 10);
  ASSERT_TRUE(listed.status.ok());
  ASSERT_EQ(listed.value.size(), 1u);
  EXPECT_EQ(listed.value[0].owner, "bob");
  // An expired owner can come back.
  ASSERT_TRUE(presence_set("alice", "lobby", 60s).ok());
  EXPECT_TRUE(presence_get("alice").status.ok());
}

TEST_P(StoreConformance, PresenceRemoveDropsTheEntry) {
  ASSERT_TRUE(presence_set("alice", "lobby", 60s).ok());
  PRISM_EXPECT_CODE(presence_remove("alice"), Code::kOk);
  PRISM_EXPECT_CODE(presence_get("alice").status, Code::kNotFound);
  PRISM_EXPECT_CODE(presence_remove("alice"), Code::kNotFound);
}

TEST_P(StoreConformance, PresenceListFiltersByStatusPrefixInOwnerOrder) {
  ASSERT_TRUE(presence_set("dave", "lobby:eu-1", 60s).ok());
  ASSERT_TRUE(presence_set("alice", "lobby:eu-2", 60s).ok());
  ASSERT_TRUE(presence_set("carol", "match:7", 60s).ok());
  ASSERT_TRUE(presence_set("bob", "lobby:us-1", 60s).ok());
  auto lobby = presence_list("lobby:", 10);
  ASSERT_TRUE(lobby.status.ok()) << lobby.status.message;
  std::vector<std::string> owners;
  for (const Presence& p : lobby.value) owners.push_back(p.owner);
  EXPECT_EQ(owners, (std::vector<std::string>{"alice", "bob", "dave"}));
  EXPECT_EQ(lobby.value[0].status, "lobby:eu-2");
  EXPECT_EQ(presence_list("lobby:eu", 10).value.size(), 2u);
  EXPECT_EQ(presence_list("", 10).value.size(), 4u);
  auto limited = presence_list("", 2);
  ASSERT_EQ(limited.value.size(), 2u);
  EXPECT_EQ(limited.value[0].owner, "alice");
  EXPECT_EQ(limited.value[1].owner, "bob");
}

// ---- apply -----------------------------------------------------------------------------

TEST_P(StoreConformance, ApplyReturnsVersionsAndCounterValuesInWriteOrder) {
  ASSERT_TRUE(board_create("b").ok());
  ASSERT_TRUE(put("inv", "sword", "1").status.ok());
  ASSERT_TRUE(put("inv", "shield", "1").status.ok());
  ASSERT_TRUE(counter_add("gold", 10).status.ok());
  auto applied = apply({put_write("inv", "sword", "2", 1), counter_write("gold", -3),
                        delete_write("inv", "shield", 1), put_write("inv", "bow", "1", 0),
                        submit_write("b", "alice", 42)});
  ASSERT_TRUE(applied.status.ok()) << applied.status.message;
  EXPECT_EQ(applied.value, (std::vector<int64_t>{2, 7, 0, 1, 0}));
  EXPECT_EQ(get("inv", "sword").value.value, "2");
  PRISM_EXPECT_CODE(get("inv", "shield").status, Code::kNotFound);
  EXPECT_EQ(get("inv", "bow").value.version, 1u);
  EXPECT_EQ(counter_get("gold").value, 7);
  EXPECT_EQ(rank("b", "alice").value.score, 42);
}

TEST_P(StoreConformance, ApplyOfAnEmptyBatchSucceeds) {
  auto applied = apply({});
  ASSERT_TRUE(applied.status.ok()) << applied.status.message;
  EXPECT_TRUE(applied.value.empty());
}

TEST_P(StoreConformance, ApplyWritesSeeEarlierWritesOfTheSameBatch) {
  auto applied = apply({put_write("c", "k", "a", 0), put_write("c", "k", "b", 1),
                        counter_write("n", 2), counter_write("n", 3)});
  ASSERT_TRUE(applied.status.ok()) << applied.status.message;
  EXPECT_EQ(applied.value, (std::vector<int64_t>{1, 2, 2, 5}));
  EXPECT_EQ(get("c", "k").value.value, "b");
}

// Two submissions of one owner to one board in a batch: the second applies the board's
// operator to what the first left, and the owner ends up ranked once, with the last
// metadata.
TEST_P(StoreConformance, ApplySubmitsOfOneOwnerToOneBoardBuildOnEachOther) {
  ASSERT_TRUE(board_create("sum", SortOrder::kDescending, Operator::kIncrement).ok());
  ASSERT_TRUE(submit("sum", "alice", 5, 0, "old").status.ok());
  ASSERT_TRUE(submit("sum", "bob", 9).status.ok());
  auto applied = apply({submit_write("sum", "alice", 3), submit_write("sum", "carol", 1),
                        submit_write("sum", "alice", 4, 0, "new")});
  ASSERT_TRUE(applied.status.ok()) << applied.status.message;
  auto all = top("sum", 10);
  ASSERT_TRUE(all.status.ok()) << all.status.message;
  ASSERT_EQ(all.value.size(), 3u);
  EXPECT_EQ(all.value[0].owner, "alice");
  EXPECT_EQ(all.value[0].score, 12);
  EXPECT_EQ(all.value[0].metadata, "new");
  EXPECT_EQ(all.value[1].owner, "bob");
  EXPECT_EQ(all.value[2].owner, "carol");
  EXPECT_EQ(all.value[2].rank, 3u);
}

TEST_P(StoreConformance, ApplyWithAStaleVersionInTheMiddleAppliesNothing) {
  ASSERT_TRUE(board_create("b").ok());
  ASSERT_TRUE(put("inv", "sword", "1").status.ok());
  ASSERT_TRUE(put("inv", "sword", "2").status.ok());
  auto applied = apply({counter_write("gold", 5), put_write("inv", "new", "x", 0),
                        put_write("inv", "sword", "3", 1), submit_write("b", "alice", 1),
                        delete_write("inv", "sword")});
  PRISM_EXPECT_CODE(applied.status, Code::kConflict);
  EXPECT_NE(applied.status.message.find("write 2"), std::string::npos) << applied.status.message;
  EXPECT_EQ(counter_get("gold").value, 0);
  PRISM_EXPECT_CODE(get("inv", "new").status, Code::kNotFound);
  EXPECT_EQ(get("inv", "sword").value.value, "2");
  PRISM_EXPECT_CODE(rank("b", "alice").status, Code::kNotFound);
}

TEST_P(StoreConformance, ApplyWithAnInvalidWriteAppliesNothing) {
  auto applied = apply({counter_write("gold", 5), put_write("inv", "", "x")});
  PRISM_EXPECT_CODE(applied.status, Code::kInvalidArgument);
  EXPECT_NE(applied.status.message.find("write 1"), std::string::npos) << applied.status.message;
  auto oversized =
      apply({counter_write("gold", 5), put_write("inv", "k", std::string(kMaxValueSize + 1, 'x'))});
  PRISM_EXPECT_CODE(oversized.status, Code::kInvalidArgument);
  EXPECT_EQ(counter_get("gold").value, 0);
}

TEST_P(StoreConformance, ApplyFailsOnAMissingDocumentOrBoardAndAppliesNothing) {
  auto missing_doc = apply({counter_write("gold", 5), delete_write("inv", "ghost")});
  PRISM_EXPECT_CODE(missing_doc.status, Code::kNotFound);
  EXPECT_NE(missing_doc.status.message.find("write 1"), std::string::npos)
      << missing_doc.status.message;
  auto missing_board = apply({counter_write("gold", 5), submit_write("nope", "alice", 1)});
  PRISM_EXPECT_CODE(missing_board.status, Code::kNotFound);
  EXPECT_NE(missing_board.status.message.find("write 1"), std::string::npos)
      << missing_board.status.message;
  EXPECT_EQ(counter_get("gold").value, 0);
}

// ---- argument validation ---------------------------------------------------------------

TEST_P(StoreConformance, EmptyNamesAreInvalid) {
  PRISM_EXPECT_CODE(put("", "k", "v").status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(put("c", "", "v").status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(get("c", "").status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(remove("", "k"), Code::kInvalidArgument);
  PRISM_EXPECT_CODE(list("", "", "", 10).status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(counter_add("", 1).status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(counter_get("").status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(board_create(""), Code::kInvalidArgument);
  ASSERT_TRUE(board_create("b").ok());
  PRISM_EXPECT_CODE(submit("b", "", 1).status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(rank("b", "").status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(presence_set("", "s", 60s), Code::kInvalidArgument);
  PRISM_EXPECT_CODE(presence_get("").status, Code::kInvalidArgument);
}

TEST_P(StoreConformance, NamesLongerThanTheMaximumAreInvalid) {
  const std::string longest(kMaxNameSize, 'n');
  const std::string too_long(kMaxNameSize + 1, 'n');
  EXPECT_TRUE(put(longest, longest, "v").status.ok());
  EXPECT_TRUE(get(longest, longest).status.ok());
  PRISM_EXPECT_CODE(put(too_long, "k", "v").status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(put("c", too_long, "v").status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(counter_add(too_long, 1).status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(board_create(too_long), Code::kInvalidArgument);
  ASSERT_TRUE(board_create("b").ok());
  PRISM_EXPECT_CODE(submit("b", too_long, 1).status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(presence_set(too_long, "s", 60s), Code::kInvalidArgument);
}

TEST_P(StoreConformance, NamesWithANulByteAreInvalid) {
  const std::string with_nul("a\0b", 3);
  PRISM_EXPECT_CODE(put("c", with_nul, "v").status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(put(with_nul, "k", "v").status, Code::kInvalidArgument);
  PRISM_EXPECT_CODE(counter_add(with_nul, 1).status, Code::kInvalidArgument);
}

TEST_P(StoreConformance, OversizedMetadataAndStatusAreInvalid) {
  ASSERT_TRUE(board_create("b").ok());
  EXPECT_TRUE(submit("b", "alice", 1, 0, std::string(kMaxMetadataSize, 'm')).status.ok());
  PRISM_EXPECT_CODE(submit("b", "bob", 1, 0, std::string(kMaxMetadataSize + 1, 'm')).status,
                    Code::kInvalidArgument);
  EXPECT_TRUE(presence_set("alice", std::string(kMaxStatusSize, 's'), 60s).ok());
  PRISM_EXPECT_CODE(presence_set("bob", std::string(kMaxStatusSize + 1, 's'), 60s),
                    Code::kInvalidArgument);
}

TEST_P(StoreConformance, LimitsOutsideOneToTheMaximumAreInvalid) {
  ASSERT_TRUE(board_create("b").ok());
  ASSERT_TRUE(submit("b", "alice", 1).status.ok());
  for (uint32_t bad : {0u, kMaxListLimit + 1}) {
    PRISM_EXPECT_CODE(list("c", "", "", bad).status, Code::kInvalidArgument);
    PRISM_EXPECT_CODE(top("b", bad).status, Code::kInvalidArgument);
    PRISM_EXPECT_CODE(page("b", 0, bad).status, Code::kInvalidArgument);
    PRISM_EXPECT_CODE(around("b", "alice", bad).status, Code::kInvalidArgument);
    PRISM_EXPECT_CODE(presence_list("", bad).status, Code::kInvalidArgument);
  }
  EXPECT_TRUE(list("c", "", "", kMaxListLimit).status.ok());
  EXPECT_TRUE(top("b", kMaxListLimit).status.ok());
  EXPECT_TRUE(presence_list("", kMaxListLimit).status.ok());
}

TEST_P(StoreConformance, ANonPositiveTtlIsInvalid) {
  PRISM_EXPECT_CODE(presence_set("alice", "s", 0ms), Code::kInvalidArgument);
  PRISM_EXPECT_CODE(presence_set("alice", "s", -5ms), Code::kInvalidArgument);
}

TEST_P(StoreConformance, AnUnknownOperatorIsInvalid) {
  PRISM_EXPECT_CODE(board_create("b", SortOrder::kDescending, static_cast<Operator>(42)),
                    Code::kInvalidArgument);
}

// ---- threading -------------------------------------------------------------------------

TEST_P(StoreConformance, CompletionsNeverRunInsideTheCall) {
  // Even a call refused at once (invalid argument) completes later, not inside the call.
  for (int i = 0; i < 20; ++i) {
    bool returned = false;
    std::mutex mu;
    std::condition_variable cv;
    bool completed = false;
    bool completed_inside = false;
    const std::thread::id caller = std::this_thread::get_id();
    store().counter_get(i % 2 == 0 ? "ok" : "", [&](Status, int64_t) {
      std::lock_guard lock(mu);
      completed_inside = std::this_thread::get_id() == caller && !returned;
      completed = true;
      cv.notify_all();
    });
    {
      std::lock_guard lock(mu);
      returned = true;
    }
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, kDeadline, [&] { return completed; })) {
      lock.unlock();
      store_.reset();  // completes the call before its locals go away
      FAIL() << "no completion within the deadline";
    }
    EXPECT_FALSE(completed_inside);
  }
}

TEST_P(StoreConformance, CallsFromManyThreadsAllCompleteExactlyOnce) {
  constexpr int kThreads = 4;
  constexpr int kCalls = 50;
  std::atomic<int> completions{0};
  CompletionLatch latch(kThreads * kCalls);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        store().put("c", "t" + std::to_string(t) + "-" + std::to_string(i), "v", std::nullopt,
                    [&](Status status, uint64_t version) {
                      EXPECT_TRUE(status.ok()) << status.message;
                      EXPECT_EQ(version, 1u);
                      completions.fetch_add(1);
                      latch.arrive();
                    });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const bool all_completed = latch.wait(30s);
  if (!all_completed) store_.reset();  // completes the rest before the latch goes away
  ASSERT_TRUE(all_completed);
  EXPECT_EQ(completions.load(), kThreads * kCalls);
  auto listed = list("c", "t", "", 1000);
  EXPECT_EQ(listed.value.size(), size_t{kThreads * kCalls});
}

}  // namespace prism::store::conformance
