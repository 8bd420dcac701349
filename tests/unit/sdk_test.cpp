// sdk_test: dlopen()s the built plugins and drives them through a fake host table, checking
// the C++ SDK's promises (every request answered exactly once, exceptions kept on the
// plugin's side of the ABI, state handed across versions) and the default plugin's replies.
#include <prism/plugin.h>
#include <prism/plugin.hpp>

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using nlohmann::json;

const std::string kPluginDir = PRISM_PLUGIN_DIR;
const std::string kTestPluginDir = PRISM_TEST_PLUGIN_DIR;

prism_bytes_t bytes_of(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}
std::string text_of(prism_bytes_t bytes) {
  return bytes.data != nullptr ? std::string(reinterpret_cast<const char*>(bytes.data), bytes.len)
                               : "";
}

struct Reply {
  prism_status_t status;
  std::string message;
  std::string payload;
};

struct Counter {
  std::string name;
  uint64_t value = 0;
};

struct PluginRow {
  std::string name, version;
  uint32_t first, last;
  uint64_t requests, errors;
};

class FakeHost;

// What the fake hands the plugin as an opaque prism_request_t*.
struct FakeRequest {
  FakeHost* host;
  uint64_t session;
  bool answered = false;
};

// A host table whose functions record what the plugin did. The plugin sees only opaque
// pointers, which the fake casts back to its own types (never defining the ABI's structs,
// so this test cannot clash with the real host's definitions).
class FakeHost {
 public:
  FakeHost() = default;
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  const prism_host_api_t* api() const { return &api_; }
  prism_host_api_t& api_mutable() { return api_; }
  prism_host_t* handle() { return reinterpret_cast<prism_host_t*>(this); }

  // Whether any log line at `level` contains `text`.
  bool logged(prism_log_level_t level, std::string_view text) const {
    for (const auto& [l, line] : logs)
      if (l == level && line.find(text) != std::string::npos) return true;
    return false;
  }

  // ABI 1.2 push/topics, offered by offer_realtime(): what the plugin asked for.
  void offer_realtime() {
    api_.struct_size = sizeof(prism_host_api_t);
    api_.abi_version_minor = PRISM_ABI_VERSION_MINOR;
    api_.subscribe = [](prism_host_t* h, uint64_t session, prism_bytes_t topic) {
      of(h).topic_calls.push_back("subscribe " + std::to_string(session) + " " + text_of(topic));
      return PRISM_OK;
    };
    api_.unsubscribe = [](prism_host_t* h, uint64_t session, prism_bytes_t topic) {
      of(h).topic_calls.push_back("unsubscribe " + std::to_string(session) + " " + text_of(topic));
      return PRISM_OK;
    };
    api_.publish = [](prism_host_t* h, prism_bytes_t topic, uint32_t method, prism_bytes_t payload) {
      of(h).topic_calls.push_back("publish " + text_of(topic) + " " + std::to_string(method) + " " +
                                  text_of(payload));
      return PRISM_OK;
    };
  }
  std::vector<std::string> topic_calls;

  std::vector<Reply> replies;
  int replies_after_answer = 0;  // a request answered twice; must stay 0
  std::vector<std::pair<prism_log_level_t, std::string>> logs;
  std::deque<Counter> counters;  // a deque keeps the addresses handed out as handles stable
  std::vector<PluginRow> plugins;
  prism_server_info_t server{sizeof(prism_server_info_t), "9.9.9-test", 1'000, 5'000, 4, "node-test"};
  int server_info_calls = 0;

 private:
  static FakeHost& of(prism_host_t* host) { return *reinterpret_cast<FakeHost*>(host); }

