// RedisBackend: argument checks, the mapping of each call onto the store script (or a
// plain command) and the decoding of its replies into the facade's types.
#include "store/redis_backend.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <iterator>
#include <limits>
#include <utility>

#include "store/redis_script.hpp"
#include "store/validate.hpp"

namespace prism::store {
namespace {

// ---- argument checks (the shared ones are in validate.hpp) ------------------------------

template <typename... Checks>
Status first_error(Checks... checks) {
  Status result;
  ((result.ok() ? (void)(result = std::move(checks)) : (void)0), ...);
  return result;
}

// put() and remove() run as one-write batches; their messages need no batch index.
void strip_batch_prefix(Status& s) {
  constexpr std::string_view kPrefix = "write 0: ";
  if (s.message.starts_with(kPrefix)) s.message.erase(0, kPrefix.size());
}

// ---- encodings shared with the script ------------------------------------------------------

// The sort key of a 64-bit value: 16 hex digits whose byte order is the rank order on a
// board of that order (top bit flipped, all bits flipped for descending).
std::string sort_key(int64_t value, bool descending) {
  uint64_t u = static_cast<uint64_t>(value) ^ (uint64_t{1} << 63);
  if (descending) u = ~u;
  char text[17];
  std::snprintf(text, sizeof(text), "%016" PRIx64, u);
  return text;
}

// A submission's score and subscore as the script ranks them: their sort keys for an
// ascending board, then for a descending one. The script picks the board's, so a set or
// best submission costs it no arithmetic: on Redis, the script's own Lua was ~61 % of a
// match recording's work (docs/performance.md).
std::array<std::string, 2> ranked_keys(const Entry& entry) {
  return {sort_key(entry.score, false) + sort_key(entry.subscore, false),
          sort_key(entry.score, true) + sort_key(entry.subscore, true)};
}

std::string expected_text(const ExpectedVersion& expected) {
  return expected ? std::to_string(*expected) : std::string();
}

uint64_t parse_hex64(std::string_view text) {
  uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value, 16);
  return value;
}

// Inverse of sort_key.
int64_t from_sort_key(std::string_view text, bool descending) {
  uint64_t u = parse_hex64(text);
  if (descending) u = ~u;
  return static_cast<int64_t>(u ^ (uint64_t{1} << 63));
}

bool to_int64(const redisReply* r, int64_t* out) {
  if (r->type == REDIS_REPLY_INTEGER) {
    *out = r->integer;
    return true;
  }
  if (r->type != REDIS_REPLY_STRING) return false;
  const std::string_view text = reply_text(r);
  const auto result = std::from_chars(text.data(), text.data() + text.size(), *out);
  return result.ec == std::errc() && result.ptr == text.data() + text.size();
}

Status unavailable(const RedisConnection& connection) {
  return {Code::kUnavailable, "redis at " + connection.endpoint() + " is not reachable"};
}

Status malformed(std::string_view what) {
  return {Code::kInternal, "redis: unexpected reply to " + std::string(what)};
}

// The status of a reply: a script refusal "PRISM <CODE> <index> <message>" maps to its
// code; `index` receives the write index for apply().
Status reply_status(const RedisConnection& connection, const redisReply* r,
                    size_t* index = nullptr) {
  if (r == nullptr) return unavailable(connection);
  if (r->type != REDIS_REPLY_ERROR) return {};
  std::string_view text = reply_text(r);
  if (!text.starts_with("PRISM ")) return {Code::kInternal, "redis: " + std::string(text)};
  text.remove_prefix(6);
  const size_t code_end = text.find(' ');
  const std::string_view code = text.substr(0, code_end);
  text.remove_prefix(code_end == std::string_view::npos ? text.size() : code_end + 1);
  const size_t index_end = text.find(' ');
  size_t at = 0;
  std::from_chars(text.data(), text.data() + std::min(index_end, text.size()), at);
  text.remove_prefix(index_end == std::string_view::npos ? text.size() : index_end + 1);
  if (index != nullptr) *index = at;
  Code mapped = Code::kInternal;
  if (code == "NOT_FOUND") mapped = Code::kNotFound;
  if (code == "CONFLICT") mapped = Code::kConflict;
  if (code == "INVALID") mapped = Code::kInvalidArgument;
  return {mapped, std::string(text)};
}

// A leaderboard member: sort keys of score, subscore and submission time (16 hex digits
// each), the submission sequence (16), the owner, then a NUL and the entry's metadata, so
// that one ZRANGE reads a whole window. The sequence makes the 64 digits unique, so what
// follows them never decides an order. Members written before the metadata moved into
// them end with the owner; their metadata is in the board's "lbm:" hash.
constexpr size_t kMemberHeader = 64;

// The entry a member encodes. Returns false for a malformed member; `*has_metadata` says
// whether the member carried the metadata (else `out->metadata` is left alone).
bool decode_member(const redisReply* member, bool descending, uint64_t rank, Entry* out,
                   bool* has_metadata) {
  if (member->type != REDIS_REPLY_STRING || member->len < kMemberHeader) return false;
  const std::string_view m = reply_text(member);
  out->score = from_sort_key(m.substr(0, 16), descending);
  out->subscore = from_sort_key(m.substr(16, 16), descending);
  out->submitted_ms = from_sort_key(m.substr(32, 16), false);
  const std::string_view rest = m.substr(kMemberHeader);
  const size_t owner_end = rest.find('\0');  // owners hold no NUL (validate.cpp)
  *has_metadata = owner_end != std::string_view::npos;
  out->owner = std::string(rest.substr(0, owner_end));
  if (*has_metadata) out->metadata = std::string(rest.substr(owner_end + 1));
  out->rank = rank;
  return true;
}

void decode_metadata(const redisReply* metadata, Entry* out) {
  out->metadata = metadata->type == REDIS_REPLY_STRING ? std::string(reply_text(metadata)) : "";
}

// A member and the metadata the script read beside it ('' for a member that carries it).
bool decode_entry(const redisReply* member, const redisReply* metadata, bool descending,
                  uint64_t rank, Entry* out) {
  bool has_metadata = false;
  if (!decode_member(member, descending, rank, out, &has_metadata)) return false;
  if (!has_metadata) decode_metadata(metadata, out);
  return true;
}

// {order, zero-based rank, member, metadata, member, metadata, ...}
bool decode_entries(const redisReply* r, std::vector<Entry>* out) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->elements % 2 != 0) return false;
  const bool descending = reply_text(r->element[0]) == "desc";
  int64_t first = 0;
  if (!to_int64(r->element[1], &first) || first < 0) return false;
  for (size_t i = 2; i + 1 < r->elements; i += 2) {
    Entry entry;
    const uint64_t rank = static_cast<uint64_t>(first) + (i - 2) / 2 + 1;
    if (!decode_entry(r->element[i], r->element[i + 1], descending, rank, &entry)) return false;
    out->push_back(std::move(entry));
  }
  return true;
}

