// The SQLite VFS the embedded store opens its file with: the default one, except that a
// transaction's WAL frames reach the kernel in a few writes of up to 120 KiB instead of
// two per frame.
#pragma once

#include <cstdint>

namespace prism::store {

// The name to give sqlite3_open_v2; registers the VFS (not as the default) on first use.
// nullptr when it could not be registered: SQLite's default VFS is then used.
const char* sqlite_wal_vfs();

// Since start, over every WAL file opened through it: the writes SQLite made, and the
// writes that reached the default VFS (the system calls).
struct SqliteWalWrites {
  uint64_t asked = 0;
  uint64_t made = 0;
};
SqliteWalWrites sqlite_wal_writes();

}  // namespace prism::store