  static prism_status_t reply(prism_request_t* r, prism_status_t status, const char* message,
                              prism_bytes_t payload) {
    auto* request = reinterpret_cast<FakeRequest*>(r);
    if (std::exchange(request->answered, true)) {
      ++request->host->replies_after_answer;
      return PRISM_INVALID_ARGUMENT;
    }
    request->host->replies.push_back({status, message != nullptr ? message : "", text_of(payload)});
    return PRISM_OK;
  }
  static uint64_t request_session(const prism_request_t* r) {
    return reinterpret_cast<const FakeRequest*>(r)->session;
  }
  static void log(prism_host_t* h, prism_log_level_t level, const char* message, size_t len) {
    of(h).logs.emplace_back(level, std::string(message, len));
  }
  static prism_counter_t* counter_register(prism_host_t* h, const char* name, const char*) {
    return reinterpret_cast<prism_counter_t*>(&of(h).counters.emplace_back(Counter{name}));
  }
  static void counter_add(prism_counter_t* c, uint64_t delta) {
    reinterpret_cast<Counter*>(c)->value += delta;
  }
  static void server_info(prism_host_t* h, prism_server_info_t* out) {
    ++of(h).server_info_calls;
    *out = of(h).server;
  }
  static void visit_plugins(prism_host_t* h, prism_plugin_visitor_fn visit, void* user) {
    for (const PluginRow& row : of(h).plugins) {
      const prism_plugin_info_t info{sizeof info, row.name.c_str(), row.version.c_str(), row.first,
                                     row.last,    row.requests,     row.errors};
      visit(user, &info);
    }
  }

  // A host of ABI 1.0: the table ends before the storage entries, as an older prismd's
  // would, so the wrapper must not touch them.
  static prism_host_api_t make_api() {
    prism_host_api_t api{};
    api.struct_size = offsetof(prism_host_api_t, doc_get);
    api.abi_version_major = PRISM_ABI_VERSION_MAJOR;
    api.abi_version_minor = 0;
    api.reply = &reply;
    api.request_session = &request_session;
    api.log = &log;
    api.counter_register = &counter_register;
    api.counter_add = &counter_add;
    api.server_info = &server_info;
    api.visit_plugins = &visit_plugins;
    return api;
  }
  prism_host_api_t api_ = make_api();
};

// One plugin file opened with dlopen and, if it has an entry and init succeeds, one
// instance of it. Members are destroyed in reverse: shutdown runs before dlclose.
class LoadedPlugin {
 public:
  LoadedPlugin(const std::string& path, FakeHost& host, std::string_view config = {})
      : host_(host) {
    file_.reset(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL));
    if (!file_) {
      init_error = dlerror();
      return;
    }
    auto entry =
        reinterpret_cast<prism_plugin_entry_fn>(dlsym(file_.get(), PRISM_PLUGIN_ENTRY_SYMBOL));
    if (entry == nullptr) return;
    descriptor = entry();
    char error[256] = "";
    init_status = descriptor->init(host.api(), host.handle(), bytes_of(config), &instance_, error,
                                   sizeof error);
    init_error = error;
  }
  ~LoadedPlugin() {
    if (instance_ != nullptr && init_status == PRISM_OK) descriptor->shutdown(instance_);
  }

  bool started() const { return descriptor != nullptr && init_status == PRISM_OK; }
  void* symbol(const char* name) const { return file_ ? dlsym(file_.get(), name) : nullptr; }

  // Calls handle for `method` from session 7; the reply, if any, lands in host.replies.
  prism_status_t call(uint32_t method, std::string_view payload = {}) {
    FakeRequest request{&host_, 7};
    return descriptor->handle(instance_, reinterpret_cast<prism_request_t*>(&request), method,
                              bytes_of(payload));
  }
  // Calls the plugin's channel callback from session 7 (plugin.h, "Channels").
  prism_status_t channel(prism_channel_kind_t kind, std::string_view topic, std::string_view event,
                         std::string_view payload = "{}",
                         std::string_view connect = R"({"params":{}})") {
    FakeRequest request{&host_, 7};
    prism_channel_message_t m{sizeof m,          static_cast<uint32_t>(kind), bytes_of(topic),
                              bytes_of(event),   bytes_of(payload),           bytes_of(connect)};
    return descriptor->channel(instance_, reinterpret_cast<prism_request_t*>(&request), &m);
  }
  // The last reply's payload, after calling `method`.
  std::string call_text(uint32_t method, std::string_view payload = {}) {
    const size_t before = host_.replies.size();
    EXPECT_EQ(call(method, payload), PRISM_OK);
    EXPECT_EQ(host_.replies.size(), before + 1)
        << "method " << method << " must reply exactly once";
    return host_.replies.empty() ? "" : host_.replies.back().payload;
  }
  void* instance() const { return instance_; }

  // As call(), for a handler that answers later: the request outlives this call.
  prism_status_t call_async(uint32_t method, std::string payload) {
    FakeRequest& request = pending_.emplace_back(FakeRequest{&host_, 7});
    return descriptor->handle(instance_, reinterpret_cast<prism_request_t*>(&request), method,
                              bytes_of(payload));  // `payload` dies here, as the host's does
  }

  const prism_plugin_descriptor_t* descriptor = nullptr;  // null: no entry symbol
  prism_status_t init_status = PRISM_INTERNAL;
  std::string init_error;

 private:
  struct Close {
    void operator()(void* handle) const { dlclose(handle); }
  };
  FakeHost& host_;
  std::unique_ptr<void, Close> file_;
  void* instance_ = nullptr;
  std::deque<FakeRequest> pending_;  // stable addresses for requests answered later
};

