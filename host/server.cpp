// prismd's wiring and lifetime: start-up order, signals, shutdown order.
#include "server.hpp"

#include <spdlog/spdlog.h>
#include <uv.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "base/clock.hpp"
#include "net/crypto/key_file.hpp"
#include "net/transport_metrics.hpp"
#include "base/token_hash.hpp"
#include "plugins/directory_watch.hpp"
#include "plugins/store_api.hpp"
#include "prism/version.hpp"

namespace prism {

Server::Server(config::Config config) : config_(std::move(config)) {}

Server::~Server() { shutdown(); }

unsigned Server::worker_count() const {
  return config_.workers != 0 ? config_.workers : std::clamp(std::thread::hardware_concurrency(), 1u, 255u);
}

Expected<uint16_t> Server::make_workers(const net::crypto::KeyPair& server_key) {
  const unsigned count = worker_count();
  net::SessionSettings settings;
  settings.server_key = server_key;
  settings.channel.max_datagram = config_.max_datagram_size;
  settings.channel.max_receive_datagram = config_.max_datagram_size;
  settings.channel.max_message_size = config_.max_message_size;
  settings.channel.idle_timeout = config_.idle_timeout;
  settings.channel.keepalive = config_.idle_timeout / 3;
  // Limits over all workers become per-worker shares (the kernel spreads a client's
  // source ports over the workers, docs/security.md).
  auto share = [count](size_t total) { return std::max<size_t>(1, (total + count - 1) / count); };
  settings.max_sessions = std::max<size_t>(1, config_.max_sessions / count);
  settings.per_source.max_sessions = share(config_.max_sessions_per_ip);
  settings.per_source.max_handshakes = share(config_.max_handshakes_per_ip);
  settings.per_source.handshakes_per_second =
      static_cast<double>(config_.handshake_rate_per_ip) / count;
  settings.per_source.handshake_burst = static_cast<double>(share(config_.handshake_rate_per_ip));
  settings.handshake_timeout = config_.handshake_timeout;
  settings.channel.receive_budget = config_.receive_budget_per_session;
  settings.receive_budget = config_.receive_budget_per_worker;
  settings.channel.max_send_backlog = config_.max_send_backlog;
  uint16_t port = config_.udp.port;
  for (unsigned i = 0; i < count; ++i) {
    auto worker = std::make_unique<net::Worker>(i, settings);
    // The first worker may pick a free port (port 0); the others join it.
    auto bound = worker->bind(config_.udp.host, port, i == 0);
    if (!bound) return make_error(bound.error());
    port = *bound;
    auto dispatcher = std::make_unique<dispatch::Dispatcher>(*worker, worker->transport(),
                                                             config_.request_timeout);
    dispatcher->set_table(registry_->table());
    dispatcher->set_host_service(admin_.get());
    dispatcher->set_login_guard(
        std::make_unique<plugins::LoginGuard>(plugin_settings_, admin_token_));
    dispatcher->set_admin_allow(config_.admin_allow);
    worker->set_handler(dispatcher.get());
    workers_.push_back(std::move(worker));
    dispatchers_.push_back(std::move(dispatcher));
  }
  // A new routing table reaches each worker on its own thread; no lock on the hot path.
  registry_->set_publisher([this](std::shared_ptr<const plugins::RoutingTable> table) {
    for (size_t i = 0; i < workers_.size(); ++i) {
      auto* d = dispatchers_[i].get();
      workers_[i]->post([d, table] { d->set_table(table); });
    }
  });
  // protocol.md §5.3: a datagram whose session lives on another worker (the client's
  // address changed, so the kernel hashed it elsewhere) is handed to that worker.
  for (auto& w : workers_) {
    w->set_forwarder([this](unsigned owner, std::span<const uint8_t> datagram,
                            const net::PeerAddress& from) {
      if (owner >= workers_.size()) return false;
      net::Worker* target = workers_[owner].get();
      target->post([target, bytes = std::vector<uint8_t>(datagram.begin(), datagram.end()), from] {
        target->on_forwarded(bytes, from);
      });
      return true;
    });
  }
  return port;
}

void Server::start_workers() {
  // The threads are not running yet: each dispatcher takes the table the plugins just
  // made directly, so no first request can race the posted copy.
  for (auto& d : dispatchers_) d->set_table(registry_->table());
  for (auto& w : workers_) w->start();
}

Expected<void> Server::open_gateways() {
#ifdef PRISM_HAVE_WS
  if (!config_.ws_listen) return {};
  ws::GatewaySettings settings;
  settings.listen = *config_.ws_listen;
  settings.metrics = [] { return metrics::render_all(); };
  settings.health = [this] { return health(); };
  settings.is_admin_token = [this](std::string_view token) {
    return prism::token_matches(admin_token_, token);
  };
  settings.idle_timeout = config_.ws_idle_timeout;
  settings.max_frame_bytes = config_.ws_max_frame_bytes;
  // Limits over all workers are per-worker shares, as for the UDP sessions: the kernel
  // spreads connections over the workers' sockets.
  const size_t n = workers_.size();
  settings.max_connections = std::max<size_t>(1, (config_.ws_max_connections + n - 1) / n);
  settings.max_connections_per_ip = std::max<size_t>(1, (config_.ws_max_connections_per_ip + n - 1) / n);
  settings.messages_per_second = static_cast<double>(config_.ws_messages_per_second);
  settings.max_send_backlog = config_.max_send_backlog;
  settings.tls_cert = config_.ws_tls_cert;
  settings.tls_key = config_.ws_tls_key;
  for (size_t i = 0; i < workers_.size(); ++i) {
    settings.worker = static_cast<unsigned>(i);
    auto gateway = ws::Gateway::open(*workers_[i], settings, i == 0);
    if (!gateway) return make_error(gateway.error());
    // A WebSocket connection is a session like a UDP one: the same dispatcher answers it
    // and the same bus pushes to it (DESIGN.md §8).
    dispatch::Dispatcher* d = dispatchers_[i].get();
    (*gateway)->set_handler(d);
    (*gateway)->set_services(
        {.event_name = [d](uint32_t packet_id) { return d->method_name(packet_id); },
         .serves = [d](uint32_t packet_id, std::string_view topic) {
           return d->serves_channel(packet_id, topic);
         },
         .has_channel = [d](std::string_view topic) { return d->has_channel(topic); }});
    bus_->set_websocket(static_cast<unsigned>(i), gateway->get());
    // Every worker listens on the port the first one got (ws.listen port 0 picks one).
    settings.listen.port = (*gateway)->port();
    ws::Gateway* g = gateway->get();
    workers_[i]->at_stop([g] { g->close(); });
    gateways_.push_back(std::move(*gateway));
  }
  SPDLOG_INFO("event=ws_listening http={} tls={} workers={}", config::to_string(settings.listen),
              config_.ws_tls_cert.empty() ? "off" : "on", gateways_.size());
  return {};
#else
  if (config_.ws_listen) return make_error("ws.listen is set, but this prismd was built without PRISM_WITH_WS");
  return {};
#endif
}

#ifdef PRISM_HAVE_WS
ws::Health Server::health() const {
  ws::Health h;
  bool store_ok = true;
  if (storage_) {
    for (const auto& facet : storage_->health()) {
      if (facet.healthy) continue;
      store_ok = false;
      h.degraded.push_back("store:" + std::string(facet.facet) + ":" + std::string(facet.backend));
    }
  }
  if (registry_) {
    for (const auto& route : registry_->table()->routes()) {
      if (route.plugin->degraded()) h.degraded.push_back("plugin:" + route.plugin->name());
    }
  }
#ifdef PRISM_HAVE_CLUSTER
  // Serving on alone: degraded, still ready (DESIGN.md §7, loss of Redis).
  if ((cluster_ && !cluster_->healthy()) || (link_ && !link_->healthy())) {
    h.degraded.push_back("cluster:redis");
  }
#endif
  h.ready = plugins_loaded_.load() && store_ok;
  return h;
}
#endif

void Server::make_realtime() {
  std::vector<cluster::BusWorker> bus_workers;
  std::vector<net::LoopAccess*> loops;
  for (auto& w : workers_) {
    bus_workers.push_back({w.get(), &w->transport()});
    loops.push_back(w.get());
  }
  bus_ = std::make_unique<cluster::TopicBus>(
      std::move(bus_workers),
      cluster::BusLimits{config_.max_topics_per_session, config_.max_subscribers_per_topic});
  realtime_ = std::make_unique<plugins::RealtimeHost>(*bus_, loops);
  plugins::set_realtime(realtime_.get());
  cluster_host_ = std::make_unique<plugins::ClusterHost>(*bus_, std::move(loops), *registry_);
  if (config_.cluster.enabled) cluster_host_->expect_cluster();
  plugins::set_cluster_host(cluster_host_.get());
  for (auto& d : dispatchers_) d->set_topic_bus(bus_.get());
  admin_->set_topic_bus(bus_.get());
}

Expected<net::crypto::KeyPair> Server::load_server_key() const {
  if (!config_.key_file.empty()) {
    auto pair = net::crypto::load_private_key(config_.key_file);
    if (!pair) return make_error(pair.error());
    SPDLOG_INFO("event=server_key public_key={} file={}",
                net::crypto::encode_public_key(pair->public_key), config_.key_file);
    return pair;
  }
  auto key = net::crypto::load_or_create_server_key(config_.state_dir);
  if (!key) return make_error(key.error());
  SPDLOG_INFO("event=server_key public_key={} created={} dir={}",
              net::crypto::encode_public_key(key->pair.public_key), key->created,
              config_.state_dir);
  return key->pair;
}

Expected<prism::TokenHash> Server::load_admin_token() const {
  const std::filesystem::path path = config_.admin_token_file.empty()
                                         ? std::filesystem::path(config_.state_dir) / "admin.token"
                                         : std::filesystem::path(config_.admin_token_file);
  auto token = net::crypto::load_or_create_admin_token(path);
  if (!token) return make_error(token.error());
  SPDLOG_INFO("event=admin_token file={} created={}", path.string(), token->created);
  return prism::token_digest(token->token);
}

void Server::stop_workers() {
  if (registry_) registry_->set_publisher(nullptr);
  for (auto& w : workers_) w->stop();
}

#ifdef PRISM_HAVE_CLUSTER
namespace {

// cluster.node_id, or the id this node generated on its first start and kept in
// <state_dir>/node_id (so that a restart is the same node).
Expected<std::string> node_id(const config::Config& config) {
  if (!config.cluster.node_id.empty()) return config.cluster.node_id;
  const std::filesystem::path file = std::filesystem::path(config.state_dir) / "node_id";
  std::error_code ignored;  // a missing state_dir is made; writing then says what failed
  std::filesystem::create_directories(config.state_dir, ignored);
  std::string id;
  if (std::ifstream in(file); in >> id) {
    if (const std::string why = config::check_node_name(id); !why.empty()) {
      return make_error(file.string() + ": " + why + ", got '" + id + "'");
    }
    return id;
  }
  std::random_device random;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%08x%08x", random(), random());
  id = hex;
  std::ofstream out(file);
  if (!(out << id << "\n")) return make_error("cannot write " + file.string());
  return id;
}

Expected<std::string> first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return make_error("cannot read " + path);
  return line;
}

}  // namespace

