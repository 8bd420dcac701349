// Runs a real prismd for integration tests: a temporary config on a free loopback
// port, its log captured, readiness awaited on the "event=listening" line (no sleeps).
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace prism::testing {

struct PrismdOptions {
  std::filesystem::path plugins_dir = PRISM_PLUGIN_DIR;
  unsigned workers = 2;
  uint16_t port = 0;  // 0 = a free port
  unsigned request_timeout_ms = 2000;
  std::filesystem::path state_dir;  // empty = a fresh one inside the process's temp dir
  std::filesystem::path key_file;  // server.key_file; empty = <state_dir>/server.key
  std::string extra_yaml;  // appended to the generated config
  std::string server_yaml;  // more keys of the server section, each line indented two spaces
  // Files of plugins.config_dir (a fresh one inside the process's temp dir): name → YAML.
  std::map<std::string, std::string> plugin_configs;
};

class PrismdProcess {
 public:
  explicit PrismdProcess(const PrismdOptions& options = {});
  ~PrismdProcess();
  PrismdProcess(const PrismdProcess&) = delete;
  PrismdProcess& operator=(const PrismdProcess&) = delete;

  // True once prismd printed its listening line; port() is then valid.
  bool ready() const { return port_ != 0; }
  // The port of ws.listen, read from event=ws_listening (0 if that line never came).
  uint16_t http_port();
  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& log() const { return log_; }
  const std::filesystem::path& dir() const { return dir_; }
  // The generated config (prismctl --config finds the server key through it).
  std::filesystem::path config_path() const { return dir_ / "prism.yaml"; }
  // The server's public key, "prism1:<hex>", as written to its state dir on start.
  std::string server_key_text() const;
  std::array<uint8_t, 32> server_key() const;
  // The admin token prismd created in its state dir on start.
  std::string admin_token() const;

  // Reads the log until it contains `needle` `times` times, or the process exits, or
  // `limit` passes. (A count, where two versions of a plugin log the same line.)
  bool wait_for_log(std::string_view needle,
                    std::chrono::milliseconds limit = std::chrono::seconds(10), size_t times = 1);
  // Sends `signal`, waits for exit, returns the exit status (or 128 + signal).
  int stop(int signal = 15);

 private:
  bool read_some(std::chrono::milliseconds wait);

  std::filesystem::path dir_;
  std::filesystem::path state_dir_;
  std::filesystem::path key_file_;
  pid_t pid_ = -1;
  int log_fd_ = -1;
  uint16_t port_ = 0;
  std::string log_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs argv to completion (bounded by `limit`), capturing its output.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds limit = std::chrono::seconds(20));

}  // namespace prism::testing
