// The PostgreSQL backend's schema as an ordered list of versioned migrations, and the
// routine that applies the ones a database has not recorded in schema_migrations yet.
#pragma once

#include <pqxx/connection>

#include <span>
#include <string_view>
#include <vector>

#include "base/expected.hpp"

namespace prism::store::postgres {

struct Migration {
  int version;            // 1, 2, ...: applied in order, each exactly once per database
  std::string_view name;  // recorded beside the version, for operators
  std::string_view sql;   // one or more statements, run inside the migration transaction
};

// Every migration this build knows, in version order. Never edit a released one; add one.
std::span<const Migration> migrations();

// Applies the pending migrations in one transaction under an advisory lock, so nodes
// starting together against one database do not race. Returns the versions applied
// (empty when the schema was current). Fails, applying nothing, when the database
// records a version newer than this build knows or a migration fails.
Expected<std::vector<int>> migrate(pqxx::connection& conn);

}  // namespace prism::store::postgres