// "expires_ms:status"
bool decode_presence(std::string owner, std::string_view value, Presence* out) {
  const size_t colon = value.find(':');
  if (colon == std::string_view::npos) return false;
  const auto result = std::from_chars(value.data(), value.data() + colon, out->expires_at_ms);
  if (result.ec != std::errc()) return false;
  out->owner = std::move(owner);
  out->status = std::string(value.substr(colon + 1));
  return true;
}

const char* order_name(SortOrder order) {
  switch (order) {
    case SortOrder::kDescending: return "desc";
    case SortOrder::kAscending: return "asc";
  }
  return nullptr;
}

const char* operator_name(Operator op) {
  switch (op) {
    case Operator::kBest: return "best";
    case Operator::kSet: return "set";
    case Operator::kIncrement: return "incr";
  }
  return nullptr;
}

// A board's spec as the script takes it: "<order> <op>" ("desc set").
std::string spec_text(std::string_view order, std::string_view op) {
  return std::string(order) + " " + std::string(op);
}

std::string clamp_index(uint64_t value) {
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  return std::to_string(std::min(value, kMax));
}

}  // namespace

RedisBackend::RedisBackend(std::string host, uint16_t port, RedisOptions options)
    : connection_(std::move(host), port, std::move(options), std::string(kRedisStoreScript)) {}

RedisBackend::~RedisBackend() = default;

template <typename T>
void RedisBackend::fail(Status status, Callback<T> done) {
  connection_.post([status = std::move(status), done = std::move(done)]() mutable {
    done(std::move(status), T{});
  });
}

void RedisBackend::fail(Status status, Done done) {
  connection_.post(
      [status = std::move(status), done = std::move(done)]() mutable { done(std::move(status)); });
}