Expected<void> Server::join_cluster(uint16_t udp_port) {
  const config::ClusterConfig& c = config_.cluster;
  const std::string id = registry_->facts().node_id;  // run() read or made it
  cluster::RegistryOptions options;
  options.redis_host = c.redis_host;
  options.redis_port = c.redis_port;
  options.redis.key_prefix = c.key_prefix;
  options.redis.database = static_cast<int>(c.redis_database);
  if (!c.redis_password_file.empty()) {
    auto password = first_line(c.redis_password_file);
    if (!password) return make_error("cluster.redis.password_file: " + password.error());
    options.redis.password = *password;
  }
  options.heartbeat = c.heartbeat;
  options.ttl = c.ttl;
  // A Redis that stops answering (SIGSTOP, a cut link) is given up after one TTL, by when
  // the others have dropped this node anyway: degraded, and reconnecting.
  options.redis.command_timeout = c.ttl;
  cluster::NodeInfo self;
  self.id = id;
  self.region = c.region;
  self.udp = config::to_string(config::Endpoint{config_.udp.host, udp_port});
#ifdef PRISM_HAVE_WS
  if (!gateways_.empty() && config_.ws_listen) {
    self.ws = config::to_string(config::Endpoint{config_.ws_listen->host, gateways_.front()->port()});
  }
#endif
  self.version = std::string(kVersion);
  self.started_at_ms = unix_ms();
  std::random_device random;
  self.incarnation = std::to_string(random()) + "-" + std::to_string(random());
  // Sessions open: the transports' opened less closed counters, looked up once. The
  // WebSocket ones only when ws.listen is on: asking the registry for a counter that
  // does not exist yet would register it, with no help text, in every /metrics.
  const net::TransportCounters& udp = net::transport_counters();
  const metrics::Counter* ws_opened = nullptr;
  const metrics::Counter* ws_closed = nullptr;
#ifdef PRISM_HAVE_WS
  if (!gateways_.empty()) {
    ws_opened = &metrics::registry().counter("prism_ws_connections_opened_total", "", "");
    ws_closed = &metrics::registry().counter("prism_ws_connections_closed_total", "", "");
  }
#endif
  auto load = [this, &udp, ws_opened, ws_closed] {
    cluster::NodeLoad l;
    l.sessions = udp.opened.value() - udp.closed.value();
    if (ws_opened != nullptr) l.sessions += ws_opened->value() - ws_closed->value();
    for (const auto& route : registry_->table()->routes()) {
      l.requests_total += route.plugin->requests();
      l.plugins.push_back(route.plugin->name());
    }
    return l;
  };
  const std::string incarnation = self.incarnation;
  cluster_ = std::make_unique<cluster::NodeRegistry>(options, std::move(self), load);
  if (auto started = cluster_->start(); !started) {
    cluster_.reset();
    return started;
  }
  admin_->set_cluster(cluster_.get());
  // Topics from here on reach the other nodes, and theirs this one's subscribers.
  link_ = std::make_unique<cluster::ClusterLink>(options, cluster_->self().id, incarnation, *bus_);
  bus_->set_remote(link_.get());
  // Leases, forwarded requests and stand-in sessions (plugins/cluster_host.hpp).
  cluster_host_->attach(*cluster_, *link_);
  metrics::registry().gauge("prism_cluster_healthy",
                            "1 while this node is registered and its topic links to Redis are up, 0 "
                            "while it serves alone (degraded)",
                            [this] { return cluster_->healthy() && link_->healthy() ? 1.0 : 0.0; });
  metrics::registry().gauge("prism_cluster_nodes", "Live nodes of the cluster as this node last read them",
                            [this] { return static_cast<double>(cluster_->nodes().size()); });
  return {};
}
#endif

