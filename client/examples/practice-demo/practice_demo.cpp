// practice-demo: what a Minecraft practice server does with Prism's `practice` service
// (docs/practice.md). It upserts a roster of players, puts them online on two servers,
// records matches across the queues (duels and 2v2, mostly ranked, the stronger side
// usually winning), then prints the leaderboards, the best player's profile and who is
// online.
//
//   practice-demo --server 127.0.0.1:7777 [--server-key prism1:...|server.pub]
//                 [--config /etc/prism/prism.yaml] [--token-file F] [--matches 300]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "server_files.hpp"
#include "net/crypto/key_file.hpp"
#include "prism/client.hpp"
#include "prism/practice/v1/practice.pb.h"

namespace {

namespace pb = prism::practice::v1;
using prism::client::Client;

// docs/practice.md §2: the default range (1000..1099) plus practice.proto's method ids.
constexpr uint32_t kRange = 1000;
constexpr uint32_t kUpsert = kRange + pb::METHOD_UPSERT_PLAYER;
constexpr uint32_t kProfile = kRange + pb::METHOD_GET_PROFILE;
constexpr uint32_t kRecord = kRange + pb::METHOD_RECORD_MATCH;
constexpr uint32_t kTop = kRange + pb::METHOD_LEADERBOARD_TOP;
constexpr uint32_t kJoin = kRange + pb::METHOD_JOIN;
constexpr uint32_t kOnline = kRange + pb::METHOD_ONLINE;

constexpr const char* kNames[] = {
    "AquaFox",     "BlazeRunner", "CobbleKing", "DiamondDan",  "EnderElla",  "FrostByte",
    "GhastHunter", "HopperHank",  "IronIvy",    "JungleJake",  "KelpKnight", "LavaLuna",
    "MossyMax",    "NetherNova",  "ObbyOwen",   "PistonPia",   "QuartzQuinn", "RedstoneRay",
    "SlimeSam",    "TntTara",     "UmberUma",   "VexVictor",   "WitherWes",  "XpXena"};

struct Options {
  std::string server = "127.0.0.1:7777";
  std::string server_key;   // prism1:<hex> or a server.pub file
  std::string config_path;  // the server's prism.yaml, to find server.pub
  std::string token;        // the practice service's token, when it has one (--token)
  std::string token_file;   // --token-file: the same from a file, "-" = standard input
  int matches = 300;
  int players = 20;
  unsigned seed = 1;
  std::string queues = "nodebuff,sumo,boxing,bridge,builduhc,gapple";
};

int fail(const std::string& reason) {
  std::cerr << "practice-demo: " << reason << "\n";
  return 1;
}

// Sends one request; a non-OK status is an error naming the request.
template <class Out>
prism::Expected<Out> request(Client& c, uint32_t packet, const google::protobuf::MessageLite& in,
                             const char* what) {
  auto reply = c.call(packet, in.SerializeAsString());
  if (!reply) return prism::make_error(std::string(what) + ": " + reply.error());
  if (reply->status != prism::v1::STATUS_OK) {
    return prism::make_error(std::string(what) + ": " + std::string(prism::client::status_name(reply->status)) +
                             ": " + reply->message);
  }
  Out out;
  if (!out.ParseFromString(reply->payload)) return prism::make_error(std::string(what) + ": unreadable reply");
  return out;
}

struct Player {
  std::string uuid;
  std::string name;
  double skill;  // hidden strength: decides who usually wins
};

std::string uuid_of(int i) {
  char text[40];
  std::snprintf(text, sizeof text, "00000000-0000-4000-9000-%012x", 0xde30 + i);
  return text;
}

void print_board(Client& c, pb::Stat stat, const std::string& queue, int limit, const char* title) {
  pb::LeaderboardRequest in;
  in.set_stat(stat);
  in.set_queue(queue);
  in.set_limit(limit);
  std::cout << "== " << title << " (" << (queue.empty() ? "global" : queue) << ") ==\n";
  auto board = request<pb::Leaderboard>(c, kTop, in, "leaderboard_top");
  if (!board) {
    std::cout << "  " << board.error() << "\n";
    return;
  }
  for (const auto& e : board->entries()) {
    std::printf("  %2lld. %-16s %6lld\n", static_cast<long long>(e.rank()), e.name().c_str(),
                static_cast<long long>(e.value()));
  }
  std::fflush(stdout);
}

int run(const Options& o) {
  std::vector<std::string> queues;
  {
    std::stringstream list(o.queues);
    for (std::string q; std::getline(list, q, ',');) {
      if (!q.empty()) queues.push_back(q);
    }
  }
  if (queues.empty()) return fail("--queues: at least one queue");
  if (o.players < 4 || o.players > static_cast<int>(std::size(kNames))) {
    return fail("--players: 4.." + std::to_string(std::size(kNames)));
  }
  auto endpoint = prism::client::parse_endpoint(o.server);
  if (!endpoint) return fail(endpoint.error());
  auto key = prism::tools::find_server_key(o.server_key, o.config_path);
  if (!key) return fail(key.error());
  prism::client::ConnectOptions options;
  options.server_key = *key;
  options.timeout = std::chrono::seconds(5);
  auto connected = Client::connect(*endpoint, options);
  if (!connected) return fail(connected.error());
  Client& c = *connected;
  auto token = o.token.empty() ? prism::tools::read_secret(o.token_file, "PRISM_SERVICE_TOKEN")
                               : prism::Expected<std::string>(o.token);
  if (!token) return fail("practice token: " + token.error());
  if (!token->empty()) {
    auto login = c.login("practice", *token);
    if (!login) return fail("login: " + login.error());
    if (login->status != prism::v1::STATUS_OK) return fail("login: " + login->message);
  }

  std::mt19937 random(o.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<Player> roster;
  for (int i = 0; i < o.players; ++i) {
    Player p{uuid_of(i), kNames[i], 800 + 800 * unit(random)};
    pb::UpsertPlayerRequest in;
    in.set_uuid(p.uuid);
    in.set_name(p.name);
    in.set_locale("en_us");
    in.set_display_rank(i % 5 == 0 ? "VIP" : "");
    if (auto done = request<pb::Profile>(c, kUpsert, in, "upsert_player"); !done) return fail(done.error());
    roster.push_back(p);
  }
  std::cout << "upserted " << roster.size() << " players\n";

  // Half the roster on each of two lobby servers, each waiting in a queue.
  for (size_t i = 0; i < roster.size(); ++i) {
    pb::JoinRequest in;
    in.set_uuid(roster[i].uuid);
    in.set_server(i % 2 == 0 ? "demo-eu-1" : "demo-eu-2");
    in.set_queue(queues[i % queues.size()]);
    if (auto done = request<pb::Presence>(c, kJoin, in, "join"); !done) return fail(done.error());
  }

  const auto started = std::chrono::steady_clock::now();
  const std::string run_id = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  int ranked = 0, teams = 0, resends = 0;
  for (int m = 0; m < o.matches; ++m) {
    const bool team = unit(random) < 0.2;
    const size_t side = team ? 2 : 1;
    std::vector<size_t> picked(roster.size());
    for (size_t i = 0; i < picked.size(); ++i) picked[i] = i;
    std::shuffle(picked.begin(), picked.end(), random);
    std::vector<size_t> a(picked.begin(), picked.begin() + side);
    std::vector<size_t> b(picked.begin() + side, picked.begin() + 2 * side);
    auto strength = [&](const std::vector<size_t>& t) {
      double s = 0;
      for (size_t i : t) s += roster[i].skill;
      return s / static_cast<double>(t.size());
    };
    const double p_a = 1.0 / (1.0 + std::pow(10.0, (strength(b) - strength(a)) / 400.0));
    if (unit(random) >= p_a) std::swap(a, b);  // b won: it becomes the winning side

    pb::RecordMatchRequest in;
    in.set_match_id("demo-" + run_id + "-" + std::to_string(m));
    in.set_queue(queues[random() % queues.size()]);
    in.set_ranked(unit(random) < 0.75);
    in.set_duration_ms(20000 + static_cast<int64_t>(random() % 280000));
    in.set_server(m % 2 == 0 ? "demo-eu-1" : "demo-eu-2");
    for (size_t i : a) {
      auto* w = in.add_winners();
      w->set_uuid(roster[i].uuid);
      w->set_kills(static_cast<int32_t>(team ? 1 + random() % 2 : 1));
    }
    for (size_t i : b) {
      auto* l = in.add_losers();
      l->set_uuid(roster[i].uuid);
      l->set_kills(static_cast<int32_t>(team ? random() % 2 : 0));
    }
    // CONFLICT: the players' stats changed under every try; resending is safe, since a
    // match id is never counted twice.
    auto reply = c.call(kRecord, in.SerializeAsString());
    for (int tries = 0; reply && reply->status == prism::v1::STATUS_CONFLICT && tries < 5; ++tries, ++resends) {
      reply = c.call(kRecord, in.SerializeAsString());
    }
    if (!reply) return fail("record_match: " + reply.error());
    if (reply->status != prism::v1::STATUS_OK) {
      return fail("record_match " + in.match_id() + ": " + std::string(prism::client::status_name(reply->status)) +
                  ": " + reply->message);
    }
    ranked += in.ranked() ? 1 : 0;
    teams += team ? 1 : 0;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  std::cout << "recorded " << o.matches << " matches (" << ranked << " ranked, " << teams << " 2v2, "
            << resends << " resent) in " << ms.count() << " ms\n\n";

  print_board(c, pb::STAT_ELO, "", 10, "elo");
  print_board(c, pb::STAT_WINS, "", 5, "wins");
  print_board(c, pb::STAT_KILLS, "", 5, "kills");
  print_board(c, pb::STAT_BEST_STREAK, "", 5, "best streak");
  for (const auto& q : queues) {
    print_board(c, pb::STAT_ELO, q, 3, "elo");
    print_board(c, pb::STAT_WINS, q, 3, "wins");
  }

  // The profile of the global number one.
  pb::LeaderboardRequest top;
  top.set_stat(pb::STAT_ELO);
  top.set_limit(1);
  auto best = request<pb::Leaderboard>(c, kTop, top, "leaderboard_top");
  if (!best) return fail(best.error());
  if (best->entries_size() > 0) {
    pb::GetProfileRequest in;
    in.set_name(best->entries(0).name());
    auto profile = request<pb::Profile>(c, kProfile, in, "get_profile");
    if (!profile) return fail(profile.error());
    std::cout << "\n== profile of " << profile->name() << " ==\n"
              << "  uuid " << profile->uuid() << "  global elo " << profile->global_elo() << "\n"
              << "  matches " << profile->totals().matches() << "  wins " << profile->totals().wins()
              << "  losses " << profile->totals().losses() << "  kills " << profile->totals().kills()
              << "  deaths " << profile->totals().deaths() << "  best streak " << profile->totals().best_streak()
              << "\n";
    for (const auto& q : profile->queues()) {
      std::printf("  %-9s rating %5d  ranked %3lld  wins %3lld  losses %3lld\n", q.queue().c_str(), q.rating(),
                  static_cast<long long>(q.ranked_matches()), static_cast<long long>(q.stats().wins()),
                  static_cast<long long>(q.stats().losses()));
    }
    std::fflush(stdout);
    if (profile->has_presence()) {
      std::cout << "  online on " << profile->presence().server() << " in queue '" << profile->presence().queue()
                << "'\n";
    }
  }

  for (const char* where : {"demo-eu-1", "demo-eu-2"}) {
    pb::OnlineRequest in;
    in.set_server(where);
    auto online = request<pb::OnlineList>(c, kOnline, in, "online");
    if (!online) return fail(online.error());
    std::cout << "\n== online on " << where << " (" << online->players_size() << ") ==\n ";
    for (const auto& p : online->players()) std::cout << " " << p.name();
    std::cout << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Simulates a Minecraft practice server against prismd's practice service"};
  app.add_option("--server", o.server, "prismd's UDP address, host:port")->capture_default_str();
  app.add_option("--server-key", o.server_key, "The server's public key, prism1:<hex>, or its server.pub file");
  app.add_option("--config", o.config_path, "The server's prism.yaml: its key is server.pub beside server.key");
  app.add_option("--token-file", o.token_file,
                 "Log in to the practice service first with the token in this file; - reads a "
                 "line from standard input (default: $PRISM_SERVICE_TOKEN, if set)");
  app.add_option("--token", o.token,
                 "The same with the token itself (other local users can see it in ps)");
  app.add_option("--matches", o.matches, "Matches to record")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--players", o.players, "Players in the roster")->capture_default_str();
  app.add_option("--seed", o.seed, "Seed of the simulation")->capture_default_str();
  app.add_option("--queues", o.queues, "The server's queues, comma-separated")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return run(o);
}