std::vector<std::string> RedisBackend::script_args(const char* op,
                                                   std::initializer_list<std::string> args) const {
  std::vector<std::string> out;
  out.reserve(args.size() + 2);
  out.emplace_back(op);
  out.push_back(connection_.options().key_prefix);
  for (const auto& arg : args) out.push_back(arg);
  return out;
}

// ---- documents -------------------------------------------------------------------------------

void RedisBackend::get(std::string collection, std::string key, Callback<Document> done) {
  if (Status s = first_error(check_name("collection", collection), check_name("key", key));
      !s.ok()) {
    return fail(std::move(s), std::move(done));
  }
  // One HMGET, not the script: a read needs no atomicity beyond the command's, and a script
  // call costs Redis several times the command (docs/performance.md, storage).
  std::string doc = connection_.options().key_prefix + "doc:" + std::to_string(collection.size()) +
                    ":" + collection + ":" + key;
  connection_.command({"HMGET", std::move(doc), "v", "n"},
                      [this, collection = std::move(collection), key = std::move(key),
                       done = std::move(done)](const redisReply* r) mutable {
    Status s = reply_status(connection_, r);
    if (!s.ok()) return done(std::move(s), Document{});
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) return done(malformed("get"), Document{});
    if (r->element[1]->type == REDIS_REPLY_NIL) {
      return done({Code::kNotFound, "no document " + collection + "/" + key}, Document{});
    }
    int64_t version = 0;
    if (!to_int64(r->element[1], &version)) return done(malformed("get"), Document{});
    done({}, Document{std::move(collection), std::move(key), std::string(reply_text(r->element[0])),
                      static_cast<uint64_t>(version)});
  });
}

void RedisBackend::put(std::string collection, std::string key, std::string value,
                       ExpectedVersion expected, Callback<uint64_t> done) {
  std::vector<Write> writes(1);
  writes[0].kind = Write::Kind::kPut;
  writes[0].collection = std::move(collection);
  writes[0].key = std::move(key);
  writes[0].value = std::move(value);
  writes[0].expected = expected;
  apply(std::move(writes), [done = std::move(done)](Status s, std::vector<int64_t> results) {
    if (s.ok() && results.size() != 1) s = malformed("put");
    strip_batch_prefix(s);
    done(std::move(s), s.ok() ? static_cast<uint64_t>(results[0]) : 0);
  });
}

void RedisBackend::remove(std::string collection, std::string key, ExpectedVersion expected,
                          Done done) {
  std::vector<Write> writes(1);
  writes[0].kind = Write::Kind::kDelete;
  writes[0].collection = std::move(collection);
  writes[0].key = std::move(key);
  writes[0].expected = expected;
  apply(std::move(writes), [done = std::move(done)](Status s, std::vector<int64_t>) {
    strip_batch_prefix(s);
    done(std::move(s));
  });
}

void RedisBackend::list(std::string collection, std::string prefix, std::string after,
                        uint32_t limit, Callback<std::vector<Document>> done) {
  if (Status s = first_error(check_name("collection", collection),
                             check_prefix("prefix", prefix), check_prefix("after", after),
                             check_limit(limit));
      !s.ok()) {
    return fail(std::move(s), std::move(done));
  }
  // Start at the prefix, or just after `after` when that lies further on.
  const std::string start = after.empty() || after < prefix ? "[" + prefix : "(" + after;
  auto args = script_args("list", {collection, prefix, start, std::to_string(limit)});
  connection_.eval(std::move(args), [this, collection = std::move(collection),
                                     done = std::move(done)](const redisReply* r) mutable {
    Status s = reply_status(connection_, r);
    if (!s.ok()) return done(std::move(s), {});
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 3 != 0) return done(malformed("list"), {});
    std::vector<Document> docs;
    docs.reserve(r->elements / 3);
    for (size_t i = 0; i < r->elements; i += 3) {
      int64_t version = 0;
      if (!to_int64(r->element[i + 2], &version)) return done(malformed("list"), {});
      docs.push_back(Document{collection, std::string(reply_text(r->element[i])),
                              std::string(reply_text(r->element[i + 1])),
                              static_cast<uint64_t>(version)});
    }
    done({}, std::move(docs));
  });
}

// ---- counters ----------------------------------------------------------------------------------

