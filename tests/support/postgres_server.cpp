// A throwaway PostgreSQL server for tests (see the header).
#include "support/postgres_server.hpp"

#include "support/free_port.hpp"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace prism::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kTestUser = "prism-pgtest";

bool has_server_binaries(const fs::path& dir) {
  return access((dir / "initdb").c_str(), X_OK) == 0 && access((dir / "postgres").c_str(), X_OK) == 0;
}

// Who runs postgres when we are root: a dedicated system user, created if missing, or
// `nobody` where no user can be created.
bool unprivileged_user(uid_t* uid, gid_t* gid) {
  const passwd* pw = getpwnam(kTestUser);
  if (pw == nullptr) {
    // Two test processes may race here; whoever loses finds the user on the re-check.
    const int rc = std::system(
        "useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "
        "prism-pgtest >/dev/null 2>&1");
    (void)rc;
    pw = getpwnam(kTestUser);
  }
  if (pw == nullptr) pw = getpwnam("nobody");
  if (pw == nullptr) return false;
  *uid = pw->pw_uid;
  *gid = pw->pw_gid;
  return true;
}

std::string tail_of(const fs::path& file, size_t max = 2000) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  return text.size() > max ? text.substr(text.size() - max) : text;
}

// fork + exec `argv` with stdout/stderr appended to `log`, as uid/gid when we are root.
// Everything the child needs is prepared before fork (the parent may have threads).
pid_t spawn(const std::vector<std::string>& args, const fs::path& log, uid_t uid, gid_t gid) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  static char lc_all[] = "LC_ALL=C";
  static char path[] = "PATH=/usr/bin:/bin";
  char* envp[] = {lc_all, path, nullptr};
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return -1;
  const bool root = geteuid() == 0;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    const int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    if (root && (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) _exit(126);
    // Set after setuid, which clears it: a crashed test leaves no server behind.
    prctl(PR_SET_PDEATHSIG, SIGQUIT);
    if (getppid() != parent) _exit(125);
    execve(argv[0], argv.data(), envp);
    _exit(127);
  }
  close(log_fd);
  return pid;
}

bool ping(const std::string& conninfo) { return PQping(conninfo.c_str()) == PQPING_OK; }

bool run_to_completion(const std::vector<std::string>& args, const fs::path& log, uid_t uid,
                       gid_t gid) {
  const pid_t pid = spawn(args, log, uid, gid);
  int status = 0;
  return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
}

// initdb into `data`. -N: initdb skips its own fsync; the server runs with fsync on.
bool initdb(const fs::path& bindir, const fs::path& data, const fs::path& log, uid_t uid,
            gid_t gid) {
  return run_to_completion({(bindir / "initdb").string(), "-D", data.string(), "-U", "prism",
                            "--auth=trust", "-E", "UTF8", "--locale=C", "-N"},
                           log, uid, gid);
}

}  // namespace

fs::path PostgresServer::find_bindir() {
  if (const char* env = std::getenv("PRISM_PG_BINDIR"); env != nullptr && *env != '\0') {
    return has_server_binaries(env) ? fs::path(env) : fs::path();
  }
  fs::path best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const fs::path bin = entry.path() / "bin";
    const int version = std::atoi(entry.path().filename().c_str());
    if (version > best_version && has_server_binaries(bin)) {
      best = bin;
      best_version = version;
    }
  }
  if (!best.empty()) return best;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::stringstream dirs(path);
    for (std::string dir; std::getline(dirs, dir, ':');) {
      if (!dir.empty() && has_server_binaries(dir)) return dir;
    }
  }
  return {};
}

std::unique_ptr<PostgresServer> PostgresServer::start(std::string* why) {
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  server->bindir_ = find_bindir();
  if (server->bindir_.empty()) {
    *why = "PostgreSQL server binaries (initdb, postgres) not found; install postgresql or set "
           "PRISM_PG_BINDIR";
    return nullptr;
  }
  server->uid_ = geteuid();
  server->gid_ = getegid();
  if (geteuid() == 0 && !unprivileged_user(&server->uid_, &server->gid_)) {
    *why = "running as root and no unprivileged user to run postgres as";
    return nullptr;
  }
  // As root, /tmp: the unprivileged user must be able to reach the directory.
  const fs::path base = geteuid() == 0 ? fs::path("/tmp") : fs::temp_directory_path();
  std::string pattern = (base / "prism-pg-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    *why = "mkdtemp failed: " + std::string(std::strerror(errno));
    return nullptr;
  }
  server->dir_ = pattern;
  if (geteuid() == 0 && chown(server->dir_.c_str(), server->uid_, server->gid_) != 0) {
    *why = "chown " + server->dir_.string() + " failed: " + std::strerror(errno);
    return nullptr;
  }
  if (!server->make_data_dir(why)) return nullptr;
  // A free port can be taken between probing and binding; try a few.
  for (int attempt = 0; attempt < 5; ++attempt) {
    server->port_ = free_port();
    if (server->launch(why)) return server;
  }
  return nullptr;
}

bool PostgresServer::launch(std::string* why) {
  const fs::path log = dir_ / "postgres.log";
  pid_ = spawn({(bindir_ / "postgres").string(), "-D", (dir_ / "data").string(), "-p",
                std::to_string(port_), "-k", dir_.string(), "-h", "127.0.0.1", "-c", "fsync=on",
                "-c", "synchronous_commit=on", "-c", "full_page_writes=on"},
               log, uid_, gid_);
  if (pid_ < 0) {
    if (why != nullptr) *why = "fork failed";
    return false;
  }
  const std::string probe = conninfo() + " connect_timeout=2";
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    if (ping(probe)) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (why != nullptr) *why = "postgres exited while starting: " + tail_of(log);
      return false;
    }
    // Polling interval, not a wait for something: the deadline above bounds the loop.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (why != nullptr) *why = "postgres did not accept connections within 60s: " + tail_of(log);
  stop(true);
  return false;
}

bool PostgresServer::make_data_dir(std::string* why) {
  const fs::path log = dir_ / "initdb.log";
  if (initdb(bindir_, dir_ / "data", log, uid_, gid_)) return true;
  *why = "initdb failed: " + tail_of(log);
  return false;
}

PostgresServer::~PostgresServer() {
  if (running()) stop(true);
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

std::string PostgresServer::conninfo(const std::string& database) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=prism dbname=" + database;
}

std::string PostgresServer::create_database() {
  const std::string name = "prism_test_" + std::to_string(++databases_);
  PGconn* conn = PQconnectdb(conninfo().c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* r = PQexec(conn, ("CREATE DATABASE " + name).c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) error = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(conn);
  if (!error.empty()) throw std::runtime_error("CREATE DATABASE " + name + ": " + error);
  return name;
}

void PostgresServer::stop(bool immediate) {
  if (!running()) return;
  // SIGINT = pg_ctl -m fast, SIGQUIT = pg_ctl -m immediate.
  kill(pid_, immediate ? SIGQUIT : SIGINT);
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
}

bool PostgresServer::restart(std::string* why) {
  if (running()) return true;
  return launch(why);
}

}  // namespace prism::testing
