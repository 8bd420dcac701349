// The Redis storage backend (DESIGN.md §6): hiredis on its own libuv loop thread, every
// operation one command or one call of the store's Lua script, so each is atomic; apply()
// is all or nothing. With the server's appendfsync always, an OK reply is durable.
// apply() calls that arrive while a group of earlier ones runs wait and go out together as
// the next group, one script call (see send_group).
// Data model (under options.key_prefix): documents as hashes "doc:<len(collection)>:
// <collection>:<key>" {v, n} plus a lexicographic ZSET "idx:<collection>"; counters as
// strings "ctr:<name>" (INCRBY); boards as a ZSET "lb:<board>" whose members encode
// score, subscore, submission time and order so that byte order is rank order, then the
// owner and the metadata, with a hash "lbo:" (owner -> member), "lbm:" (owner -> metadata,
// for members older versions wrote), the spec "lbs:" and one submission
// sequence for every board, "seq" (INCRBY once per call); presence as
// "pr:<owner>" with PX expiry, indexed by owner ("pri") and by expiry ("pre").
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "store/backend.hpp"
#include "store/redis_connection.hpp"

namespace prism::store {

class RedisBackend final : public Backend {
 public:
  // Connects in the background; calls made before the first connection completes wait for
  // it. Completions run on the backend's own thread. Destroying the backend completes
  // whatever is still pending with kUnavailable; do not destroy it from a completion.
  RedisBackend(std::string host, uint16_t port, RedisOptions options = {});
  ~RedisBackend() override;

  std::string_view name() const override { return "redis"; }

  void get(std::string collection, std::string key, Callback<Document> done) override;
  void put(std::string collection, std::string key, std::string value, ExpectedVersion expected,
           Callback<uint64_t> done) override;
  void remove(std::string collection, std::string key, ExpectedVersion expected,
              Done done) override;
  void list(std::string collection, std::string prefix, std::string after, uint32_t limit,
            Callback<std::vector<Document>> done) override;

  void counter_add(std::string counter, int64_t delta, Callback<int64_t> done) override;
  void counter_get(std::string counter, Callback<int64_t> done) override;

  void board_create(BoardSpec spec, Done done) override;
  void board_submit(std::string board, Entry entry, Callback<Entry> done) override;
  void board_top(std::string board, uint32_t limit, Callback<std::vector<Entry>> done) override;
  void board_page(std::string board, uint64_t after_rank, uint32_t limit,
                  Callback<std::vector<Entry>> done) override;
  void board_around(std::string board, std::string owner, uint32_t limit,
                    Callback<std::vector<Entry>> done) override;
  void board_rank(std::string board, std::string owner, Callback<Entry> done) override;
  void board_remove(std::string board, std::string owner, Done done) override;
  void board_reset(std::string board, Done done) override;

  void presence_set(std::string owner, std::string status, std::chrono::milliseconds ttl,
                    Done done) override;
  void presence_get(std::string owner, Callback<Presence> done) override;
  void presence_remove(std::string owner, Done done) override;
  void presence_list(std::string status_prefix, uint32_t limit,
                     Callback<std::vector<Presence>> done) override;

  void apply(std::vector<Write> writes, Callback<std::vector<int64_t>> done) override;

  bool healthy() const override { return connection_.connected(); }

 private:
  // Completes `done` with `status` on the backend's thread, never inside the call.
  template <typename T>
  void fail(Status status, Callback<T> done);
  void fail(Status status, Done done);
  void board_range(std::string board, uint64_t start, uint64_t stop,
                   Callback<std::vector<Entry>> done);
  // board_range once the board's order is known.
  void ranking(std::string board, bool descending, uint64_t start, uint64_t stop,
               Callback<std::vector<Entry>> done);
  std::vector<std::string> script_args(const char* op, std::initializer_list<std::string> args) const;
  // A board's spec as the script takes it ("desc set"), or "" while this process has not
  // seen it.
  std::string known_spec(const std::string& board);
  // Reads a board's spec into specs_ and hands it (or "" for no board) to `then`.
  void learn_spec(std::string board, std::function<void(Status, std::string)> then);

  // An apply() waiting for its group: the script's arguments for its batch ("count" and
  // seven per write) and its completion.
  struct QueuedApply {
    std::vector<std::string> args;
    size_t count = 0;
    Callback<std::vector<int64_t>> done;
  };
  // On the connection's thread: queues the batch and sends a group if few are running.
  void queue_apply(QueuedApply batch);
  // On the connection's thread: sends the queued batches (up to a bound) as one call.
  void send_group();
  Status batch_outcome(const redisReply* reply, size_t count, std::vector<int64_t>* results) const;
  // The connection's thread only. Before connection_, whose destructor completes calls.
  std::deque<QueuedApply> queued_;
  int groups_in_flight_ = 0;

  // Each board's spec, "<order> <op>", once created or read by this process: a spec never
  // changes once created and boards are never deleted (board_reset empties one). Before
  // connection_, whose destructor still completes calls.
  std::mutex specs_mu_;
  std::unordered_map<std::string, std::string> specs_;
  RedisConnection connection_;
};

}  // namespace prism::store
