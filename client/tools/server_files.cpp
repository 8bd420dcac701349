// Finding a server's key and admin token for the command-line tools (server_files.hpp).
#include "server_files.hpp"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>

#include "net/crypto/key_file.hpp"

namespace prism::tools {

Expected<std::string> read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return make_error(path.string() + ": cannot read");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

Expected<std::string> read_secret(const std::string& source, const char* env_name) {
  if (source == "-") {
    std::string line;
    if (!std::getline(std::cin, line)) return make_error("nothing on standard input");
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    return line;
  }
  if (!source.empty()) return read_text(source);
  const char* env = env_name != nullptr ? std::getenv(env_name) : nullptr;
  return std::string(env != nullptr ? env : "");
}

ServerFiles files_of(const config::Config& config) {
  ServerFiles files;
  const std::filesystem::path state(config.state_dir);
  files.public_key = config.key_file.empty()
                         ? state / net::crypto::kServerPublicKeyFile
                         : std::filesystem::path(config.key_file).replace_extension(".pub");
  files.admin_token = config.admin_token_file.empty() ? state / "admin.token"
                                                       : std::filesystem::path(config.admin_token_file);
  return files;
}

Expected<ServerFiles> locate_server_files(const std::string& config_path) {
  auto from_config = [](const std::filesystem::path& path) -> Expected<ServerFiles> {
    auto config = config::load_file(path);
    if (!config) return config.failure();
    return files_of(*config);
  };
  if (!config_path.empty()) return from_config(config_path);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::string tried;
  if (!ec) {
    const auto dev = exe.parent_path() / "state";
    if (std::filesystem::exists(dev / net::crypto::kServerPublicKeyFile)) {
      return ServerFiles{dev / net::crypto::kServerPublicKeyFile, dev / "admin.token"};
    }
    tried = (dev / net::crypto::kServerPublicKeyFile).string() + ", ";
  }
  const std::filesystem::path system_config = "/etc/prism/prism.yaml";
  if (std::filesystem::exists(system_config)) return from_config(system_config);
  return make_error(
      "no server key: pass --server-key prism1:... (prismd logs it at start as "
      "event=server_key) or --config with the server's prism.yaml; looked in " + tried +
      system_config.string());
}

Expected<client::ServerKey> find_server_key(const std::string& key_option,
                                            const std::string& config_path) {
  if (!key_option.empty()) return client::read_server_key(key_option);
  if (const char* env = std::getenv("PRISM_SERVER_KEY"); env != nullptr && *env != '\0') {
    return client::read_server_key(env);
  }
  auto files = locate_server_files(config_path);
  if (!files) return files.failure();
  return client::read_server_key(files->public_key.string());
}

}  // namespace prism::tools