std::string bundled(std::string_view name) { return kPluginDir + "/" + std::string(name) + ".so"; }
std::string test_plugin(std::string_view name) {
  return kTestPluginDir + "/" + std::string(name) + ".so";
}

// Relative method ids of the default plugin.
constexpr uint32_t kPing = 0, kEcho = 1, kTime = 2, kInfo = 3, kServices = 4;

TEST(DefaultPlugin, EchoRepliesWithTheSamePayload) {
  FakeHost host;
  LoadedPlugin plugin(bundled("default"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;
  const std::string payload("bytes\0with\xff nul and high bits", 29);

  EXPECT_EQ(plugin.call_text(kEcho, payload), payload);
  EXPECT_EQ(host.replies.back().status, PRISM_OK);
  ASSERT_EQ(host.counters.size(), 1u);
  EXPECT_EQ(host.counters[0].name, "echo_requests");
  EXPECT_EQ(host.counters[0].value, 1u);
}

// echo:* channels: a join subscribes the connection, "echo" answers the payload, "shout"
// publishes it to the topic as method 5 ("shout"), a leave unsubscribes.
TEST(DefaultPlugin, EchoChannelsJoinEchoShoutAndLeave) {
  FakeHost host;
  host.offer_realtime();
  LoadedPlugin plugin(bundled("default"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;
  ASSERT_NE(plugin.descriptor->channel_topics, nullptr);
  EXPECT_STREQ(plugin.descriptor->channel_topics[0], "echo:*");
  EXPECT_EQ(plugin.descriptor->channel_topics[1], nullptr);

  EXPECT_EQ(plugin.channel(PRISM_CHANNEL_JOIN, "echo:lobby", "phx_join"), PRISM_OK);
  ASSERT_EQ(host.replies.size(), 1u);
  EXPECT_EQ(host.replies[0].status, PRISM_OK);
  EXPECT_EQ(json::parse(host.replies[0].payload)["topic"], "echo:lobby");
  plugin.channel(PRISM_CHANNEL_EVENT, "echo:lobby", "echo", R"({"hi":1})");
  EXPECT_EQ(host.replies.back().payload, R"({"hi":1})");
  plugin.channel(PRISM_CHANNEL_EVENT, "echo:lobby", "shout", R"({"all":true})");
  EXPECT_EQ(host.replies.back().status, PRISM_OK);
  plugin.channel(PRISM_CHANNEL_EVENT, "echo:lobby", "dance");
  EXPECT_EQ(host.replies.back().status, PRISM_NOT_FOUND);
  EXPECT_EQ(host.replies.back().message, "no event dance (echo, shout, tick, socket)");
  plugin.channel(PRISM_CHANNEL_LEAVE, "echo:lobby", "phx_leave");
  EXPECT_EQ(host.replies.back().status, PRISM_OK);
  EXPECT_EQ(host.topic_calls,
            (std::vector<std::string>{"subscribe 7 echo:lobby", R"(publish echo:lobby 5 {"all":true})",
                                      "unsubscribe 7 echo:lobby"}));
  EXPECT_EQ(host.replies_after_answer, 0);
}

TEST(DefaultPlugin, PingRepliesPong) {
  FakeHost host;
  LoadedPlugin plugin(bundled("default"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;
  EXPECT_EQ(json::parse(plugin.call_text(kPing)), json({{"pong", true}}));
}

TEST(DefaultPlugin, TimeRepliesTheServerClock) {
  FakeHost host;
  host.server.now_ms = 1'700'000'000'123;
  LoadedPlugin plugin(bundled("default"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;
  EXPECT_EQ(json::parse(plugin.call_text(kTime)).at("unix_ms"), 1'700'000'000'123u);
}

TEST(DefaultPlugin, InfoListsPluginsFromHost) {
  FakeHost host;
  host.plugins = {{"default", "1.0.0", 100, 199, 42, 3}, {"cplug", "0.2.0", 900, 909, 5, 0}};
  LoadedPlugin plugin(bundled("default"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;

  const json info = json::parse(plugin.call_text(kInfo));
  EXPECT_EQ(info.at("version"), "9.9.9-test");
  EXPECT_EQ(info.at("uptime_ms"), 4'000);
  EXPECT_EQ(info.at("workers"), 4);
  ASSERT_EQ(info.at("plugins").size(), 2u);
  EXPECT_EQ(info["plugins"][0], json({{"name", "default"},
                                      {"version", "1.0.0"},
                                      {"first_packet_id", 100},
                                      {"last_packet_id", 199},
                                      {"requests", 42},
                                      {"errors", 3}}));
  EXPECT_EQ(info["plugins"][1].at("name"), "cplug");
  EXPECT_EQ(info["plugins"][1].at("last_packet_id"), 909);
}

TEST(DefaultPlugin, ServicesListsNamesAndRanges) {
  FakeHost host;
  host.plugins = {{"default", "1.0.0", 100, 199, 42, 3}, {"cplug", "0.2.0", 900, 909, 5, 0}};
  LoadedPlugin plugin(bundled("default"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;

  const json services = json::parse(plugin.call_text(kServices)).at("services");
  ASSERT_EQ(services.size(), 2u);
  EXPECT_EQ(services[1], json({{"name", "cplug"},
                               {"version", "0.2.0"},
                               {"first_packet_id", 900},
                               {"last_packet_id", 909}}));
  EXPECT_FALSE(services[0].contains("requests")) << "services lists identities, not statistics";
}

TEST(Sdk, UnknownMethodRepliesInvalidPacket) {
  FakeHost host;
  LoadedPlugin plugin(bundled("default"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;

  EXPECT_EQ(plugin.call(77), PRISM_OK) << "the SDK replied itself";
  ASSERT_EQ(host.replies.size(), 1u);
  EXPECT_EQ(host.replies[0].status, PRISM_INVALID_PACKET);
  EXPECT_EQ(host.replies[0].message, "unknown method");
}

TEST(Sdk, DescriptorIsBuiltFromTheMethodTable) {
  FakeHost host;
  LoadedPlugin plugin(bundled("default"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;
  const prism_plugin_descriptor_t& d = *plugin.descriptor;

  EXPECT_EQ(d.struct_size, sizeof(prism_plugin_descriptor_t));
  EXPECT_EQ(d.abi_version_major, PRISM_ABI_VERSION_MAJOR);
  EXPECT_STREQ(d.name, "default");
  EXPECT_STREQ(d.version, "1.0.0");
  EXPECT_EQ(d.packet_id_first, 100u);
  EXPECT_EQ(d.packet_id_count, 100u);
  EXPECT_EQ(d.flags, PRISM_PLUGIN_CONCURRENT);
  ASSERT_EQ(d.method_count, 7u);
  EXPECT_STREQ(d.methods[3].name, "info");
  EXPECT_STREQ(d.methods[5].name, "shout");
  EXPECT_STREQ(d.methods[6].name, "tick");
  EXPECT_EQ(d.method_size, sizeof(prism_method_t));
  EXPECT_EQ(d.methods[3].id, kInfo);
  EXPECT_EQ(d.snapshot, nullptr) << "default has no snapshot()";
  EXPECT_EQ(d.restore, nullptr);

  LoadedPlugin versioned(test_plugin("versioned_v1"), host);
  ASSERT_TRUE(versioned.started()) << versioned.init_error;
  EXPECT_EQ(versioned.descriptor->flags, 0u) << "ServiceInfo::concurrent defaults to false";
  EXPECT_NE(versioned.descriptor->snapshot, nullptr);
  EXPECT_NE(versioned.descriptor->restore, nullptr);
}

TEST(Sdk, ThrowingHandlerRepliesInternal) {
  FakeHost host;
  LoadedPlugin plugin(test_plugin("throws"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;

  EXPECT_EQ(plugin.call(0), PRISM_OK) << "the reply was sent, so handle reports OK";
  ASSERT_EQ(host.replies.size(), 1u);
  EXPECT_EQ(host.replies[0].status, PRISM_INTERNAL);
  EXPECT_TRUE(host.logged(PRISM_LOG_ERROR, "boom")) << "the exception's message goes to the log";
  EXPECT_EQ(host.replies[0].message.find("boom"), std::string::npos) << "but not to the client";
}

TEST(Sdk, HandlerThatForgetsToReplyGetsInternal) {
  FakeHost host;
  LoadedPlugin plugin(test_plugin("throws"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;

  EXPECT_EQ(plugin.call(1), PRISM_OK);
  ASSERT_EQ(host.replies.size(), 1u);
  EXPECT_EQ(host.replies[0].status, PRISM_INTERNAL);
  EXPECT_EQ(host.replies[0].message,
            "handler failed without replying (it threw or returned early)");
}

TEST(Sdk, SecondReplyIsIgnoredAndLogged) {
  FakeHost host;
  LoadedPlugin plugin(test_plugin("throws"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;

  EXPECT_EQ(plugin.call(2), PRISM_OK);
  ASSERT_EQ(host.replies.size(), 1u);
  EXPECT_EQ(host.replies[0].payload, "first");
  EXPECT_EQ(host.replies_after_answer, 0) << "the second reply must not reach the host";
  EXPECT_TRUE(host.logged(PRISM_LOG_ERROR, "already answered"));
}

TEST(Sdk, ConstructorExceptionBecomesInitError) {
  FakeHost host;
  LoadedPlugin refused(test_plugin("throws"), host, "refuse");
  ASSERT_NE(refused.descriptor, nullptr);
  EXPECT_EQ(refused.init_status, PRISM_INTERNAL);
  EXPECT_EQ(refused.init_error, "config refused: refuse");
  EXPECT_EQ(refused.instance(), nullptr);

  // A short buffer gets a truncated, terminated message and nothing written past it.
  char buffer[16];
  std::memset(buffer, 'X', sizeof buffer);
  void* instance = nullptr;
  EXPECT_EQ(
      refused.descriptor->init(host.api(), host.handle(), bytes_of("refuse"), &instance, buffer, 8),
      PRISM_INTERNAL);
  EXPECT_STREQ(buffer, "config ");
  EXPECT_EQ(std::string(buffer + 8, 8), "XXXXXXXX");
}

TEST(Sdk, SnapshotRestoreCarriesState) {
  FakeHost host;
  LoadedPlugin v1(test_plugin("versioned_v1"), host);
  LoadedPlugin v2(test_plugin("versioned_v2"), host);
  ASSERT_TRUE(v1.started()) << v1.init_error;
  ASSERT_TRUE(v2.started()) << v2.init_error;
  EXPECT_EQ(v1.call_text(0), "1.0.0");
  EXPECT_EQ(v1.call_text(1), "1");
  EXPECT_EQ(v1.call_text(1), "2");
  EXPECT_EQ(v1.call_text(1), "3");

  prism_bytes_t state{};
  ASSERT_EQ(v1.descriptor->snapshot(v1.instance(), &state), PRISM_OK);
  EXPECT_EQ(text_of(state), "3");
  ASSERT_EQ(v2.descriptor->restore(v2.instance(), state), PRISM_OK);

  EXPECT_EQ(v2.call_text(0), "2.0.0");
  EXPECT_EQ(v2.call_text(1), "4") << "v2 continues from v1's count";

  EXPECT_EQ(v2.descriptor->restore(v2.instance(), bytes_of("not a number")), PRISM_INTERNAL)
      << "restore's exception becomes a status";
  EXPECT_TRUE(host.logged(PRISM_LOG_ERROR, "restore threw"));
}

TEST(Sdk, HostTableOfAnOlderMinorIsReadOnlyUpToItsSize) {
  FakeHost host;
  host.plugins = {{"default", "1.0.0", 100, 199, 1, 0}};
  // A host whose table ends before server_info: the SDK must not read past struct_size.
  host.api_mutable().struct_size = offsetof(prism_host_api_t, server_info);
  LoadedPlugin plugin(bundled("default"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;

  EXPECT_EQ(json::parse(plugin.call_text(kTime)).at("unix_ms"), 0);
  EXPECT_TRUE(json::parse(plugin.call_text(kServices)).at("services").empty());
  EXPECT_EQ(host.server_info_calls, 0);
}

// ---- coroutine handlers and storage (ABI 1.1) -------------------------------------------

// doc_get calls the fake host received and has not completed yet.
struct PendingGet {
  std::string collection, key;
  prism_store_done_fn done;
  void* user;
};
std::vector<PendingGet> g_pending_gets;

void fake_doc_get(prism_host_t*, prism_bytes_t collection, prism_bytes_t key,
                  prism_store_done_fn done, void* user) {
  g_pending_gets.push_back({text_of(collection), text_of(key), done, user});
}

void complete_get(const PendingGet& get, prism_status_t status, const char* message,
                  std::string value, uint64_t version) {
  prism_document_t doc{bytes_of(get.collection), bytes_of(get.key), bytes_of(value), version};
  prism_store_result_t result{};
  result.struct_size = sizeof result;
  result.status = status;
  result.message = message;
  result.documents = status == PRISM_OK ? &doc : nullptr;
  result.document_count = status == PRISM_OK ? 1 : 0;
  get.done(get.user, &result);
}

// A host of ABI 1.1 whose storage completes only when the test says so.
void offer_storage(FakeHost& host) {
  host.api_mutable().struct_size = sizeof(prism_host_api_t);
  host.api_mutable().abi_version_minor = PRISM_ABI_VERSION_MINOR;
  host.api_mutable().doc_get = &fake_doc_get;
  g_pending_gets.clear();
}

TEST(SdkStorage, CoroutineHandlerResumesWhenTheStorageCallCompletes) {
  FakeHost host;
  offer_storage(host);
  LoadedPlugin plugin(test_plugin("store_user"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;
  EXPECT_EQ(plugin.call_async(0, "alice"), PRISM_OK);
  EXPECT_TRUE(host.replies.empty());  // suspended on the storage call
  ASSERT_EQ(g_pending_gets.size(), 1u);
  EXPECT_EQ(g_pending_gets[0].collection, "things");
  EXPECT_EQ(g_pending_gets[0].key, "alice");
  EXPECT_EQ(plugin.call_async(0, "bob"), PRISM_OK);  // a second one in flight at once
  complete_get(g_pending_gets[1], PRISM_NOT_FOUND, "no such thing", "", 0);
  complete_get(g_pending_gets[0], PRISM_OK, "", "gold", 3);
  ASSERT_EQ(host.replies.size(), 2u);
  EXPECT_EQ(host.replies[0].status, PRISM_NOT_FOUND);
  EXPECT_EQ(host.replies[0].message, "no such thing");
  // The payload was copied into the frame: it outlived the host's buffer.
  EXPECT_EQ(host.replies[1].status, PRISM_OK);
  EXPECT_EQ(host.replies[1].payload, "alice=gold@3");
}

// An ABI 1.1 host's table ends after store_apply, before the 1.2 entries: a plugin built
// against this header must still find its storage (the wrapper once compared the whole
// table's size and saw none).
TEST(SdkStorage, AnAbi11HostsStorageIsFoundByAPluginBuiltForANewerMinor) {
  FakeHost host;
  offer_storage(host);
  host.api_mutable().struct_size = offsetof(prism_host_api_t, push);
  host.api_mutable().abi_version_minor = 1;
  LoadedPlugin plugin(test_plugin("store_user"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;
  EXPECT_EQ(plugin.call_async(0, "alice"), PRISM_OK);
  ASSERT_EQ(g_pending_gets.size(), 1u) << "the storage call never reached the host";
  complete_get(g_pending_gets[0], PRISM_OK, "", "gold", 3);
  ASSERT_EQ(host.replies.size(), 1u);
  EXPECT_EQ(host.replies[0].payload, "alice=gold@3");
}

// ABI 1.2: the SDK steps through a result's arrays by the sizes the host gives, so a
// host whose entries grew is still read right.
TEST(SdkStorage, ResultArraysAreReadByTheHostsElementSize) {
  struct WideEntry {
    prism_entry_t entry;
    uint64_t later[3];
  };
  const std::string a = "alice", b = "bob";
  WideEntry entries[2] = {};
  entries[0].entry.owner = {reinterpret_cast<const uint8_t*>(a.data()), a.size()};
  entries[0].entry.rank = 1;
  entries[1].entry.owner = {reinterpret_cast<const uint8_t*>(b.data()), b.size()};
  entries[1].entry.rank = 2;
  prism_store_result_t r{};
  r.struct_size = sizeof r;
  r.message = "";
  r.entries = &entries[0].entry;
  r.entry_count = 2;
  r.entry_size = sizeof(WideEntry);
  const auto out = prism::sdk::detail::copy_result(r);
  ASSERT_EQ(out.entries.size(), 2u);
  EXPECT_EQ(out.entries[1].owner, "bob");
  EXPECT_EQ(out.entries[1].rank, 2u);
}

TEST(SdkStorage, ExceptionAfterAnAwaitStillAnswersInternal) {
  FakeHost host;
  offer_storage(host);
  LoadedPlugin plugin(test_plugin("store_user"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;
  EXPECT_EQ(plugin.call_async(1, "x"), PRISM_OK);
  ASSERT_EQ(g_pending_gets.size(), 1u);
  complete_get(g_pending_gets[0], PRISM_OK, "", "v", 1);  // resumes, then throws
  ASSERT_EQ(host.replies.size(), 1u);
  EXPECT_EQ(host.replies[0].status, PRISM_INTERNAL);
  EXPECT_EQ(host.replies_after_answer, 0);
}

TEST(SdkStorage, AnOlderHostWithoutStorageAnswersUnavailable) {
  FakeHost host;  // ABI 1.0: the table ends before doc_get
  LoadedPlugin plugin(test_plugin("store_user"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;
  EXPECT_EQ(plugin.call_async(0, "alice"), PRISM_OK);
  ASSERT_EQ(host.replies.size(), 1u);
  EXPECT_EQ(host.replies[0].status, PRISM_UNAVAILABLE);
  EXPECT_NE(host.replies[0].message.find("ABI 1.1"), std::string::npos) << host.replies[0].message;
}

TEST(CPlugin, CPluginCompiledAsC11Answers) {
  FakeHost host;
  LoadedPlugin plugin(test_plugin("c_plugin"), host);
  ASSERT_TRUE(plugin.started()) << plugin.init_error;
  EXPECT_STREQ(plugin.descriptor->name, "cplug");
  EXPECT_EQ(plugin.descriptor->packet_id_first, 900u);

  EXPECT_EQ(plugin.call_text(0), "hello from C");
  EXPECT_EQ(host.replies.back().status, PRISM_OK);

  EXPECT_EQ(plugin.call(1), PRISM_NOT_FOUND)
      << "a status from handle means the plugin did not reply";
  EXPECT_EQ(host.replies.size(), 1u);
}

// The loader tests rely on these fixtures being broken in exactly one way each.
TEST(LoaderFixtures, EachTestPluginIsBrokenAsItsNameSays) {
  FakeHost host;
  LoadedPlugin wrong_abi(test_plugin("wrong_abi"), host);
  ASSERT_NE(wrong_abi.descriptor, nullptr);
  EXPECT_EQ(wrong_abi.descriptor->abi_version_major, PRISM_ABI_VERSION_MAJOR + 1);

  LoadedPlugin overlap(test_plugin("overlap"), host);
  ASSERT_NE(overlap.descriptor, nullptr);
  EXPECT_EQ(overlap.descriptor->packet_id_first, 150u);
  EXPECT_EQ(overlap.descriptor->packet_id_count, 10u);

  LoadedPlugin no_entry(test_plugin("no_entry"), host);
  EXPECT_NE(no_entry.symbol("prism_not_a_plugin"), nullptr) << "the file itself loads";
  EXPECT_EQ(no_entry.descriptor, nullptr);

  LoadedPlugin init_fails(test_plugin("init_fails"), host);
  ASSERT_NE(init_fails.descriptor, nullptr);
  EXPECT_EQ(init_fails.init_status, PRISM_INTERNAL);
  EXPECT_EQ(init_fails.init_error, "database unreachable");
}

}  // namespace
