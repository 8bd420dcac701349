// The embedded store's SQLite VFS: the default VFS, except that the WAL's writes are
// gathered. SQLite appends each frame of a commit to the WAL as two writes, its 24-byte
// header and its page, and a group commit of the practice service writes ~300 frames:
// ~600 pwrite calls, most of the writer thread's kernel time (docs/performance.md). Here
// the frames of a transaction wait in a buffer and reach the kernel in a few large writes
// as soon as the frame that commits it is complete: before SQLite publishes the commit to
// readers and before the call is answered, so what a reader, a checkpoint or a killed
// process sees of the WAL is what it would see without the buffer. Every other file, and
// every other call, is the default VFS's.
#include "store/sqlite_wal_vfs.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

namespace prism::store {
namespace {

// SQLite's WAL format (sqlite.org/fileformat2.html#walformat): a frame is a 24-byte header,
// whose bytes 4-7 (big-endian) are the database size after the commit for the frame that
// ends one and 0 for every other, followed by the page. SQLite writes them in that order.
constexpr int kFrameHeader = 24;
// A transaction larger than this (a migration, a bulk load) is written in parts.
constexpr size_t kMaxBuffered = size_t{8} << 20;

struct WalFile {
  sqlite3_file base;   // first: what SQLite holds
  sqlite3_file* real;  // the default VFS's file, in the same allocation after this
  // Bytes of the file from `start` on that are not written yet.
  std::vector<unsigned char> pending;
  sqlite3_int64 start = 0;
  // Where the page of the commit frame whose header is pending goes, or -1.
  sqlite3_int64 commit_page = -1;
};

constexpr size_t kRealOffset = (sizeof(WalFile) + 15) / 16 * 16;

sqlite3_vfs* base_vfs = nullptr;
sqlite3_vfs wal_vfs;
std::atomic<uint64_t> writes_asked{0};
std::atomic<uint64_t> writes_made{0};

WalFile* wal(sqlite3_file* file) { return reinterpret_cast<WalFile*>(file); }
const sqlite3_io_methods& real_methods(WalFile* f) { return *f->real->pMethods; }

// The default VFS writes at most 128 KiB - 1 bytes a call (it masks the length with 0x1ffff),
// so what waits goes in parts below that.
constexpr size_t kWritePart = size_t{120} << 10;

int write_through(WalFile* f, const void* data, int amount, sqlite3_int64 offset) {
  writes_made.fetch_add(1, std::memory_order_relaxed);
  return real_methods(f).xWrite(f->real, data, amount, offset);
}

int flush(WalFile* f) {
  int rc = SQLITE_OK;
  for (size_t done = 0; done < f->pending.size() && rc == SQLITE_OK; done += kWritePart) {
    const size_t part = std::min(kWritePart, f->pending.size() - done);
    rc = write_through(f, f->pending.data() + done, static_cast<int>(part),
                       f->start + static_cast<sqlite3_int64>(done));
  }
  f->pending.clear();
  return rc;
}

uint32_t big_endian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

int wal_write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  WalFile* f = wal(file);
  writes_asked.fetch_add(1, std::memory_order_relaxed);
  const auto* bytes = static_cast<const unsigned char*>(data);
  const sqlite3_int64 end = f->start + static_cast<sqlite3_int64>(f->pending.size());
  if (!f->pending.empty() && offset >= f->start && offset + amount <= end) {
    // A frame of this transaction written again: a page changed twice, or the checksums
    // SQLite rewrites at commit.
    std::memcpy(f->pending.data() + (offset - f->start), bytes, static_cast<size_t>(amount));
  } else if (f->pending.empty() || offset == end) {
    if (f->pending.size() + static_cast<size_t>(amount) > kMaxBuffered) {
      if (int rc = flush(f); rc != SQLITE_OK) return rc;
    }
    if (f->pending.empty()) f->start = offset;
    f->pending.insert(f->pending.end(), bytes, bytes + amount);
  } else {
    // Anywhere else (the WAL header when the log starts over): in order, after what waits.
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return write_through(f, data, amount, offset);
  }
  if (amount == kFrameHeader && big_endian32(bytes + 4) != 0) {
    f->commit_page = offset + kFrameHeader;
  } else if (offset == f->commit_page) {
    // The commit frame is whole: SQLite publishes the commit next, without another call
    // that could report a failed write, so the write happens here.
    f->commit_page = -1;
    return flush(f);
  }
  return SQLITE_OK;
}

int wal_close(sqlite3_file* file) {
  WalFile* f = wal(file);
  int rc = flush(f);
  const int closed = real_methods(f).xClose(f->real);
  if (rc == SQLITE_OK) rc = closed;
  f->~WalFile();
  return rc;
}

int wal_read(sqlite3_file* file, void* data, int amount, sqlite3_int64 offset) {
  WalFile* f = wal(file);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xRead(f->real, data, amount, offset);
}

int wal_truncate(sqlite3_file* file, sqlite3_int64 size) {
  WalFile* f = wal(file);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xTruncate(f->real, size);
}

int wal_sync(sqlite3_file* file, int flags) {
  WalFile* f = wal(file);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xSync(f->real, flags);
}

int wal_file_size(sqlite3_file* file, sqlite3_int64* size) {
  WalFile* f = wal(file);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xFileSize(f->real, size);
}

int wal_lock(sqlite3_file* file, int level) {
  return real_methods(wal(file)).xLock(wal(file)->real, level);
}
int wal_unlock(sqlite3_file* file, int level) {
  return real_methods(wal(file)).xUnlock(wal(file)->real, level);
}
int wal_check_reserved_lock(sqlite3_file* file, int* out) {
  return real_methods(wal(file)).xCheckReservedLock(wal(file)->real, out);
}
int wal_file_control(sqlite3_file* file, int op, void* arg) {
  WalFile* f = wal(file);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xFileControl(f->real, op, arg);
}
int wal_sector_size(sqlite3_file* file) { return real_methods(wal(file)).xSectorSize(wal(file)->real); }
int wal_device_characteristics(sqlite3_file* file) {
  return real_methods(wal(file)).xDeviceCharacteristics(wal(file)->real);
}

// Version 1: SQLite maps shared memory and pages through the database's file, never the WAL's.
const sqlite3_io_methods wal_methods = {
    1,
    wal_close,
    wal_read,
    wal_write,
    wal_truncate,
    wal_sync,
    wal_file_size,
    wal_lock,
    wal_unlock,
    wal_check_reserved_lock,
    wal_file_control,
    wal_sector_size,
    wal_device_characteristics,
    nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

int vfs_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  if ((flags & SQLITE_OPEN_WAL) == 0) return base_vfs->xOpen(base_vfs, name, file, flags, out_flags);
  auto* f = new (file) WalFile{};  // base.pMethods null until the default VFS opened it
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
  f->real->pMethods = nullptr;
  const int rc = base_vfs->xOpen(base_vfs, name, f->real, flags, out_flags);
  if (f->real->pMethods == nullptr) {
    // Nothing to close: SQLite calls no method of a file whose pMethods is null.
    f->~WalFile();
    file->pMethods = nullptr;
    return rc;
  }
  f->base.pMethods = &wal_methods;  // set even when rc failed: SQLite then calls xClose
  return rc;
}

}  // namespace

const char* sqlite_wal_vfs() {
  static std::once_flag once;
  static bool registered = false;
  std::call_once(once, [] {
    base_vfs = sqlite3_vfs_find(nullptr);
    if (base_vfs == nullptr) return;
    wal_vfs = *base_vfs;  // every other call goes straight to the default VFS's functions
    wal_vfs.pNext = nullptr;
    wal_vfs.zName = "prism-wal";
    wal_vfs.szOsFile = static_cast<int>(kRealOffset) + base_vfs->szOsFile;
    wal_vfs.xOpen = vfs_open;
    registered = sqlite3_vfs_register(&wal_vfs, 0) == SQLITE_OK;
  });
  return registered ? wal_vfs.zName : nullptr;
}

SqliteWalWrites sqlite_wal_writes() {
  return {writes_asked.load(std::memory_order_relaxed), writes_made.load(std::memory_order_relaxed)};
}

}  // namespace prism::store