void RedisBackend::counter_add(std::string counter, int64_t delta, Callback<int64_t> done) {
  if (Status s = check_name("counter", counter); !s.ok()) return fail(std::move(s), std::move(done));
  connection_.command(
      {"INCRBY", connection_.options().key_prefix + "ctr:" + counter, std::to_string(delta)},
      [this, done = std::move(done)](const redisReply* r) {
        Status s = reply_status(connection_, r);
        if (s.code == Code::kInternal && s.message.find("overflow") != std::string::npos) {
          s = {Code::kInvalidArgument, "the counter would overflow a 64-bit integer"};
        }
        if (!s.ok()) return done(std::move(s), 0);
        int64_t value = 0;
        if (!to_int64(r, &value)) return done(malformed("INCRBY"), 0);
        done({}, value);
      });
}

void RedisBackend::counter_get(std::string counter, Callback<int64_t> done) {
  if (Status s = check_name("counter", counter); !s.ok()) return fail(std::move(s), std::move(done));
  connection_.command({"GET", connection_.options().key_prefix + "ctr:" + counter},
                      [this, done = std::move(done)](const redisReply* r) {
                        Status s = reply_status(connection_, r);
                        if (!s.ok()) return done(std::move(s), 0);
                        if (r->type == REDIS_REPLY_NIL) return done({}, 0);
                        int64_t value = 0;
                        if (!to_int64(r, &value)) return done(malformed("GET"), 0);
                        done({}, value);
                      });
}

// ---- leaderboards --------------------------------------------------------------------------------

void RedisBackend::board_create(BoardSpec spec, Done done) {
  const char* order = order_name(spec.order);
  const char* op = operator_name(spec.op);
  if (Status s = check_spec(spec); !s.ok()) return fail(std::move(s), std::move(done));
  std::string known = spec_text(order, op);
  connection_.eval(script_args("board_create", {spec.board, order, op}),
                   [this, board = spec.board, known = std::move(known),
                    done = std::move(done)](const redisReply* r) mutable {
                     Status s = reply_status(connection_, r);
                     if (s.ok()) {
                       std::lock_guard lock(specs_mu_);
                       specs_.emplace(std::move(board), std::move(known));
                     }
                     done(std::move(s));
                   });
}

std::string RedisBackend::known_spec(const std::string& board) {
  std::lock_guard lock(specs_mu_);
  auto it = specs_.find(board);
  return it == specs_.end() ? std::string() : it->second;
}

void RedisBackend::learn_spec(std::string board, std::function<void(Status, std::string)> then) {
  std::string key = connection_.options().key_prefix + "lbs:" + board;
  connection_.command({"HMGET", std::move(key), "order", "op"},
                      [this, board = std::move(board), then = std::move(then)](const redisReply* r) {
    Status s = reply_status(connection_, r);
    if (!s.ok()) return then(std::move(s), "");
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) return then(malformed("HMGET"), "");
    if (r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
      return then({}, "");  // no such board (yet)
    }
    std::string known = spec_text(reply_text(r->element[0]), reply_text(r->element[1]));
    {
      std::lock_guard lock(specs_mu_);
      specs_.emplace(board, known);
    }
    then({}, std::move(known));
  });
}

void RedisBackend::board_submit(std::string board, Entry entry, Callback<Entry> done) {
  if (Status s = first_error(check_name("board", board), check_entry(entry));
      !s.ok()) {
    return fail(std::move(s), std::move(done));
  }
  // submitted_ms is the server's clock at the submission; the caller's value is ignored.
  auto [ascending, descending] = ranked_keys(entry);
  std::string known = known_spec(board);
  auto args = script_args("board_submit", {board, entry.owner, std::move(ascending),
                                           std::move(descending), entry.metadata, std::move(known)});
  connection_.eval(std::move(args), [this, done = std::move(done)](const redisReply* r) {
    Status s = reply_status(connection_, r);
    if (!s.ok()) return done(std::move(s), Entry{});
    std::vector<Entry> entries;
    if (!decode_entries(r, &entries) || entries.size() != 1) {
      return done(malformed("board_submit"), Entry{});
    }
    done({}, std::move(entries[0]));
  });
}

