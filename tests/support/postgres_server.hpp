// A throwaway PostgreSQL server for tests: initdb into a fresh temp dir, postgres on
// 127.0.0.1 and a free port (fsync on), stop/restart for connection-loss and durability
// tests, everything removed on destruction. Never touches a system instance. As root
// (CI), the server runs as an unprivileged user, since postgres refuses to run as root.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace prism::testing {

class PostgresServer {
 public:
  // Starts a server, or returns null with `why` set: binaries missing (skip the test) or
  // a failure to start (the log tail is in `why`).
  static std::unique_ptr<PostgresServer> start(std::string* why);
  // The server directory of this build's PostgreSQL, or empty when none is installed.
  static std::filesystem::path find_bindir();

  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  uint16_t port() const { return port_; }
  // A libpq connection string for `database` as the superuser "prism".
  std::string conninfo(const std::string& database = "postgres") const;
  // A new empty database, named uniquely for this server. Throws on failure.
  std::string create_database();

  // Stops the server: fast (clean shutdown, like pg_ctl -m fast) or immediate (no
  // checkpoint, like a crash: the next start replays the WAL). Waits for it to exit.
  void stop(bool immediate = false);
  // Starts it again on the same port and data directory; false (with `why`) on failure.
  bool restart(std::string* why = nullptr);
  bool running() const { return pid_ > 0; }

 private:
  PostgresServer() = default;
  bool make_data_dir(std::string* why);
  bool launch(std::string* why);

  std::filesystem::path bindir_;
  std::filesystem::path dir_;  // owns data/, the socket and the log
  uid_t uid_ = 0;              // who runs postgres (ourselves unless we are root)
  gid_t gid_ = 0;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  int databases_ = 0;
};

}  // namespace prism::testing
