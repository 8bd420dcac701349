// prismd: command line, configuration, logging; then the Server runs.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "base/log.hpp"
#include "config/config.hpp"
#include "prism/version.hpp"
#include "server.hpp"

int main(int argc, char** argv) {
  CLI::App app{"prismd: the Prism real-time broker"};
  std::string config_path = "/etc/prism/prism.yaml";
  std::string plugins_dir;
  bool check_only = false;
  app.add_option("-c,--config", config_path, "Configuration file (YAML)");
  app.add_option("--plugins-dir", plugins_dir, "Load plugins from this directory instead");
  std::string state_dir;
  app.add_option("--state-dir", state_dir, "Keep state (server key) here instead");
  std::string ws_listen;
  app.add_option("--ws-listen", ws_listen,
                 "HTTP/WebSocket listener HOST:PORT (or off) instead of ws.listen");
  app.add_flag("--check-config", check_only, "Validate the configuration and exit");
  app.set_version_flag("--version", std::string("prismd ") + std::string(prism::kVersion));
  CLI11_PARSE(app, argc, argv);

  auto config = prism::config::load_file(config_path);
  if (!config) {
    std::fprintf(stderr, "prismd: %s\n", config.error().c_str());
    return 2;
  }
  if (!plugins_dir.empty()) config->plugins_dir = plugins_dir;
  if (!state_dir.empty()) config->state_dir = state_dir;
  if (ws_listen == "off") {
    config->ws_listen.reset();
  } else if (!ws_listen.empty()) {
    auto endpoint = prism::config::parse_endpoint(ws_listen);
    if (!endpoint) {
      std::fprintf(stderr, "prismd: --ws-listen: %s\n", endpoint.error().c_str());
      return 2;
    }
    config->ws_listen = *endpoint;
  }
  if (check_only) {
    std::printf("%s: OK\n", config_path.c_str());
    return 0;
  }

  prism::init_logging();
  prism::route_protobuf_logs();
  if (auto ok = prism::set_log_level(config->log_level); !ok) {
    std::fprintf(stderr, "prismd: %s\n", ok.error().c_str());
    return 2;
  }
  return prism::Server(std::move(*config)).run();
}
