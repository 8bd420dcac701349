// One asynchronous connection to Redis on its own thread: a uv_loop with hiredis attached
// through its libuv adapter, a queue that any thread may push commands into, a Lua script
// loaded on every (re)connect (a function library where Redis has functions, EVALSHA
// otherwise), reconnection with exponential backoff, and timeouts that turn a silent server
// into a lost connection. Completions run on the connection's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct redisReply;  // hiredis

namespace prism::store {

struct RedisOptions {
  std::string key_prefix = "prism:";  // every key the backend writes starts with it
  std::string password;               // AUTH when not empty
  int database = 0;                   // SELECT when not 0
  std::chrono::milliseconds connect_timeout{2000};
  // A command unanswered for this long closes the connection (its calls fail kUnavailable).
  std::chrono::milliseconds command_timeout{5000};
  std::chrono::milliseconds reconnect_min{100};  // first backoff, doubled per failure
  std::chrono::milliseconds reconnect_max{3000};
};

// The text of a string, status or error reply; empty for any other reply or none.
std::string_view reply_text(const redisReply* reply);

class RedisConnection {
 public:
  // Called exactly once on the connection's thread: with the reply, or with nullptr when
  // the command could not be answered (not connected, connection lost, shutting down).
  // The reply is valid only during the call.
  using ReplyHandler = std::function<void(const redisReply* reply)>;

  // Starts the thread and the first connection attempt; never blocks on the network.
  // `script` is a Lua body that defines `local function main(args)`, whose result is the
  // reply to eval(args), and reads neither ARGV nor KEYS: Redis 7 runs it as a function
  // library (its top level once per server), older servers as EVALSHA of the body followed
  // by `return main(ARGV)`.
  RedisConnection(std::string host, uint16_t port, RedisOptions options, std::string script);
  // Fails whatever is still queued or in flight (nullptr replies), then joins the thread.
  // Must not be called from the connection's own thread (i.e. from a handler).
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // The script's main(args): FCALL of its function, or EVALSHA (EVAL when Redis lost it).
  // While a connection attempt is under way the command waits for it; while disconnected
  // it fails at once.
  void eval(std::vector<std::string> args, ReplyHandler handler);
  // Any other command, e.g. {"INCRBY", key, "5"}.
  void command(std::vector<std::string> argv, ReplyHandler handler);
  // Runs `task` on the connection's thread (or in the destructor if it is stopping).
  void post(std::function<void()> task);

  // Subscriber mode, for a connection used for nothing else (Redis allows only
  // (UN)SUBSCRIBE on it then): what is published to a subscribed channel reaches
  // `handler` on the connection's thread; the channels are subscribed again after every
  // reconnect, so a message published while disconnected is lost, not one after.
  using MessageHandler = std::function<void(std::string_view channel, std::string_view message)>;
  void set_message_handler(MessageHandler handler);  // before the first subscribe
  // Redis confirmed a SUBSCRIBE (`channel`): from then on every PUBLISH it processes to
  // that channel reaches the message handler. Called with "" when the connection is lost
  // (every confirmation is void until the channels are subscribed again).
  using SubscribedHandler = std::function<void(std::string_view channel)>;
  void set_subscribed_handler(SubscribedHandler handler);  // before the first subscribe
  void subscribe(std::string channel);
  void unsubscribe(std::string channel);

  bool connected() const;  // connected, authenticated and the script loaded
  const RedisOptions& options() const;
  std::string endpoint() const;  // "host:port", for messages

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace prism::store
