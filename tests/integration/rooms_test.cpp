// The rooms service (plugins/rooms, docs/rooms.md) through a real prismd: instances made
// over HTTP with the admin token, browsers' sockets at /socket/<id>/websocket (the tests'
// own WebSocket client speaking Phoenix v2), presence, the three channel kinds, and
// what survives a SIGKILL.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <cryptopp/base64.h>
#include <cryptopp/filters.h>
#include <cryptopp/hmac.h>
#include <cryptopp/sha.h>
#include <sqlite3.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "prism/client.hpp"
#include "prismd_process.hpp"
#include "support/http_client.hpp"
#include "support/temp_dir.hpp"
#include "support/ws_client.hpp"

namespace prism::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

PrismdOptions rooms_options(const fs::path& state_dir = {}) {
  PrismdOptions options;
  options.workers = 2;
  options.state_dir = state_dir;
  options.extra_yaml = "ws:\n  listen: 127.0.0.1:0\n";
  return options;
}

HttpReply create(PrismdProcess& prismd, const json& body) {
  return http_request(prismd.http_port(), "POST", "/api/instances", body.dump(),
                      "Authorization: Bearer " + prismd.admin_token() + "\r\n");
}

const json kGame = {{"id", "game-1"},
                    {"type", "match"},
                    {"name", "Match one"},
                    {"channels",
                     {{{"name", "chat"}, {"type", "accumulative"}},
                      {{"name", "cursors"}, {"type", "collaborative"}},
                      {{"name", "board"}, {"type", "shared"}, {"schema", {{"title", "string"}, {"score", "number"}}}}}}};

// kGame as game-1, and the same as game-2.
void create_two_games(PrismdProcess& prismd) {
  json second = kGame;
  second["id"] = "game-2";
  ASSERT_EQ(create(prismd, kGame).status, 200);
  ASSERT_EQ(create(prismd, second).status, 200);
}

// `prismctl rooms ARGS...` against `prismd`, with its admin login.
CommandResult prismctl_rooms(const PrismdProcess& prismd, std::vector<std::string> args) {
  std::vector<std::string> argv{std::string(PRISM_BINARY_DIR) + "/prismctl", "--server",
                                prismd.endpoint(), "--config", prismd.config_path().string(),
                                "rooms"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

// The next frame that is not a presence message (those interleave with everything).
json next_not_presence(WsClient& ws) {
  for (;;) {
    json m = ws.next_json();
    if (m.is_null() || (m[3] != "presence_state" && m[3] != "presence_diff")) return m;
  }
}

// Joins `channel` on the socket; returns the join's reply (presence of earlier joins,
// still arriving, is skipped).
json join(WsClient& ws, const std::string& channel) {
  ws.send(json::array({channel, channel, channel, "phx_join", json::object()}));
  return next_not_presence(ws);
}

class RoomsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    const HttpReply made = create(prismd, kGame);
    ASSERT_EQ(made.status, 200) << made.body << prismd.log();
    port = prismd.http_port();
  }
  PrismdProcess prismd{rooms_options()};
  uint16_t port = 0;
};

