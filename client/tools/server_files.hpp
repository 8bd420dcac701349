// How the command-line tools (prismctl, practice-demo) find a server's public key and
// admin token on this machine (docs/operations.md §5): --server-key, $PRISM_SERVER_KEY,
// --config, build/state beside the binary (what `make run` uses), /etc/prism/prism.yaml.
#pragma once

#include <filesystem>
#include <string>

#include "prism/expected.hpp"
#include "config/config.hpp"
#include "prism/client.hpp"

namespace prism::tools {

struct ServerFiles {
  std::filesystem::path public_key;   // server.pub beside server.key
  std::filesystem::path admin_token;  // admin.token_file, or <state_dir>/admin.token
};

// A text file without its trailing white space.
Expected<std::string> read_text(const std::filesystem::path& path);

// A secret that must not sit in argv, where any local user reads it (ps,
// /proc/PID/cmdline): the file `source` (as read_text), a line of standard input for "-",
// else $`env_name` (when not null); empty when none is given.
Expected<std::string> read_secret(const std::string& source, const char* env_name);

// The files a config points at.
ServerFiles files_of(const config::Config& config);

// The server's files through `config_path`, else build/state beside this binary, else
// /etc/prism/prism.yaml; the error says where it looked.
Expected<ServerFiles> locate_server_files(const std::string& config_path);

// `key_option` (--server-key) when set, else $PRISM_SERVER_KEY, else server.pub found
// through locate_server_files(config_path).
Expected<client::ServerKey> find_server_key(const std::string& key_option,
                                            const std::string& config_path);

}  // namespace prism::tools