// A window of the ranking is read with plain commands, not the script (which costs Redis
// several times the commands: docs/performance.md, storage): the board's order (once per
// board and process: it never changes and boards are never deleted), then one ZRANGE,
// whose members carry their metadata. Only members older versions wrote need an HMGET of
// theirs, which is then not one snapshot with the ranking: metadata written between the
// two is newer, as if read a moment later.
void RedisBackend::board_range(std::string board, uint64_t start, uint64_t stop,
                               Callback<std::vector<Entry>> done) {
  if (std::string known = known_spec(board); !known.empty()) {
    return ranking(std::move(board), known.starts_with("desc"), start, stop, std::move(done));
  }
  learn_spec(board, [this, board, start, stop, done = std::move(done)](Status s, std::string known) mutable {
    if (!s.ok()) return done(std::move(s), {});
    if (known.empty()) return done({Code::kNotFound, "no board " + board}, {});
    ranking(std::move(board), known.starts_with("desc"), start, stop, std::move(done));
  });
}

void RedisBackend::ranking(std::string board, bool descending, uint64_t start, uint64_t stop,
                           Callback<std::vector<Entry>> done) {
  const std::string& prefix = connection_.options().key_prefix;
  connection_.command(
      {"ZRANGE", prefix + "lb:" + board, clamp_index(start), clamp_index(stop)},
      [this, metadata = prefix + "lbm:" + board, descending, start,
       done = std::move(done)](const redisReply* r) mutable {
        Status s = reply_status(connection_, r);
        if (!s.ok()) return done(std::move(s), {});
        if (r->type != REDIS_REPLY_ARRAY) return done(malformed("board_range"), {});
        std::vector<Entry> entries(r->elements);
        std::vector<size_t> older;  // entries whose member does not carry the metadata
        for (size_t i = 0; i < r->elements; ++i) {
          bool has_metadata = false;
          if (!decode_member(r->element[i], descending, start + i + 1, &entries[i], &has_metadata)) {
            return done(malformed("board_range"), {});
          }
          if (!has_metadata) older.push_back(i);
        }
        if (older.empty()) return done({}, std::move(entries));
        std::vector<std::string> hmget{"HMGET", std::move(metadata)};
        for (size_t i : older) hmget.push_back(entries[i].owner);
        connection_.command(std::move(hmget), [this, entries = std::move(entries), older = std::move(older),
                                               done = std::move(done)](const redisReply* r) mutable {
          Status s = reply_status(connection_, r);
          if (!s.ok()) return done(std::move(s), {});
          if (r->type != REDIS_REPLY_ARRAY || r->elements != older.size()) {
            return done(malformed("board_range"), {});
          }
          for (size_t i = 0; i < older.size(); ++i) decode_metadata(r->element[i], &entries[older[i]]);
          done({}, std::move(entries));
        });
      });
}

void RedisBackend::board_top(std::string board, uint32_t limit, Callback<std::vector<Entry>> done) {
  board_page(std::move(board), 0, limit, std::move(done));
}

void RedisBackend::board_page(std::string board, uint64_t after_rank, uint32_t limit,
                              Callback<std::vector<Entry>> done) {
  if (Status s = first_error(check_name("board", board), check_limit(limit)); !s.ok()) {
    return fail(std::move(s), std::move(done));
  }
  const uint64_t stop = after_rank > std::numeric_limits<uint64_t>::max() - limit
                            ? std::numeric_limits<uint64_t>::max()
                            : after_rank + limit - 1;
  board_range(std::move(board), after_rank, stop, std::move(done));
}

void RedisBackend::board_around(std::string board, std::string owner, uint32_t limit,
                                Callback<std::vector<Entry>> done) {
  if (Status s = first_error(check_name("board", board), check_name("owner", owner),
                             check_limit(limit));
      !s.ok()) {
    return fail(std::move(s), std::move(done));
  }
  connection_.eval(script_args("board_around", {board, owner, std::to_string(limit)}),
                   [this, done = std::move(done)](const redisReply* r) {
                     Status s = reply_status(connection_, r);
                     if (!s.ok()) return done(std::move(s), {});
                     std::vector<Entry> entries;
                     if (!decode_entries(r, &entries)) return done(malformed("board_around"), {});
                     done({}, std::move(entries));
                   });
}

void RedisBackend::board_rank(std::string board, std::string owner, Callback<Entry> done) {
  if (Status s = first_error(check_name("board", board), check_name("owner", owner)); !s.ok()) {
    return fail(std::move(s), std::move(done));
  }
  connection_.eval(script_args("board_rank", {board, owner}),
                   [this, done = std::move(done)](const redisReply* r) {
                     Status s = reply_status(connection_, r);
                     if (!s.ok()) return done(std::move(s), Entry{});
                     std::vector<Entry> entries;
                     if (!decode_entries(r, &entries) || entries.size() != 1) {
                       return done(malformed("board_rank"), Entry{});
                     }
                     done({}, std::move(entries[0]));
                   });
}

