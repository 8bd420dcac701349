// The storage facade's backend interface (DESIGN.md §6): documents with compare-and-set
// versions, counters, leaderboards and presence, plus atomic batches of writes. One
// implementation per engine (sqlite, redis, postgres); the same conformance suite
// (tests/unit/store_conformance.hpp) runs against each of them.
//
// Threading: every call may be made from any thread and returns at once; its completion
// runs later on a thread of the backend's choosing (never inside the call itself), exactly
// once, also when the backend is shutting down (then with kUnavailable). The per-worker
// Store (store.hpp) posts completions back to the worker that asked. A completion
// reporting kOk means the write is durable in the backend (committed, fsync'd per its
// own configuration).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace prism::store {

enum class Code : uint8_t {
  kOk,
  kNotFound,         // no such document / owner / board
  kConflict,         // a compare-and-set version did not match
  kInvalidArgument,  // bad name, negative limit, unknown operator, oversized value
  kUnavailable,      // the backend cannot be reached (connection lost, shutting down)
  kInternal,         // anything else; the message says what
};

struct Status {
  Code code = Code::kOk;
  std::string message;  // empty on kOk
  bool ok() const { return code == Code::kOk; }
};

// ---- documents: (collection, key) → bytes, with a version for compare-and-set -------

struct Document {
  std::string collection;
  std::string key;
  std::string value;  // opaque bytes
  uint64_t version = 0;  // 1 for a new document, +1 per write
};

// A put's condition: nullopt = unconditional; 0 = only if the document does not exist;
// n > 0 = only if its current version is n. A failed condition is kConflict.
using ExpectedVersion = std::optional<uint64_t>;

// ---- leaderboards --------------------------------------------------------------------

enum class SortOrder : uint8_t { kDescending, kAscending };  // which end ranks first
enum class Operator : uint8_t {
  kBest,       // keep the better of old and new score (per SortOrder)
  kSet,        // replace
  kIncrement,  // add to the old score (and subscore)
};

struct BoardSpec {
  std::string board;
  SortOrder order = SortOrder::kDescending;
  Operator op = Operator::kBest;
};

struct Entry {
  std::string owner;
  int64_t score = 0;
  int64_t subscore = 0;
  std::string metadata;       // small opaque bytes
  uint64_t rank = 0;          // 1-based, filled by reads
  int64_t submitted_ms = 0;   // Unix ms of the submission that set the current score
};
// Ties: the better subscore (same direction as the score) ranks first, then the earlier
// submission.

// ---- presence --------------------------------------------------------------------------

struct Presence {
  std::string owner;
  std::string status;           // opaque small text, e.g. "lobby:eu-1"
  int64_t expires_at_ms = 0;    // Unix ms; the entry disappears after it
};

// ---- atomic batches --------------------------------------------------------------------

// Writes applied all or nothing: if any condition fails (kConflict) or any write is
// invalid, none is applied and the batch's status says which op (by index) and why.
struct Write {
  enum class Kind : uint8_t { kPut, kDelete, kCounterAdd, kSubmit } kind = Kind::kPut;
  // kPut / kDelete
  std::string collection;
  std::string key;
  std::string value;
  ExpectedVersion expected;  // kPut and kDelete honour it
  // kCounterAdd
  std::string counter;
  int64_t delta = 0;
  // kSubmit (the board must exist)
  std::string board;
  Entry entry;
};

template <typename T>
using Callback = std::function<void(Status, T)>;
using Done = std::function<void(Status)>;

class Backend {
 public:
  virtual ~Backend() = default;
  // "sqlite", "redis", "postgres": for logs and health.
  virtual std::string_view name() const = 0;

  // Documents. get: kNotFound when absent. put returns the new version. list returns
  // documents of `collection` whose key starts with `prefix`, in key order, keys after
  // `after` (exclusive; "" = from the start), at most `limit` (1..1000).
  virtual void get(std::string collection, std::string key, Callback<Document> done) = 0;
  virtual void put(std::string collection, std::string key, std::string value,
                   ExpectedVersion expected, Callback<uint64_t> done) = 0;
  virtual void remove(std::string collection, std::string key, ExpectedVersion expected,
                      Done done) = 0;
  virtual void list(std::string collection, std::string prefix, std::string after, uint32_t limit,
                    Callback<std::vector<Document>> done) = 0;

  // Counters: add returns the new value; get returns 0 for a counter never added to.
  virtual void counter_add(std::string counter, int64_t delta, Callback<int64_t> done) = 0;
  virtual void counter_get(std::string counter, Callback<int64_t> done) = 0;

  // Leaderboards. create is idempotent for the same spec and kConflict for a different
  // one. submit applies the board's operator and returns the owner's entry with its rank.
  // top: ranks 1..limit. page: the `limit` entries after rank `after_rank`. around: the
  // owner and up to `limit` entries on each side. rank: the owner's entry (kNotFound if
  // absent). reset removes every entry but keeps the board.
  virtual void board_create(BoardSpec spec, Done done) = 0;
  virtual void board_submit(std::string board, Entry entry, Callback<Entry> done) = 0;
  virtual void board_top(std::string board, uint32_t limit, Callback<std::vector<Entry>> done) = 0;
  virtual void board_page(std::string board, uint64_t after_rank, uint32_t limit,
                          Callback<std::vector<Entry>> done) = 0;
  virtual void board_around(std::string board, std::string owner, uint32_t limit,
                            Callback<std::vector<Entry>> done) = 0;
  virtual void board_rank(std::string board, std::string owner, Callback<Entry> done) = 0;
  virtual void board_remove(std::string board, std::string owner, Done done) = 0;
  virtual void board_reset(std::string board, Done done) = 0;

  // Presence: set replaces the owner's entry; get is kNotFound once it expired; list
  // returns live entries whose status starts with `status_prefix`, owner order, at most
  // `limit` (1..1000).
  virtual void presence_set(std::string owner, std::string status, std::chrono::milliseconds ttl,
                            Done done) = 0;
  virtual void presence_get(std::string owner, Callback<Presence> done) = 0;
  virtual void presence_remove(std::string owner, Done done) = 0;
  virtual void presence_list(std::string status_prefix, uint32_t limit,
                             Callback<std::vector<Presence>> done) = 0;

  // All or nothing (see Write). The callback gets the new document versions and counter
  // values in the order of the writes that produce them (0 for the others).
  virtual void apply(std::vector<Write> writes, Callback<std::vector<int64_t>> done) = 0;

  // Health for status reporting: false while the backend is disconnected.
  virtual bool healthy() const = 0;
};

// Limits every backend enforces the same way (kInvalidArgument beyond them).
inline constexpr size_t kMaxNameSize = 128;        // collection, key, counter, board, owner
inline constexpr size_t kMaxValueSize = 1 << 20;   // a document's value
inline constexpr size_t kMaxMetadataSize = 1024;   // a leaderboard entry's metadata
inline constexpr size_t kMaxStatusSize = 256;      // a presence status
inline constexpr uint32_t kMaxListLimit = 1000;

}  // namespace prism::store