void Server::shutdown() {
  stop_workers();
#ifdef PRISM_HAVE_CLUSTER
  // Leaves the registry at once (the others stop listing this node) once no worker can
  // ask the admin service about it any more.
  if (admin_) admin_->set_cluster(nullptr);
  metrics::registry().remove_gauge("prism_cluster_healthy");
  metrics::registry().remove_gauge("prism_cluster_nodes");
  if (cluster_host_) cluster_host_->detach();
  cluster_.reset();
  // Before the bus: the link's thread delivers into it until then.
  if (bus_) bus_->set_remote(nullptr);
  link_.reset();
#endif
#ifdef PRISM_HAVE_WS
  for (auto& g : gateways_) g->finish();  // each loop has ended and is not closed yet
#endif
  dispatchers_.clear();
  // Plugins shut down as the last references to them go away.
  admin_.reset();
  registry_.reset();
  // After the last plugin version: each released its subscriptions and timers here.
  plugins::set_realtime(nullptr);
  plugins::set_cluster_host(nullptr);
  // Calls still pending complete UNAVAILABLE; their completions reach stopped workers,
  // which drop them.
  plugins::set_store(nullptr);
  storage_.reset();
  workers_.clear();
  // After the workers: their stop hooks (run as each loop stopped or, for a worker never
  // started, in its destructor) close the timers and the gateways' contexts, and
  // libwebsockets writes back through its gateway while they close.
  realtime_.reset();
  cluster_host_.reset();
  bus_.reset();
#ifdef PRISM_HAVE_WS
  gateways_.clear();
#endif
}

