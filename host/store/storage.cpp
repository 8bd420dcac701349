// Opens the configured storage engines and maps the four facets onto them.
#include "store/storage.hpp"

#include <spdlog/spdlog.h>

#include "config/yaml_text.hpp"
#include "store/sqlite_backend.hpp"
#ifdef PRISM_HAVE_REDIS_STORE
#include "store/redis_backend.hpp"
#endif
#ifdef PRISM_HAVE_POSTGRES_STORE
#include "store/postgres_backend.hpp"
#endif

namespace prism::store {
namespace {

using config::StoreEngine;
using config::StoreFacet;

Expected<std::unique_ptr<Backend>> open_sqlite(const config::StoreConfig& config,
                                               const std::filesystem::path& state_dir) {
  const std::filesystem::path file =
      config.sqlite_file.empty() ? state_dir / "prism.db" : std::filesystem::path(config.sqlite_file);
  std::error_code ec;
  if (file.has_parent_path() && !std::filesystem::exists(file.parent_path(), ec)) {
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec) {
      return make_error("store.sqlite.file: cannot create " + file.parent_path().string() + ": " +
                        ec.message());
    }
    std::filesystem::permissions(file.parent_path(), std::filesystem::perms::owner_all, ec);
  }
  SqliteOptions options;
  options.synchronous_full = config.sqlite_synchronous_full;
  auto backend = std::make_unique<SqliteBackend>(file, options);
  if (!backend->healthy()) {
    // An unwritable directory, a file of a newer schema, not a database at all.
    return make_error("store.sqlite.file: " + file.string() + ": " + backend->open_error());
  }
  return std::unique_ptr<Backend>(std::move(backend));
}

#ifdef PRISM_HAVE_REDIS_STORE
Expected<std::unique_ptr<Backend>> open_redis(const config::StoreConfig& config) {
  RedisOptions options;
  options.key_prefix = config.redis_key_prefix;
  options.database = static_cast<int>(config.redis_database);
  if (!config.redis_password_file.empty()) {
    auto text = config::read_text_file(config.redis_password_file, "store.redis.password_file");
    if (!text) return make_error(text.error());
    options.password = text->substr(0, text->find_first_of("\r\n"));
  }
  spdlog::info("event=store_opened backend=redis address={}:{} database={} key_prefix={}",
               config.redis_host, config.redis_port, config.redis_database, config.redis_key_prefix);
  return std::unique_ptr<Backend>(
      std::make_unique<RedisBackend>(config.redis_host, config.redis_port, options));
}
#endif

#ifdef PRISM_HAVE_POSTGRES_STORE
Expected<std::unique_ptr<Backend>> open_postgres(const config::StoreConfig& config) {
  PostgresOptions options;
  options.connections = config.postgres_connections;
  auto opened = PostgresBackend::open(config.postgres_conninfo, options);
  if (opened) {
    spdlog::info("event=store_opened backend=postgres connections={}", options.connections);
    return std::unique_ptr<Backend>(std::move(*opened));
  }
  // Down or refusing now: keep retrying in the background, degraded until it answers.
  spdlog::error("event=store_unavailable backend=postgres error=\"{}\" retrying=true", opened.error());
  return std::unique_ptr<Backend>(
      std::make_unique<PostgresBackend>(config.postgres_conninfo, options));
}
#endif

}  // namespace

Expected<std::unique_ptr<Storage>> Storage::open(const config::StoreConfig& config,
                                                 const std::filesystem::path& state_dir) {
  std::unique_ptr<Storage> storage(new Storage());
  for (StoreEngine e : {StoreEngine::kSqlite, StoreEngine::kRedis, StoreEngine::kPostgres}) {
    if (!config.uses(e)) continue;
    Expected<std::unique_ptr<Backend>> backend = make_error(
        "store: " + std::string(config::to_string(e)) + " is not built into this prismd");
    switch (e) {
      case StoreEngine::kSqlite: backend = open_sqlite(config, state_dir); break;
#ifdef PRISM_HAVE_REDIS_STORE
      case StoreEngine::kRedis: backend = open_redis(config); break;
#endif
#ifdef PRISM_HAVE_POSTGRES_STORE
      case StoreEngine::kPostgres: backend = open_postgres(config); break;
#endif
      default: break;
    }
    if (!backend) return make_error(backend.error());
    storage->backends_.emplace_back(e, std::move(*backend));
  }
  storage->facets_.documents = storage->engine(config.engine(StoreFacet::kDocuments));
  storage->facets_.counters = storage->engine(config.engine(StoreFacet::kCounters));
  storage->facets_.leaderboards = storage->engine(config.engine(StoreFacet::kLeaderboards));
  storage->facets_.presence = storage->engine(config.engine(StoreFacet::kPresence));
  return storage;
}

// Backends complete what is still pending with UNAVAILABLE as they go.
Storage::~Storage() = default;

Backend* Storage::engine(StoreEngine engine) const {
  for (const auto& [e, backend] : backends_) {
    if (e == engine) return backend.get();
  }
  return nullptr;
}

std::vector<Storage::FacetHealth> Storage::health() const {
  const Backend* by_facet[] = {facets_.documents, facets_.counters, facets_.leaderboards,
                               facets_.presence};
  std::vector<FacetHealth> out;
  for (size_t i = 0; i < std::size(by_facet); ++i) {
    out.push_back({config::kStoreFacetNames[i], by_facet[i]->name(), by_facet[i]->healthy()});
  }
  return out;
}

}  // namespace prism::store
