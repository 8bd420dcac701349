// The throwaway redis-server for tests: spawn, wait for PING, stop/kill, restart.
#include "support/redis_server.hpp"

#include "support/free_port.hpp"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace prism::testing {
namespace {

std::string reply_text(const redisReply* reply) {
  if (reply == nullptr) return "ERROR: no reply";
  switch (reply->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      return std::string(reply->str, reply->len);
    case REDIS_REPLY_ERROR:
      return "ERROR: " + std::string(reply->str, reply->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(reply->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::string out;
      for (size_t i = 0; i < reply->elements; ++i) {
        if (i > 0) out += ' ';
        out += reply_text(reply->element[i]);
      }
      return out;
    }
    default:
      return "ERROR: unknown reply type";
  }
}

}  // namespace

std::string RedisServer::binary() {
  const char* path = getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::filesystem::path candidate = std::filesystem::path(dir) / "redis-server";
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

RedisServer::RedisServer(std::vector<std::string> options) : options_(std::move(options)) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "prism-redis-XXXXXX").string();
  if (mkdtemp(pattern.data()) != nullptr) dir_ = pattern;
}

RedisServer::~RedisServer() {
  if (pid_ > 0) signal_and_wait(SIGKILL);
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string RedisServer::start() {
  if (pid_ > 0) return "redis-server is already running";
  if (dir_.empty()) return "could not create a temp dir for redis-server";
  if (binary().empty()) return "redis-server is not installed (not found on PATH)";
  if (port_ != 0) return launch(port_);  // a restart keeps its port, clients reconnect to it
  std::string error;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const uint16_t port = free_port();
    if (port == 0) return "could not find a free loopback port";
    error = launch(port);
    if (error.empty()) {
      port_ = port;
      return "";
    }
  }
  return error;
}

std::string RedisServer::launch(uint16_t port) {
  const std::string port_text = std::to_string(port);
  const std::string log_path = (dir_ / "redis.log").string();
  std::vector<std::string> args = {binary(),       "--port",        port_text,
                                   "--bind",       host_,           "--dir",
                                   dir_.string(),  "--save",        "",
                                   "--appendonly", "yes",           "--appendfsync",
                                   "always",       "--daemonize",   "no",
                                   "--logfile",    log_path,        "--protected-mode",
                                   "no"};
  args.insert(args.end(), options_.begin(), options_.end());
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
    return "could not spawn redis-server: " + std::string(strerror(errno));
  }
  pid_ = pid;
  port_ = port;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream log(log_path);
      std::stringstream text;
      text << log.rdbuf();
      return "redis-server on port " + port_text + " exited at start-up: " + text.str();
    }
    if (answers_ping()) return "";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // poll, bounded by deadline
  }
  signal_and_wait(SIGKILL);
  return "redis-server on port " + port_text + " did not answer PING within 15 s";
}

bool RedisServer::answers_ping() const {
  const timeval timeout{1, 0};
  redisContext* context = redisConnectWithTimeout(host_.c_str(), port_, timeout);
  if (context == nullptr) return false;
  bool ok = false;
  if (context->err == 0) {
    auto* reply = static_cast<redisReply*>(redisCommand(context, "PING"));
    ok = reply != nullptr && reply->type == REDIS_REPLY_STATUS &&
         std::string_view(reply->str, reply->len) == "PONG";
    if (reply != nullptr) freeReplyObject(reply);
  }
  redisFree(context);
  return ok;
}

std::string RedisServer::command(const std::string& line) const {
  std::vector<std::string> words;
  std::stringstream in(line);
  std::string word;
  while (in >> word) words.push_back(word);
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& w : words) {
    argv.push_back(w.data());
    lens.push_back(w.size());
  }
  const timeval timeout{5, 0};
  redisContext* context = redisConnectWithTimeout(host_.c_str(), port_, timeout);
  if (context == nullptr) return "ERROR: out of memory";
  std::string out;
  if (context->err != 0) {
    out = "ERROR: " + std::string(context->errstr);
  } else {
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lens.data()));
    out = reply_text(reply);
    if (reply != nullptr) freeReplyObject(reply);
  }
  redisFree(context);
  return out;
}

void RedisServer::stop() {
  if (pid_ > 0) signal_and_wait(SIGTERM);
}

void RedisServer::kill() {
  if (pid_ > 0) signal_and_wait(SIGKILL);
}

void RedisServer::pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void RedisServer::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

void RedisServer::signal_and_wait(int sig) {
  if (sig == SIGKILL || sig == SIGTERM) ::kill(pid_, SIGCONT);  // a paused server must die too
  ::kill(pid_, sig);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace prism::testing