void RedisBackend::board_remove(std::string board, std::string owner, Done done) {
  if (Status s = first_error(check_name("board", board), check_name("owner", owner)); !s.ok()) {
    return fail(std::move(s), std::move(done));
  }
  connection_.eval(script_args("board_remove", {board, owner}),
                   [this, done = std::move(done)](const redisReply* r) {
                     done(reply_status(connection_, r));
                   });
}

void RedisBackend::board_reset(std::string board, Done done) {
  if (Status s = check_name("board", board); !s.ok()) return fail(std::move(s), std::move(done));
  connection_.eval(script_args("board_reset", {board}),
                   [this, done = std::move(done)](const redisReply* r) {
                     done(reply_status(connection_, r));
                   });
}

// ---- presence ----------------------------------------------------------------------------------------

void RedisBackend::presence_set(std::string owner, std::string status,
                                std::chrono::milliseconds ttl, Done done) {
  if (Status s = first_error(check_name("owner", owner), check_status(status), check_ttl(ttl));
      !s.ok()) {
    return fail(std::move(s), std::move(done));
  }
  connection_.eval(script_args("presence_set", {owner, status, std::to_string(ttl.count())}),
                   [this, done = std::move(done)](const redisReply* r) {
                     done(reply_status(connection_, r));
                   });
}

void RedisBackend::presence_get(std::string owner, Callback<Presence> done) {
  if (Status s = check_name("owner", owner); !s.ok()) return fail(std::move(s), std::move(done));
  connection_.eval(script_args("presence_get", {owner}),
                   [this, owner, done = std::move(done)](const redisReply* r) mutable {
                     Status s = reply_status(connection_, r);
                     if (!s.ok()) return done(std::move(s), Presence{});
                     Presence presence;
                     if (r->type != REDIS_REPLY_STRING ||
                         !decode_presence(std::move(owner), reply_text(r), &presence)) {
                       return done(malformed("presence_get"), Presence{});
                     }
                     done({}, std::move(presence));
                   });
}

void RedisBackend::presence_remove(std::string owner, Done done) {
  if (Status s = check_name("owner", owner); !s.ok()) return fail(std::move(s), std::move(done));
  connection_.eval(script_args("presence_remove", {owner}),
                   [this, done = std::move(done)](const redisReply* r) {
                     done(reply_status(connection_, r));
                   });
}

void RedisBackend::presence_list(std::string status_prefix, uint32_t limit,
                                 Callback<std::vector<Presence>> done) {
  if (Status s = first_error(check_status(status_prefix), check_limit(limit));
      !s.ok()) {
    return fail(std::move(s), std::move(done));
  }
  connection_.eval(script_args("presence_list", {status_prefix, std::to_string(limit)}),
                   [this, done = std::move(done)](const redisReply* r) {
                     Status s = reply_status(connection_, r);
                     if (!s.ok()) return done(std::move(s), {});
                     if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
                       return done(malformed("presence_list"), {});
                     }
                     std::vector<Presence> out(r->elements / 2);
                     for (size_t i = 0; i < out.size(); ++i) {
                       if (!decode_presence(std::string(reply_text(r->element[2 * i])),
                                            reply_text(r->element[2 * i + 1]), &out[i])) {
                         return done(malformed("presence_list"), {});
                       }
                     }
                     done({}, std::move(out));
                   });
}

// ---- atomic batches ----------------------------------------------------------------------------------