TEST_F(RoomsTest, JoiningTheLobbyAnswersThenPushesRoomsAndPresence) {
  WsClient ws(port, "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  ASSERT_TRUE(ws.upgraded());
  const json reply = join(ws, "lobby");
  EXPECT_EQ(reply[3], "phx_reply");
  EXPECT_EQ(reply[4]["status"], "ok") << reply;
  EXPECT_EQ(reply[4]["response"]["instance"]["id"], "game-1");
  const json rooms = ws.next_json();
  EXPECT_EQ(rooms[2], "lobby");
  EXPECT_EQ(rooms[3], "rooms");
  EXPECT_EQ(rooms[4]["rooms"].size(), 4u);  // lobby, board, chat, cursors
  const json presence = ws.next_json();
  EXPECT_EQ(presence[3], "presence_state");
  EXPECT_TRUE(presence[4].contains("alice")) << presence;
  EXPECT_EQ(presence[4]["alice"]["metas"].size(), 1u);
  ws.send(json::array({"lobby", "2", "lobby", "get_rooms", json::object()}));
  EXPECT_EQ(next_not_presence(ws)[4]["response"]["rooms"], rooms[4]["rooms"]);
}

TEST_F(RoomsTest, APushIsAcknowledgedAndReachesTheOtherMembersAsADelta) {
  WsClient alice(port, "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  WsClient bob(port, "/socket/game-1/websocket?vsn=2.0.0&userId=bob");
  ASSERT_TRUE(alice.upgraded() && bob.upgraded());
  EXPECT_EQ(join(alice, "chat")[4]["response"], json::parse(R"({"type":"accumulative","state":[]})"));
  EXPECT_EQ(join(bob, "chat")[4]["status"], "ok");
  alice.send(json::array({"chat", "2", "chat", "push", {{"text", "hi"}}}));
  const json ack = next_not_presence(alice);
  ASSERT_EQ(ack[4]["status"], "ok") << ack;
  EXPECT_EQ(ack[4]["response"]["applied"]["payload"], json({{"text", "hi"}}));
  EXPECT_EQ(ack[4]["response"]["applied"]["id"], 1);
  const json msg = next_not_presence(bob);
  EXPECT_EQ(msg[3], "msg");
  EXPECT_EQ(msg[4]["user"], "alice");
  EXPECT_EQ(msg[4]["payload"], json({{"text", "hi"}}));
  // Two in the same second keep both (mycelium overwrote by timestamp).
  alice.send(json::array({"chat", "3", "chat", "push", {{"text", "again"}}}));
  EXPECT_EQ(next_not_presence(alice)[4]["response"]["applied"]["id"], 2);
  WsClient late(port, "/socket/game-1/websocket?vsn=2.0.0&userId=carol");
  const json state = join(late, "chat")[4]["response"]["state"];
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[1]["payload"]["text"], "again");
}

TEST_F(RoomsTest, ASharedChannelTakesOnlyItsSchemasKeys) {
  WsClient ws(port, "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  ASSERT_TRUE(ws.upgraded());
  EXPECT_EQ(join(ws, "board")[4]["response"], json::parse(R"({"type":"shared","state":{}})"));
  ws.send(json::array({"board", "2", "board", "push", {{"title", "t"}}}));
  EXPECT_EQ(next_not_presence(ws)[4]["response"]["applied"],
            json::parse(R"({"user":"alice","changes":{"title":"t"}})"));
  ws.send(json::array({"board", "3", "board", "push", {{"nope", 1}}}));
  EXPECT_EQ(next_not_presence(ws)[4]["response"]["reason"], "unknown key 'nope' (not in the channel's schema)");
  ws.send(json::array({"board", "4", "board", "push", {{"score", "high"}}}));
  EXPECT_EQ(next_not_presence(ws)[4]["response"]["reason"], "key 'score' must be of type number");
}

TEST_F(RoomsTest, UnknownInstancesAndChannelsAreRefusedWithAReason) {
  WsClient ws(port, "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  ASSERT_TRUE(ws.upgraded());
  EXPECT_EQ(join(ws, "nosuch")[4]["response"]["reason"], "no channel 'nosuch' in instance 'game-1'");
  WsClient other(port, "/socket/game-9/websocket?vsn=2.0.0&userId=alice");
  ASSERT_TRUE(other.upgraded());
  EXPECT_EQ(join(other, "lobby")[4]["response"]["reason"], "no instance 'game-9'");
  WsClient nobody(port, "/socket/game-1/websocket?vsn=2.0.0");
  ASSERT_TRUE(nobody.upgraded());
  EXPECT_EQ(join(nobody, "lobby")[4]["status"], "error");
}

// Two instances with a chat channel never see each other's messages or presence.
TEST_F(RoomsTest, TwoInstancesChannelsOfOneNameStayApart) {
  json second = kGame;
  second["id"] = "game-2";
  ASSERT_EQ(create(prismd, second).status, 200);
  WsClient one(port, "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  WsClient two(port, "/socket/game-2/websocket?vsn=2.0.0&userId=bob");
  ASSERT_TRUE(one.upgraded() && two.upgraded());
  join(one, "chat");
  const json joined_two = join(two, "chat");
  ASSERT_EQ(joined_two[4]["status"], "ok");
  const json presence_two = two.next_json();
  EXPECT_EQ(presence_two[3], "presence_state");
  EXPECT_FALSE(presence_two[4].contains("alice")) << presence_two;
  one.send(json::array({"chat", "2", "chat", "push", {{"text", "only game-1"}}}));
  EXPECT_EQ(next_not_presence(one)[4]["status"], "ok");
  // two's next frame answers its own heartbeat: nothing of game-1 came first.
  two.send(json::array({nullptr, "h", "phoenix", "heartbeat", json::object()}));
  EXPECT_EQ(next_not_presence(two)[1], "h");
}

TEST_F(RoomsTest, TheHttpApiListsShowsAndDeletesWithTheAdminTokenOnly) {
  const std::string auth = "Authorization: Bearer " + prismd.admin_token() + "\r\n";
  const HttpReply list = http_request(port, "GET", "/api/instances", {}, auth);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(json::parse(list.body)["instances"][0]["id"], "game-1");
  EXPECT_EQ(http_request(port, "GET", "/api/instances", {}, "Authorization: Bearer wrong\r\n").status, 401);
  EXPECT_EQ(http_get(port, "/api/instances").status, 401);
  EXPECT_EQ(json::parse(http_request(port, "GET", "/api/instances/game-1", {}, auth).body)["name"], "Match one");
  EXPECT_EQ(create(prismd, kGame).status, 409);  // the id exists
  EXPECT_EQ(http_request(port, "DELETE", "/api/instances/game-1", {}, auth).status, 200);
  EXPECT_EQ(http_request(port, "GET", "/api/instances/game-1", {}, auth).status, 404);
}

// A channel that ends under its members says so (protocol.md §7.3): stopping the instance
// sends phx_error (the stock client rejoins, and is back once it starts), deleting it
// phx_close (gone for good); either way the socket has left the channel.
TEST_F(RoomsTest, MembersHearPhxErrorWhenTheInstanceStopsAndPhxCloseWhenItIsDeleted) {
  const std::string auth = "Authorization: Bearer " + prismd.admin_token() + "\r\n";
  WsClient ws(port, "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  ASSERT_TRUE(ws.upgraded());
  ASSERT_EQ(join(ws, "chat")[4]["status"], "ok");
  ASSERT_EQ(http_request(port, "POST", "/api/instances/game-1/stop", {}, auth).status, 200);
  const json errored = next_not_presence(ws);
  EXPECT_EQ(errored, json::parse(R"(["chat","chat","chat","phx_error",{"reason":"instance 'game-1' is stopped"}])"));
  ws.send(json::array({"chat", "2", "chat", "push", {{"text", "hi"}}}));
  EXPECT_EQ(next_not_presence(ws)[4]["response"]["reason"], "unmatched topic");  // left
  ASSERT_EQ(http_request(port, "POST", "/api/instances/game-1/start", {}, auth).status, 200);
  ASSERT_EQ(join(ws, "chat")[4]["status"], "ok");  // what the stock client does after phx_error
  ASSERT_EQ(http_request(port, "DELETE", "/api/instances/game-1", {}, auth).status, 200);
  EXPECT_EQ(next_not_presence(ws),
            json::parse(R"(["chat","chat","chat","phx_close",{"reason":"instance 'game-1' was deleted"}])"));
}

// A UDP game server and a browser share a room: the server joins as a member over its
// session (rooms' packet ids), each hears the other's pushes.
TEST_F(RoomsTest, AUdpGameServerAndABrowserShareARoom) {
  client::ConnectOptions options;
  options.server_key = prismd.server_key();
  auto server = client::Client::connect({"127.0.0.1", prismd.port()}, options);
  ASSERT_TRUE(server) << server.error();
  std::vector<json> heard;
  server->on_topic("@game-1/chat", [&](const v1::Message& m) {
    if (m.packet_id() == 1250) heard.push_back(json::parse(m.payload()));  // msg
  });
  auto joined = server->call(1210, R"({"id":"game-1","channel":"chat","user":"server-bot"})");
  ASSERT_TRUE(joined && joined->status == v1::STATUS_OK) << (joined ? joined->message : joined.error());
  EXPECT_EQ(json::parse(joined->payload)["type"], "accumulative");

  WsClient alice(port, "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  ASSERT_TRUE(alice.upgraded());
  ASSERT_EQ(join(alice, "chat")[4]["status"], "ok");
  auto pushed = server->call(1211, R"({"id":"game-1","channel":"chat","payload":{"round":1}})");
  ASSERT_TRUE(pushed && pushed->status == v1::STATUS_OK) << (pushed ? pushed->message : pushed.error());
  const json msg = next_not_presence(alice);
  EXPECT_EQ(msg[3], "msg");
  EXPECT_EQ(msg[4]["user"], "server-bot");
  EXPECT_EQ(msg[4]["payload"], json({{"round", 1}}));

  alice.send(json::array({"chat", "2", "chat", "push", {{"gg", true}}}));
  ASSERT_EQ(next_not_presence(alice)[4]["status"], "ok");
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  // Each poll returns as traffic arrives; the bound only ends a broken test.
  while (heard.empty() && std::chrono::steady_clock::now() < end) {
    if (!server->poll(std::chrono::milliseconds(50))) break;
  }
  ASSERT_EQ(heard.size(), 1u);
  EXPECT_EQ(heard[0]["user"], "alice");
  EXPECT_EQ(heard[0]["payload"], json({{"gg", true}}));
}

// A hot reload of rooms under connected sockets: the next version gets the members and
// presence (instances come back from storage); pushes go on without a rejoin.
TEST_F(RoomsTest, AHotReloadKeepsMembersAndPresence) {
  WsClient alice(port, "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  WsClient bob(port, "/socket/game-1/websocket?vsn=2.0.0&userId=bob");
  ASSERT_TRUE(alice.upgraded() && bob.upgraded());
  ASSERT_EQ(join(alice, "chat")[4]["status"], "ok");
  ASSERT_EQ(join(bob, "chat")[4]["status"], "ok");
  // The first version's load may end after SetUp created game-1, so it may log
  // "instances=1" too: the next version's line is the second one.
  constexpr std::string_view kLoaded = "rooms loaded instances=";
  ASSERT_TRUE(prismd.wait_for_log(kLoaded)) << prismd.log();
  const auto reloaded = run_command({std::string(PRISM_BINARY_DIR) + "/prismctl", "--server",
                                     prismd.endpoint(), "--config", prismd.config_path().string(),
                                     "reload", "rooms"});
  ASSERT_EQ(reloaded.exit_code, 0) << reloaded.output << prismd.log();
  ASSERT_TRUE(prismd.wait_for_log(kLoaded, std::chrono::seconds(10), 2)) << prismd.log();
  const size_t second = prismd.log().rfind(kLoaded);
  // The line ends msg="rooms loaded instances=1".
  EXPECT_EQ(prismd.log().substr(second + kLoaded.size(), 2), "1\"") << prismd.log();
  alice.send(json::array({"chat", "2", "chat", "push", {{"text", "after the reload"}}}));
  const json ack = next_not_presence(alice);
  ASSERT_EQ(ack[4]["status"], "ok") << ack << prismd.log();
  const json msg = next_not_presence(bob);
  EXPECT_EQ(msg[3], "msg");
  EXPECT_EQ(msg[4]["payload"]["text"], "after the reload");
  WsClient carol(port, "/socket/game-1/websocket?vsn=2.0.0&userId=carol");
  ASSERT_EQ(join(carol, "chat")[4]["status"], "ok");
  const json presence = carol.next_json();
  ASSERT_EQ(presence[3], "presence_state");
  EXPECT_TRUE(presence[4].contains("alice") && presence[4].contains("bob")) << presence;
}

// prismctl rooms: the admin session reaches the service without its token.
TEST_F(RoomsTest, PrismctlCreatesListsStopsAndDeletesInstances) {
  auto ctl = [&](std::vector<std::string> args) { return prismctl_rooms(prismd, std::move(args)); };
  const auto created = ctl({"create", "--id", "cli-1", "--name", "From the CLI", "--channel", "chat:accumulative"});
  ASSERT_EQ(created.exit_code, 0) << created.output;
  EXPECT_EQ(json::parse(created.output)["channels"].size(), 2u);  // chat and the lobby
  const auto listed = ctl({"list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_NE(listed.output.find("cli-1"), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("From the CLI"), std::string::npos) << listed.output;
  ASSERT_EQ(ctl({"stop", "cli-1"}).exit_code, 0);
  WsClient ws(port, "/socket/cli-1/websocket?vsn=2.0.0&userId=alice");
  ASSERT_TRUE(ws.upgraded());
  EXPECT_EQ(join(ws, "chat")[4]["response"]["reason"], "instance 'cli-1' is stopped");
  ASSERT_EQ(ctl({"start", "cli-1"}).exit_code, 0);
  EXPECT_EQ(join(ws, "chat")[4]["status"], "ok");
  ASSERT_EQ(ctl({"delete", "cli-1"}).exit_code, 0);
  const auto gone = ctl({"show", "cli-1"});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_NE(gone.output.find("NOT_FOUND: no instance 'cli-1'"), std::string::npos) << gone.output;
}

// An HS256 JWT (RFC 7519) signed with `secret`, made here with Crypto++.
std::string hs256_token(const std::string& secret, const json& claims) {
  auto b64url = [](const std::string& bytes) {
    std::string out;
    CryptoPP::StringSource(bytes, true, new CryptoPP::Base64URLEncoder(new CryptoPP::StringSink(out), false));
    return out;
  };
  const std::string signing_input = b64url(R"({"alg":"HS256","typ":"JWT"})") + "." + b64url(claims.dump());
  std::string mac;
  CryptoPP::HMAC<CryptoPP::SHA256> hmac(reinterpret_cast<const CryptoPP::byte*>(secret.data()), secret.size());
  CryptoPP::StringSource(signing_input, true, new CryptoPP::HashFilter(hmac, new CryptoPP::StringSink(mac)));
  return signing_input + "." + b64url(mac);
}

// rooms.auth: a socket needs a JWT whose sub is its user; exp and the instances claim
// are checked; userId alone is no longer enough.
TEST(RoomsAuth, WithAKeyJoinsNeedAValidTokenWhoseSubIsTheUser) {
  const std::string secret = "a secret of at least thirty-two bytes!";
  PrismdOptions options = rooms_options();
  options.plugin_configs["rooms"] = "settings:\n  auth:\n    hs256_secret: \"" + secret + "\"\n";
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  ASSERT_EQ(create(prismd, kGame).status, 200) << prismd.log();
  const uint16_t port = prismd.http_port();
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  auto join_with = [&](const std::string& query) {
    WsClient ws(port, "/socket/game-1/websocket?vsn=2.0.0&" + query);
    EXPECT_TRUE(ws.upgraded());
    return join(ws, "lobby")[4];
  };
  const json ok = join_with("token=" + hs256_token(secret, {{"sub", "alice"}, {"exp", now + 60}}));
  EXPECT_EQ(ok["status"], "ok") << ok;
  EXPECT_EQ(ok["response"]["user"], "alice");
  EXPECT_EQ(join_with("userId=alice")["response"]["reason"], "a token is required (rooms.auth)");
  EXPECT_EQ(join_with("token=" + hs256_token(secret, {{"sub", "alice"}, {"exp", now - 120}}))["response"]["reason"],
            "token expired");
  EXPECT_EQ(join_with("token=" + hs256_token("another secret of thirty-two bytes!!", {{"sub", "alice"}}))["response"]["reason"],
            "token signature invalid");
  EXPECT_EQ(join_with("token=" + hs256_token(secret, {{"sub", "alice"}, {"instances", {"game-2"}}}))["response"]["reason"],
            "the token does not allow instance 'game-1'");
}

// Sets one stored document of a stopped prismd's sqlite store (what a bad disk or a bad
// hand could leave).
void corrupt_document(const fs::path& state, const std::string& collection, const std::string& key,
                      const std::string& value) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((state / "prism.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "UPDATE docs SET value = ? WHERE collection = ? AND key = ?", -1,
                               &stmt, nullptr),
            SQLITE_OK);
  sqlite3_bind_blob(stmt, 1, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt, 2, collection.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt, 3, key.c_str(), -1, SQLITE_TRANSIENT);
  EXPECT_EQ(sqlite3_step(stmt), SQLITE_DONE);
  EXPECT_EQ(sqlite3_changes(db), 1);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

// Isolation: an instance whose stored state is bad fails alone, with the reason in the log
// and in prismctl rooms show, while the others serve; once its state is repaired,
// `rooms start` brings it back from storage.
TEST(RoomsIsolation, AnInstanceWithBadStateFailsAloneAndStartsAgainFromStorage) {
  const TempDir dir("prism-rooms-test");
  const fs::path& state = dir.path();
  std::string good_chat;
  {
    PrismdProcess prismd(rooms_options(state));
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    ASSERT_NO_FATAL_FAILURE(create_two_games(prismd));
    ASSERT_EQ(prismd.stop(SIGTERM), 0) << prismd.log();
  }
  corrupt_document(state, "rooms.channels", "game-1/chat",
                   R"({"name":"chat","type":"accumulative","state":[{"id":"not a number"}]})");
  PrismdProcess prismd(rooms_options(state));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  ASSERT_TRUE(prismd.wait_for_log("rooms loaded instances=2")) << prismd.log();
  EXPECT_NE(prismd.log().find("instance failed id=game-1 reason='channel game-1/chat is unreadable"),
            std::string::npos)
      << prismd.log();
  auto ctl = [&](std::vector<std::string> args) { return prismctl_rooms(prismd, std::move(args)); };
  const auto shown = ctl({"show", "game-1"});
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_EQ(json::parse(shown.output)["state"], "failed");
  EXPECT_NE(json::parse(shown.output)["failure"].get<std::string>().find("game-1/chat"), std::string::npos);
  WsClient one(prismd.http_port(), "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  WsClient two(prismd.http_port(), "/socket/game-2/websocket?vsn=2.0.0&userId=alice");
  ASSERT_TRUE(one.upgraded() && two.upgraded());
  EXPECT_EQ(join(one, "chat")[4]["response"]["reason"], "instance 'game-1' is failed");
  EXPECT_EQ(join(two, "chat")[4]["status"], "ok");  // the other instance serves on
  // Repaired in storage, then started: back from what is stored.
  corrupt_document(state, "rooms.channels", "game-1/chat",
                   R"({"name":"chat","type":"accumulative","next_id":8,"state":[{"id":7,"user":"bob","ts":1,"payload":{"ok":1}}]})");
  const auto started = ctl({"start", "game-1"});
  ASSERT_EQ(started.exit_code, 0) << started.output << prismd.log();
  const json joined = join(one, "chat");
  ASSERT_EQ(joined[4]["status"], "ok") << joined;
  EXPECT_EQ(joined[4]["response"]["state"][0]["id"], 7);
}

// rooms_options() with the rooms service built to fail on demand (tests/plugins:
// rooms_faults, whose event `fault` throws inside the instance) in `plugins`.
PrismdOptions faulty_rooms_options(const TempDir& plugins) {
  fs::copy_file(fs::path(PRISM_TEST_PLUGIN_DIR) / "rooms-faults" / "rooms.so", plugins.path() / "rooms.so");
  PrismdOptions options = rooms_options();
  options.plugins_dir = plugins.path();
  return options;
}

// Reads `ws` until it has both the reply to `ref` and a phx_error; returns the phx_error
// (null if the socket closed first). Their order is not fixed: the reply leaves as the
// request ends, the phx_error as the instance stops.
json reply_and_phx_error(WsClient& ws, const std::string& ref, json* reply) {
  json error;
  while (reply->is_null() || error.is_null()) {
    json m = next_not_presence(ws);
    if (m.is_null()) return m;
    if (m[3] == "phx_reply" && m[1] == ref) *reply = m;
    if (m[3] == "phx_error") error = m;
  }
  return error;
}

// Isolation: an instance that fails while it serves (a handler's exception) stops alone:
// its members hear phx_error and the reason is in the log and in show; with restart:
// on-failure (the default) it comes back from its last stored state, and a member that
// rejoins (as the stock client does after phx_error) finds what was acknowledged.
TEST(RoomsIsolation, AFailureWhileServingRestartsThatInstanceAloneFromItsStoredState) {
  const TempDir plugins("prism-rooms-faults");
  PrismdProcess prismd(faulty_rooms_options(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  ASSERT_NO_FATAL_FAILURE(create_two_games(prismd));
  WsClient alice(prismd.http_port(), "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  WsClient carol(prismd.http_port(), "/socket/game-2/websocket?vsn=2.0.0&userId=carol");
  ASSERT_TRUE(alice.upgraded() && carol.upgraded());
  ASSERT_EQ(join(alice, "chat")[4]["status"], "ok");
  ASSERT_EQ(join(carol, "chat")[4]["status"], "ok");
  alice.send(json::array({"chat", "2", "chat", "push", {{"text", "before"}}}));
  ASSERT_EQ(next_not_presence(alice)[4]["status"], "ok");  // stored

  alice.send(json::array({"chat", "3", "chat", "fault", {{"bug", 1}}}));
  json reply;
  const json error = reply_and_phx_error(alice, "3", &reply);
  ASSERT_FALSE(error.is_null()) << prismd.log();
  EXPECT_EQ(reply[4]["status"], "error") << reply;
  EXPECT_EQ(error[2], "chat");
  EXPECT_EQ(error[4]["reason"], R"(instance 'game-1' failed: injected fault: {"bug":1})");
  ASSERT_TRUE(prismd.wait_for_log("instance restarted id=game-1")) << prismd.log();
  EXPECT_NE(prismd.log().find("instance failed id=game-1"), std::string::npos) << prismd.log();

  // The other instance went on serving and heard nothing of it.
  carol.send(json::array({"chat", "2", "chat", "push", {{"text", "still here"}}}));
  const json carols = next_not_presence(carol);
  EXPECT_EQ(carols[3], "phx_reply") << carols;
  EXPECT_EQ(carols[4]["status"], "ok") << carols;

  const auto shown = prismctl_rooms(prismd, {"show", "game-1"});
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_EQ(json::parse(shown.output)["state"], "running");
  const json rejoined = join(alice, "chat");
  ASSERT_EQ(rejoined[4]["status"], "ok") << rejoined;
  ASSERT_EQ(rejoined[4]["response"]["state"].size(), 1u) << rejoined;
  EXPECT_EQ(rejoined[4]["response"]["state"][0]["payload"]["text"], "before");
}

// on-failure restarts an instance 3 times within a minute at most: a fault that comes
// straight back after each restart leaves it failed, until it is started by hand.
TEST(RoomsIsolation, AnInstanceThatKeepsFailingIsLeftFailedAfterThreeRestartsInAMinute) {
  const TempDir plugins("prism-rooms-faults");
  PrismdProcess prismd(faulty_rooms_options(plugins));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  ASSERT_EQ(create(prismd, kGame).status, 200);
  WsClient alice(prismd.http_port(), "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  ASSERT_TRUE(alice.upgraded());
  for (int failure = 1; failure <= 4; ++failure) {
    const json joined = join(alice, "chat");
    ASSERT_EQ(joined[4]["status"], "ok") << failure << joined;
    alice.send(json::array({"chat", "f", "chat", "fault", json::object()}));
    json reply;
    ASSERT_FALSE(reply_and_phx_error(alice, "f", &reply).is_null()) << prismd.log();
    if (failure <= 3) {
      ASSERT_TRUE(prismd.wait_for_log("instance restarted id=game-1 restarts=" + std::to_string(failure)))
          << prismd.log();
    }
  }
  ASSERT_TRUE(prismd.wait_for_log("instance left failed id=game-1 reason='3 restarts within 60 s'"))
      << prismd.log();
  EXPECT_EQ(prismd.log().find("restarts=4"), std::string::npos);
  EXPECT_EQ(join(alice, "chat")[4]["response"]["reason"], "instance 'game-1' is failed");
  const auto started = prismctl_rooms(prismd, {"start", "game-1"});
  ASSERT_EQ(started.exit_code, 0) << started.output << prismd.log();
  EXPECT_EQ(join(alice, "chat")[4]["status"], "ok");
}

// restart: never leaves a failed instance failed, with its reason, until it is started.
TEST(RoomsIsolation, WithRestartNeverAFailedInstanceWaitsForAStart) {
  const TempDir plugins("prism-rooms-faults");
  PrismdOptions options = faulty_rooms_options(plugins);
  options.plugin_configs["rooms"] = "settings:\n  restart: never\n";
  PrismdProcess prismd(options);
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  ASSERT_EQ(create(prismd, kGame).status, 200);
  WsClient alice(prismd.http_port(), "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  ASSERT_TRUE(alice.upgraded());
  ASSERT_EQ(join(alice, "chat")[4]["status"], "ok");
  alice.send(json::array({"chat", "2", "chat", "fault", json::object()}));
  json reply;
  ASSERT_FALSE(reply_and_phx_error(alice, "2", &reply).is_null()) << prismd.log();
  auto shown = prismctl_rooms(prismd, {"show", "game-1"});
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_EQ(json::parse(shown.output)["state"], "failed");
  EXPECT_EQ(json::parse(shown.output)["failure"], "injected fault: {}");
  EXPECT_EQ(join(alice, "chat")[4]["response"]["reason"], "instance 'game-1' is failed");
  EXPECT_EQ(prismd.log().find("instance restarted"), std::string::npos) << prismd.log();
  const auto started = prismctl_rooms(prismd, {"start", "game-1"});
  ASSERT_EQ(started.exit_code, 0) << started.output << prismd.log();
  EXPECT_EQ(join(alice, "chat")[4]["status"], "ok");
}

// The names of an instance's channels as GET /api/instances/<id> lists them.
std::set<std::string> channel_names(uint16_t port, const std::string& auth) {
  const HttpReply shown = http_request(port, "GET", "/api/instances/game-1", {}, auth);
  const json instance = json::parse(shown.body);  // bound: a range-for over a temporary's member dangles
  std::set<std::string> names;
  for (const json& c : instance["channels"]) names.insert(c["name"].get<std::string>());
  return names;
}

// An admin adds and deletes channels of a running instance over HTTP: the lobby's members
// get the new list, a deleted channel's members phx_close, and after a restart the
// channels are as they were left (a deleted one's stored state went with it).
TEST(RoomsPersistence, ChannelsAddedAndDeletedByTheApiStayThatWayAfterARestart) {
  const TempDir dir("prism-rooms-test");
  {
    PrismdProcess prismd(rooms_options(dir.path()));
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    ASSERT_EQ(create(prismd, kGame).status, 200);
    const uint16_t port = prismd.http_port();
    const std::string auth = "Authorization: Bearer " + prismd.admin_token() + "\r\n";
    WsClient ws(port, "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
    ASSERT_TRUE(ws.upgraded());
    ASSERT_EQ(join(ws, "lobby")[4]["status"], "ok");
    ASSERT_EQ(next_not_presence(ws)[3], "rooms");  // the list on joining
    ASSERT_EQ(join(ws, "chat")[4]["status"], "ok");
    ws.send(json::array({"chat", "2", "chat", "push", {{"text", "gone soon"}}}));
    ASSERT_EQ(next_not_presence(ws)[4]["status"], "ok");

    const HttpReply added = http_request(port, "POST", "/api/instances/game-1/channels",
                                         R"({"name":"notes","type":"collaborative"})", auth);
    ASSERT_EQ(added.status, 200) << added.body;
    const json pushed = next_not_presence(ws);
    EXPECT_EQ(pushed[2], "lobby");
    EXPECT_EQ(pushed[3], "rooms");
    EXPECT_NE(pushed[4]["rooms"].dump().find("notes"), std::string::npos) << pushed;
    EXPECT_EQ(http_request(port, "POST", "/api/instances/game-1/channels", R"({"name":"notes","type":"shared"})", auth)
                  .status,
              400);  // exists
    const HttpReply deleted = http_request(port, "DELETE", "/api/instances/game-1/channels/chat", {}, auth);
    ASSERT_EQ(deleted.status, 200) << deleted.body;
    std::set<std::string> heard;
    while (heard.size() < 2) {  // phx_close on chat, the new list on the lobby, in either order
      const json m = next_not_presence(ws);
      ASSERT_FALSE(m.is_null());
      heard.insert(m[2].get<std::string>() + " " + m[3].get<std::string>());
    }
    EXPECT_EQ(heard, (std::set<std::string>{"chat phx_close", "lobby rooms"}));
    EXPECT_EQ(http_request(port, "DELETE", "/api/instances/game-1/channels/lobby", {}, auth).status, 400);
    EXPECT_EQ(channel_names(port, auth), (std::set<std::string>{"board", "cursors", "lobby", "notes"}));
    ASSERT_EQ(prismd.stop(SIGTERM), 0) << prismd.log();
  }
  PrismdProcess prismd(rooms_options(dir.path()));
  ASSERT_TRUE(prismd.ready()) << prismd.log();
  ASSERT_TRUE(prismd.wait_for_log("rooms loaded instances=1")) << prismd.log();
  const std::string auth = "Authorization: Bearer " + prismd.admin_token() + "\r\n";
  EXPECT_EQ(channel_names(prismd.http_port(), auth), (std::set<std::string>{"board", "cursors", "lobby", "notes"}));
  WsClient ws(prismd.http_port(), "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
  ASSERT_TRUE(ws.upgraded());
  EXPECT_EQ(join(ws, "chat")[4]["response"]["reason"], "no channel 'chat' in instance 'game-1'");
}

// Acknowledged pushes are durable: prismd is SIGKILLed while pushes are still coming
// in; the next prismd on the same state dir has every message that was acknowledged.
TEST(RoomsPersistence, NothingAcknowledgedIsLostToASigkillUnderTraffic) {
  const TempDir dir("prism-rooms-test");
  const fs::path& state = dir.path();
  std::set<int> acknowledged;
  PrismdOptions busy = rooms_options(state);
  busy.extra_yaml += "  messages_per_second: 100000\n";  // the gateway's per-socket rate
  {
    PrismdProcess prismd(busy);
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    json game = kGame;
    game["limits"] = {{"history", 1000}, {"messages_per_second", 100000}};
    ASSERT_EQ(create(prismd, game).status, 200);
    WsClient ws(prismd.http_port(), "/socket/game-1/websocket?vsn=2.0.0&userId=alice");
    ASSERT_TRUE(ws.upgraded());
    join(ws, "chat");
    // 300 pushes in flight at once; the kill comes once 50 are acknowledged, while the
    // rest are still arriving, being applied or being written.
    for (int i = 0; i < 300; ++i) {
      ws.send(json::array({"chat", std::to_string(i), "chat", "push", {{"n", i}}}));
    }
    while (acknowledged.size() < 50) {
      const json m = next_not_presence(ws);
      ASSERT_FALSE(m.is_null());
      if (m[3] == "phx_reply" && m[4]["status"] == "ok") acknowledged.insert(std::stoi(m[1].get<std::string>()));
    }
    prismd.stop(SIGKILL);
    // Acknowledgements already on their way count too: whatever the socket still reads.
    for (json m = ws.next_json(); !m.is_null(); m = ws.next_json()) {
      if (m[3] == "phx_reply" && m[4]["status"] == "ok") acknowledged.insert(std::stoi(m[1].get<std::string>()));
    }
  }
  {
    PrismdProcess prismd(rooms_options(state));
    ASSERT_TRUE(prismd.ready()) << prismd.log();
    ASSERT_TRUE(prismd.wait_for_log("rooms loaded instances=1")) << prismd.log();
    WsClient ws(prismd.http_port(), "/socket/game-1/websocket?vsn=2.0.0&userId=bob");
    ASSERT_TRUE(ws.upgraded());
    const json joined = join(ws, "chat");
    ASSERT_EQ(joined[4]["status"], "ok") << joined << prismd.log();
    std::set<int> stored;
    for (const json& m : joined[4]["response"]["state"]) stored.insert(m["payload"]["n"].get<int>());
    for (const int n : acknowledged) EXPECT_TRUE(stored.contains(n)) << "acknowledged push " << n << " was lost";
    EXPECT_GE(stored.size(), acknowledged.size());
  }
}

}  // namespace
}  // namespace prism::testing
