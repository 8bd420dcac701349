// Process plumbing for the integration tests: fork/exec, log capture, exit status.
#include "prismd_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>

#include "net/crypto/key_file.hpp"

namespace prism::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

pid_t spawn(const std::vector<std::string>& argv, int out_fd) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, STDOUT_FILENO);
    dup2(out_fd, STDERR_FILENO);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

PrismdProcess::PrismdProcess(const PrismdOptions& options) {
  char tmpl[] = "/tmp/prismd-test-XXXXXX";
  dir_ = mkdtemp(tmpl);
  const fs::path config = dir_ / "prism.yaml";
  state_dir_ = options.state_dir.empty() ? dir_ / "state" : options.state_dir;
  key_file_ = options.key_file;
  const fs::path plugins_d = dir_ / "plugins.d";
  fs::create_directories(plugins_d);
  for (const auto& [name, yaml] : options.plugin_configs) {
    std::ofstream(plugins_d / (name + ".yaml")) << yaml;
  }
  std::ofstream(config) << "server:\n  udp: 127.0.0.1:" << options.port
                        << "\n  workers: " << options.workers
                        << "\n  request_timeout_ms: " << options.request_timeout_ms << "\n"
                        << (options.key_file.empty() ? "" : "  key_file: " + options.key_file.string() + "\n")
                        << options.server_yaml
                        << "plugins:\n  config_dir: " << plugins_d.string() << "\n"
                        << "state_dir: " << state_dir_.string() << "\n"
                        << "log:\n  level: info\n"
                        << options.extra_yaml;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  pid_ = spawn({std::string(PRISM_BINARY_DIR) + "/prismd", "--config", config.string(),
                "--plugins-dir", options.plugins_dir.string()},
               fds[1]);
  close(fds[1]);
  log_fd_ = fds[0];
  constexpr std::string_view kListening = "event=listening udp=127.0.0.1:";
  if (wait_for_log(kListening)) {
    port_ = static_cast<uint16_t>(std::stoi(log_.substr(log_.find(kListening) + kListening.size())));
  }
}

uint16_t PrismdProcess::http_port() {
  constexpr std::string_view kLine = "event=ws_listening http=";
  if (!wait_for_log(kLine)) return 0;
  const size_t at = log_.find(kLine) + kLine.size();
  const size_t colon = log_.rfind(':', log_.find(' ', at));
  return static_cast<uint16_t>(std::stoi(log_.substr(colon + 1)));
}

std::string PrismdProcess::server_key_text() const {
  std::ifstream in(key_file_.empty() ? state_dir_ / "server.pub"
                                     : fs::path(key_file_).replace_extension(".pub"));
  std::string text;
  std::getline(in, text);
  return text;
}

std::string PrismdProcess::admin_token() const {
  std::ifstream in(state_dir_ / "admin.token");
  std::string text;
  std::getline(in, text);
  return text;
}

std::array<uint8_t, 32> PrismdProcess::server_key() const {
  auto key = net::crypto::decode_public_key(server_key_text());
  if (!key) throw std::runtime_error("server key: " + key.error());
  return *key;
}

PrismdProcess::~PrismdProcess() {
  if (pid_ > 0) stop(SIGKILL);
  if (log_fd_ >= 0) close(log_fd_);
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

bool PrismdProcess::read_some(std::chrono::milliseconds wait) {
  if (log_fd_ < 0) return false;
  pollfd p{log_fd_, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(wait.count())) <= 0) return true;
  char buf[4096];
  const ssize_t n = read(log_fd_, buf, sizeof buf);
  if (n <= 0) {
    close(log_fd_);
    log_fd_ = -1;
    return false;
  }
  log_.append(buf, static_cast<size_t>(n));
  return true;
}

bool PrismdProcess::wait_for_log(std::string_view needle, std::chrono::milliseconds limit,
                                 size_t times) {
  const auto found = [&] {
    size_t count = 0;
    for (size_t at = log_.find(needle); at != std::string::npos; at = log_.find(needle, at + 1)) {
      if (++count == times) return true;
    }
    return false;
  };
  const auto end = Clock::now() + limit;
  while (!found()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    if (left.count() <= 0 || !read_some(std::min(left, std::chrono::milliseconds(200)))) {
      return found();
    }
  }
  return true;
}

int PrismdProcess::stop(int signal) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  // Drain the log until the process closes it, so the last lines are kept.
  while (read_some(std::chrono::milliseconds(200))) {
  }
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return exit_status(status);
}

CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds limit) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {};
  const pid_t pid = spawn(argv, fds[1]);
  close(fds[1]);
  CommandResult result;
  const auto end = Clock::now() + limit;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    if (left.count() <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    result.output.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = exit_status(status);
  return result;
}

}  // namespace prism::testing
