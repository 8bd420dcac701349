// A throwaway redis-server for tests: its own temp dir and a free loopback port, append-only
// file fsync'd on every write, stopped or killed and restarted on the same port and data
// for connection-loss and durability tests. Never touches a system instance.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace prism::testing {

class RedisServer {
 public:
  // Absolute path of redis-server on PATH, or "" when it is not installed.
  static std::string binary();

  // Creates the temp dir; start() launches the server, with `options` added to its
  // command line (e.g. {"--rename-command", "FUNCTION", ""} for a server without functions).
  explicit RedisServer(std::vector<std::string> options = {});
  ~RedisServer();  // kills the server and removes the dir
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts the server on a free port (the same port again after stop()/kill()) and waits
  // until it answers PING. Returns "" on success or what went wrong.
  std::string start();
  std::string restart() { return start(); }
  void stop();  // SIGTERM and wait: a clean shutdown
  void kill();  // SIGKILL and wait: a crash, only what was fsync'd survives
  void pause();   // SIGSTOP: connections stay open but nothing is answered
  void resume();  // SIGCONT
  bool running() const { return pid_ > 0; }

  // Runs one command through a synchronous connection; returns the reply as text
  // (or "ERROR: ..."). For test set-up such as FLUSHALL.
  std::string command(const std::string& line) const;

  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::string launch(uint16_t port);
  bool answers_ping() const;
  void signal_and_wait(int sig);

  std::string host_ = "127.0.0.1";
  uint16_t port_ = 0;
  std::filesystem::path dir_;
  std::vector<std::string> options_;
  pid_t pid_ = -1;
};

}  // namespace prism::testing