void RedisBackend::apply(std::vector<Write> writes, Callback<std::vector<int64_t>> done) {
  if (Status s = check_batch(writes); !s.ok()) return fail(std::move(s), std::move(done));
  if (writes.empty()) return fail(Status{}, std::move(done));
  QueuedApply batch{{std::to_string(writes.size())}, writes.size(), std::move(done)};
  std::vector<std::string>& args = batch.args;
  args.reserve(1 + writes.size() * 7);
  // A submission names its board's spec when this process knows it, and the script then
  // skips reading it: those reads were ~7 % of Redis's work on a match recording
  // (docs/performance.md). An unknown one is read by the script and learned here for the
  // next call.
  std::vector<std::string> unknown;
  for (const Write& w : writes) {
    switch (w.kind) {
      case Write::Kind::kPut:
        args.insert(args.end(), {"put", w.collection, w.key, w.value, expected_text(w.expected),
                                 "", ""});
        break;
      case Write::Kind::kDelete:
        args.insert(args.end(),
                    {"del", w.collection, w.key, "", expected_text(w.expected), "", ""});
        break;
      case Write::Kind::kCounterAdd:
        args.insert(args.end(), {"add", w.counter, "", std::to_string(w.delta), "", "", ""});
        break;
      case Write::Kind::kSubmit: {
        auto [ascending, descending] = ranked_keys(w.entry);
        std::string known = known_spec(w.board);
        if (known.empty() && std::find(unknown.begin(), unknown.end(), w.board) == unknown.end()) {
          unknown.push_back(w.board);
        }
        args.insert(args.end(), {"sub", w.board, w.entry.owner, std::move(ascending),
                                 std::move(descending), w.entry.metadata, std::move(known)});
        break;
      }
    }
  }
  for (std::string& board : unknown) learn_spec(std::move(board), [](Status, std::string) {});
  connection_.post([this, batch = std::move(batch)]() mutable { queue_apply(std::move(batch)); });
}

// Group commit for the script: while a group runs, the batches callers send wait, and the
// next group carries them all. Each batch is still all or nothing, but Redis enters the
// script once per group and writes each board once per group, with one command of each
// kind for all the group's submissions to it: the script's own Lua and the glue of its
// redis.calls were most of Redis's time on a match recording (docs/performance.md).
// One group in flight: with two, groups carried ~5 batches, not ~8, and recordings gained +3 %
// over single calls (noise), against +8 to +17 % with one.
constexpr int kGroupsInFlight = 1;
// A group's bound, so that no script holds Redis for long (the first batch goes even if
// larger): Redis serves nobody else while it runs.
constexpr size_t kGroupMaxBatches = 64;
constexpr size_t kGroupMaxWrites = 1024;

void RedisBackend::queue_apply(QueuedApply batch) {
  queued_.push_back(std::move(batch));
  if (groups_in_flight_ < kGroupsInFlight) send_group();
}

void RedisBackend::send_group() {
  if (queued_.empty()) return;
  std::vector<QueuedApply> group;
  size_t writes = 0;
  while (!queued_.empty() && group.size() < kGroupMaxBatches &&
         (group.empty() || writes + queued_.front().count <= kGroupMaxWrites)) {
    writes += queued_.front().count;
    group.push_back(std::move(queued_.front()));
    queued_.pop_front();
  }
  std::vector<std::string> args = script_args("apply", {std::to_string(group.size())});
  args.reserve(args.size() + writes * 7 + group.size());
  for (QueuedApply& batch : group) {
    std::move(batch.args.begin(), batch.args.end(), std::back_inserter(args));
    batch.args = {};
  }
  ++groups_in_flight_;
  connection_.eval(std::move(args), [this, group = std::move(group)](const redisReply* r) mutable {
    --groups_in_flight_;
    // The next group goes out before this one's callers run: Redis works while they do.
    send_group();
    Status s = reply_status(connection_, r);
    if (s.ok() && (r->type != REDIS_REPLY_ARRAY || r->elements != group.size())) s = malformed("apply");
    for (size_t n = 0; n < group.size(); ++n) {
      std::vector<int64_t> results;
      Status own = s.ok() ? batch_outcome(r->element[n], group[n].count, &results) : s;
      group[n].done(std::move(own), std::move(results));
    }
  });
}

// One batch's part of a group's reply: its results, or its error with the failing write's
// index.
Status RedisBackend::batch_outcome(const redisReply* reply, size_t count,
                                   std::vector<int64_t>* results) const {
  size_t index = 0;
  Status s = reply_status(connection_, reply, &index);
  if (!s.ok()) {
    if (s.code != Code::kUnavailable && s.code != Code::kInternal) s = batch_error(index, std::move(s));
    return s;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != count) return malformed("apply");
  results->resize(count);
  for (size_t i = 0; i < count; ++i) {
    if (!to_int64(reply->element[i], &(*results)[i])) {
      results->clear();
      return malformed("apply");
    }
  }
  return {};
}

}  // namespace prism::store