void Server::check_store_health() {
  if (!storage_) return;
  const auto health = storage_->health();
  store_healthy_.resize(health.size(), true);
  for (size_t i = 0; i < health.size(); ++i) {
    if (health[i].healthy == store_healthy_[i]) continue;
    store_healthy_[i] = health[i].healthy;
    if (health[i].healthy) {
      SPDLOG_INFO("event=store_recovered facet={} backend={}", health[i].facet, health[i].backend);
    } else {
      SPDLOG_WARN("event=store_degraded facet={} backend={} effect=\"calls fail UNAVAILABLE\"",
                  health[i].facet, health[i].backend);
    }
  }
}

void Server::log_metrics_snapshot() const {
  const auto status = admin_->server_status();
  SPDLOG_INFO("event=metrics uptime_ms={} datagrams_received={} datagrams_dropped={} requests={}",
              status.uptime_ms(), status.datagrams_received(), status.datagrams_dropped(),
              status.requests());
}

int Server::run() {
  const unsigned workers = worker_count();
  // Private plugin copies live in state_dir, not /tmp: a prismd that was killed leaves its
  // copies (tens of MiB) behind, and the next start on the same state_dir removes them.
  // The cluster node id is known before plugins load: server_info tells them.
  std::string node;
#ifdef PRISM_HAVE_CLUSTER
  if (config_.cluster.enabled) {
    auto id = node_id(config_);
    if (!id) {
      SPDLOG_CRITICAL("event=cluster_refused error=\"{}\"", id.error());
      return 2;
    }
    node = *id;
  }
#endif
  registry_ = std::make_unique<plugins::Registry>(
      plugins::HostFacts{std::string(kVersion), unix_ms(), workers, node},
      std::filesystem::path(config_.state_dir) / "plugin-copies");
  // `prismctl config check`: the config file and plugins.d as they are on disk now.
  admin_ = std::make_unique<admin::AdminService>(*registry_, [this]() -> Expected<void> {
    if (!config_.source.empty()) {
      if (auto config = config::load_file(config_.source); !config) return config.failure();
    }
    if (auto settings = plugins::load_plugin_settings_dir(config_.plugins_config_dir); !settings) {
      return settings.failure();
    }
    return {};
  });

  SPDLOG_INFO("event=starting version={} config={} plugins_dir={}", kVersion, config_.source,
              config_.plugins_dir);
  // The secure transport's static key: server.key_file when set, else created on first
  // start in state_dir so nothing is set up by hand.
  auto key = load_server_key();
  if (!key) {
    SPDLOG_CRITICAL("event=server_key_failed error=\"{}\"", key.error());
    return 2;
  }
  // plugins.d: per-plugin tokens (only those so far; the rest of the keys are validated).
  auto settings = plugins::load_plugin_settings_dir(config_.plugins_config_dir);
  if (!settings) {
    SPDLOG_CRITICAL("event=plugin_config_failed error=\"{}\"", settings.error());
    return 2;
  }
  plugin_settings_ = std::move(*settings);
  // The admin service is one more login: its token from admin.token_file, or created in
  // state_dir on first start so prismctl on this machine finds it.
  auto admin = load_admin_token();
  if (!admin) {
    SPDLOG_CRITICAL("event=admin_token_failed error=\"{}\"", admin.error());
    return 2;
  }
  admin_token_ = *admin;
  for (const auto& p : plugin_settings_) {
    SPDLOG_INFO("event=plugin_config plugin={} file={} login={}", p.name, p.source,
                p.token ? "token" : "open");
  }
  // The storage facade (prism.yaml `store`): opened before plugins load, so their first
  // requests find it.
  auto storage = store::Storage::open(config_.store, config_.state_dir);
  if (!storage) {
    SPDLOG_CRITICAL("event=store_failed error=\"{}\"", storage.error());
    return 2;
  }
  storage_ = std::move(*storage);
  plugins::set_store(&storage_->facets());
  admin_->set_storage(storage_.get());
  std::string facets;
  for (const auto& facet : storage_->health()) {
    facets += (facets.empty() ? "" : ",") + std::string(facet.facet) + ":" + std::string(facet.backend);
  }
  SPDLOG_INFO("event=store_ready facets={}", facets);
  // The workers exist (their sockets bound, their loops not yet running) before plugins
  // load: a plugin's init may start a timer or subscribe, which goes to a worker's queue.
  auto port = make_workers(*key);
  if (!port) {
    SPDLOG_CRITICAL("event=listen_failed error=\"{}\"", port.error());
    shutdown();
    SPDLOG_INFO("event=stopped");
    return 1;
  }
  make_realtime();
  if (auto opened = open_gateways(); !opened) {
    SPDLOG_CRITICAL("event=listen_failed error=\"{}\"", opened.error());
    shutdown();
    SPDLOG_INFO("event=stopped");
    return 1;
  }
  // A refused plugin is logged with its reason; the host serves the others.
  registry_->set_plugin_settings(plugin_settings_);
  registry_->load_directory(config_.plugins_dir);
  plugins_loaded_.store(true);
  if (const size_t swept = registry_->private_copies().swept(); swept > 0) {
    SPDLOG_INFO("event=plugin_copies_swept count={} dir={}", swept,
                registry_->private_copies().dir().parent_path().string());
  }

#ifdef PRISM_HAVE_CLUSTER
  if (config_.cluster.enabled) {
    if (auto joined = join_cluster(*port); !joined) {
      SPDLOG_CRITICAL("event=cluster_refused error=\"{}\"", joined.error());
      shutdown();
      SPDLOG_INFO("event=stopped");
      return 1;
    }
  }
#endif

  // Signals are handled before the listening line, so a supervisor may stop us at once.
  uv_loop_t loop;
  uv_loop_init(&loop);
  loop.data = this;
  uv_signal_t sigint, sigterm;
  uv_timer_t metrics_timer;
  uv_timer_t health_timer;
  auto on_signal = [](uv_signal_t* handle, int signum) {
    SPDLOG_INFO("event=stopping signal={}", signum);
    uv_stop(handle->loop);
  };
  // plugins_dir is watched: a new .so is loaded, a replaced one hot-reloaded, a removed
  // one unloaded (DESIGN.md §5). dlopen and init then run on this main loop, not a worker.
  plugins::DirectoryWatch watch(&loop, *registry_, config_.plugins_dir);
  if (auto watching = watch.start(); !watching) {
    SPDLOG_WARN("event=plugins_dir_watch_failed error=\"{}\"", watching.error());
  }
  uv_signal_init(&loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_init(&loop, &sigterm);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_timer_init(&loop, &health_timer);
  uv_timer_start(
      &health_timer, [](uv_timer_t* t) { static_cast<Server*>(t->loop->data)->check_store_health(); },
      1000, 1000);
  uv_timer_init(&loop, &metrics_timer);
  if (config_.metrics_interval.count() > 0) {
    const auto ms = static_cast<uint64_t>(config_.metrics_interval.count()) * 1000;
    uv_timer_start(
        &metrics_timer,
        [](uv_timer_t* t) { static_cast<Server*>(t->loop->data)->log_metrics_snapshot(); }, ms,
        ms);
  }

  start_workers();
  // Tests and scripts wait for this exact line (docs/operations.md).
  SPDLOG_INFO("event=listening udp={} workers={}", config::to_string(config::Endpoint{config_.udp.host, *port}),
              workers_.size());
  uv_run(&loop, UV_RUN_DEFAULT);

  watch.stop();
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&metrics_timer), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&health_timer), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (const int rc = uv_loop_close(&loop); rc != 0) {
    SPDLOG_ERROR("event=loop_close_failed loop=main error=\"{}\"", uv_strerror(rc));
  }

  stop_workers();
  log_metrics_snapshot();
  shutdown();
  SPDLOG_INFO("event=stopped");
  return 0;
}

}  // namespace prism
