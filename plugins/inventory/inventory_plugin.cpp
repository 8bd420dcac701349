// The `inventory` service (docs/inventory.md): per-player item stacks kept in the host's
// document store, one document per player, each change idempotent by an op id whose
// record is written in the same atomic batch as the change itself.
#include <prism/plugin.hpp>

#include <coroutine>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ledger.hpp"
#include "prism/inventory/v1/inventory.pb.h"
#include "settings.hpp"

namespace prism::inventory {
namespace {

using sdk::Request;
using sdk::StoreResult;
using sdk::Task;

// Storage layout (docs/inventory.md "Storage layout").
constexpr std::string_view kPlayers = "inventory.players";  // player_id → PlayerRecord
constexpr std::string_view kOps = "inventory.ops";          // op_id → OperationRecord
// Read-compute-write rounds one change may take when other writers keep winning the
// compare-and-set on the same player; then the client is told to retry.
constexpr int kMaxAttempts = 16;

const char* method_name(v1::Method method) {
  switch (method) {
    case v1::METHOD_LIST: return "list";
    case v1::METHOD_GET: return "get";
    case v1::METHOD_GRANT: return "grant";
    case v1::METHOD_CONSUME: return "consume";
    case v1::METHOD_TRANSFER: return "transfer";
    default: return "unknown";
  }
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// Applies the change's rule to the players' records (in `Change::players` order) and
// writes the reply payload, or refuses leaving them untouched.
using Rule = std::function<Outcome(std::span<v1::PlayerRecord> records, std::string& reply)>;

// One idempotent change: what the op id is bound to, whom it touches, what it does.
struct Change {
  v1::Method method;
  std::string op_id;
  std::string request;               // canonical bytes (ledger.hpp, canonical)
  std::vector<std::string> players;  // 1 or 2; players[0] keeps the op id in its history
  Rule rule;
};

class InventoryService {
 public:
  static constexpr sdk::ServiceInfo info{.name = "inventory",
                                         .version = "1.0.0",
                                         .packet_id_first = 1100,
                                         .packet_id_count = 100,
                                         .concurrent = true};

  // Throws (refusing init) on bad settings or a host without storage.
  InventoryService(sdk::Host& host, std::string_view config)
      : host_(host),
        settings_(parse_settings(config)),
        applied_(host.counter("ops_applied_total", "Inventory changes applied")),
        replayed_(host.counter("ops_replayed_total",
                               "Retried changes answered from their op record")),
        refused_(host.counter("ops_refused_total", "Changes refused (input or state)")),
        retries_(host.counter("cas_retries_total",
                              "Change rounds repeated after a lost compare-and-set")) {
    if (!host.has_storage()) {
      throw std::runtime_error("inventory needs the host's storage calls (plugin ABI 1.1)");
    }
    host_.info("inventory ready max_items_per_player=" +
               std::to_string(settings_.max_items_per_player) +
               " max_metadata_bytes=" + std::to_string(settings_.max_metadata_bytes) +
               " op_retention=" + std::to_string(settings_.op_retention));
  }

  Task list(Request req, v1::ListRequest in) {
    if (Outcome bad = check(in)) co_return refuse(req, *bad);
    v1::PlayerRecord record;
    const StoreResult got = co_await host_.get(kPlayers, in.player_id());
    if (!take_record(req, in.player_id(), got, record, nullptr)) co_return;
    req.ok(list_page(record, in).SerializeAsString());
  }

  Task get(Request req, v1::GetRequest in) {
    if (Outcome bad = check(in)) co_return refuse(req, *bad);
    v1::PlayerRecord record;
    const StoreResult got = co_await host_.get(kPlayers, in.player_id());
    if (!take_record(req, in.player_id(), got, record, nullptr)) co_return;
    const v1::Item* item = find_item(record, in.sku());
    if (item == nullptr) {
      co_return req.fail(PRISM_NOT_FOUND, "player " + quoted(in.player_id()) +
                                              " holds no sku " + quoted(in.sku()));
    }
    v1::GetReply out;
    *out.mutable_item() = *item;
    req.ok(out.SerializeAsString());
  }

  void grant(Request req, v1::GrantRequest in) {
    if (Outcome bad = check(in, settings_)) return refuse(req, *bad);
    Change change{v1::METHOD_GRANT, in.op_id(), canonical(in), {in.player_id()}, {}};
    change.rule = [in, settings = settings_](std::span<v1::PlayerRecord> records,
                                             std::string& reply) -> Outcome {
      v1::GrantReply out;
      if (Outcome refused = inventory::grant(in, settings, records[0], out)) return refused;
      reply = out.SerializeAsString();
      return std::nullopt;
    };
    run(std::move(req), std::move(change));
  }

  void consume(Request req, v1::ConsumeRequest in) {
    if (Outcome bad = check(in)) return refuse(req, *bad);
    Change change{v1::METHOD_CONSUME, in.op_id(), canonical(in), {in.player_id()}, {}};
    change.rule = [in](std::span<v1::PlayerRecord> records, std::string& reply) -> Outcome {
      v1::ConsumeReply out;
      if (Outcome refused = inventory::consume(in, records[0], out)) return refused;
      reply = out.SerializeAsString();
      return std::nullopt;
    };
    run(std::move(req), std::move(change));
  }

  void transfer(Request req, v1::TransferRequest in) {
    if (Outcome bad = check(in)) return refuse(req, *bad);
    Change change{v1::METHOD_TRANSFER, in.op_id(), canonical(in),
                  {in.from_player_id(), in.to_player_id()}, {}};
    change.rule = [in, settings = settings_](std::span<v1::PlayerRecord> records,
                                             std::string& reply) -> Outcome {
      v1::TransferReply out;
      if (Outcome refused = inventory::transfer(in, settings, records[0], records[1], out)) {
        return refused;
      }
      reply = out.SerializeAsString();
      return std::nullopt;
    };
    run(std::move(req), std::move(change));
  }

  static constexpr sdk::Method<InventoryService> methods[] = {
      sdk::parsed<&InventoryService::list>(v1::METHOD_LIST, "list"),
      sdk::parsed<&InventoryService::get>(v1::METHOD_GET, "get"),
      sdk::parsed<&InventoryService::grant>(v1::METHOD_GRANT, "grant"),
      sdk::parsed<&InventoryService::consume>(v1::METHOD_CONSUME, "consume"),
      sdk::parsed<&InventoryService::transfer>(v1::METHOD_TRANSFER, "transfer"),
  };

 private:
  void refuse(Request& req, const Refusal& refusal) {
    refused_.add();
    req.fail(refusal.status, refusal.message);
  }

  // Turns a read of ("inventory.players", player) into `record` (empty when the player has
  // none yet) and its version (0 when absent) if `version` is given. On a storage failure
  // it answers `req` and returns false.
  bool take_record(Request& req, const std::string& player, const StoreResult& got,
                   v1::PlayerRecord& record, uint64_t* version) {
    record.Clear();
    if (version != nullptr) *version = 0;
    if (got.status == PRISM_NOT_FOUND) return true;  // a player with nothing yet
    if (!got.ok()) {
      req.fail(got.status, "reading inventory of player " + quoted(player) + ": " + got.message);
      return false;
    }
    const sdk::Document& doc = got.documents.at(0);
    if (!record.ParseFromString(doc.value)) {
      host_.error("stored record is not a PlayerRecord player=" + quoted(player));
      req.fail(PRISM_INTERNAL, "stored inventory of player " + quoted(player) + " is corrupt");
      return false;
    }
    if (version != nullptr) *version = doc.version;
    return true;
  }

  // Read the op record (a retry is answered from it), read the players, apply the rule,
  // then write the op record (create-only) and the players (at the versions read) in one
  // batch. A lost compare-and-set starts the round again.
  Task run(Request req, Change change) {
    bool keep_evicted = false;  // an evicted op document was already gone: leave it
    for (int attempt = 1; attempt <= kMaxAttempts; ++attempt) {
      if (attempt > 1) retries_.add();
      const StoreResult op = co_await host_.get(kOps, change.op_id);
      if (op.ok()) co_return replay(req, change, op.documents.at(0).value);
      if (op.status != PRISM_NOT_FOUND) {
        co_return req.fail(op.status, "reading op_id " + quoted(change.op_id) + ": " + op.message);
      }

      std::vector<v1::PlayerRecord> records(change.players.size());
      std::vector<uint64_t> versions(change.players.size(), 0);
      for (size_t i = 0; i < change.players.size(); ++i) {
        const StoreResult got = co_await host_.get(kPlayers, change.players[i]);
        if (!take_record(req, change.players[i], got, records[i], &versions[i])) co_return;
      }

      std::string reply;
      if (Outcome refused = change.rule(records, reply)) co_return refuse(req, *refused);
      std::vector<std::string> evicted =
          remember_op(records[0], change.op_id, settings_.op_retention);
      if (keep_evicted) evicted.clear();

      v1::OperationRecord op_record;
      op_record.set_method(change.method);
      op_record.set_request(change.request);
      op_record.set_reply(reply);
      sdk::WriteBatch batch;
      batch.put(kOps, change.op_id, op_record.SerializeAsString(), PRISM_VERSION_ABSENT);
      for (size_t i = 0; i < records.size(); ++i) {
        // A player never written is expected absent: PRISM_VERSION_ABSENT is 0.
        batch.put(kPlayers, change.players[i], records[i].SerializeAsString(),
                  static_cast<int64_t>(versions[i]));
      }
      for (const auto& old : evicted) batch.remove(kOps, old);

      const StoreResult applied = co_await host_.apply(batch);
      if (applied.ok()) {
        applied_.add();
        co_return req.ok(reply);
      }
      if (applied.status == PRISM_CONFLICT) continue;  // someone wrote first: read again
      if (applied.status == PRISM_NOT_FOUND && !evicted.empty()) {
        keep_evicted = true;  // an evicted op document was deleted by someone else
        continue;
      }
      co_return req.fail(applied.status, "writing the change: " + applied.message);
    }
    host_.warn("change gave up after " + std::to_string(kMaxAttempts) +
               " compare-and-set rounds method=" + method_name(change.method) +
               " player=" + quoted(change.players[0]));
    req.fail(PRISM_UNAVAILABLE, "player " + quoted(change.players[0]) + " is busy: " +
                                    std::to_string(kMaxAttempts) +
                                    " concurrent writers won first; retry with the same op_id");
  }

  // A known op id: the same request gets its first reply back, another one is refused.
  void replay(Request& req, const Change& change, const std::string& stored) {
    v1::OperationRecord record;
    if (!record.ParseFromString(stored)) {
      host_.error("stored op record is not an OperationRecord op_id=" + quoted(change.op_id));
      return req.fail(PRISM_INTERNAL, "stored record of op_id " + quoted(change.op_id) +
                                          " is corrupt");
    }
    if (record.method() != change.method || record.request() != change.request) {
      refused_.add();
      return req.fail(PRISM_CONFLICT,
                      "op_id " + quoted(change.op_id) + " was already used for a different " +
                          method_name(record.method()) + " request; use a new op_id");
    }
    replayed_.add();
    req.ok(record.reply());
  }

  sdk::Host& host_;  // owned by the SDK; outlives this instance
  const Settings settings_;
  sdk::Counter applied_;
  sdk::Counter replayed_;
  sdk::Counter refused_;
  sdk::Counter retries_;
};

}  // namespace
}  // namespace prism::inventory

PRISM_PLUGIN(prism::inventory::InventoryService)
