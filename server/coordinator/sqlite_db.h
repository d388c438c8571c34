// A thin RAII wrapper over sqlite3: one connection, prepared statements with
// positional binds, errors as absl::Status naming the SQL that failed.
// Not thread-safe: the owner serializes access.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace squeeze::server {

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Statement(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  // Binds are 1-based, in order of the `?` placeholders.
  Statement& Bind(int i, int64_t v);
  Statement& Bind(int i, const std::string& v);   // TEXT
  Statement& BindBlob(int i, const std::string& v);
  Statement& BindNull(int i);

  // Back to the start, binds kept, so the statement can run again (rebind
  // first to change the values).
  Statement& Reset();
  // Steps once: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Runs to completion (for statements returning no rows).
  absl::Status Run();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const;
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class SqliteDb {
 public:
  // Opens (creating) the database with WAL journaling and synchronous=FULL, so a
  // committed transaction survives kill -9 and power loss.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  // Opens an existing database with SQLITE_OPEN_READONLY: no file is created,
  // no pragma that writes runs, and every write statement fails. Safe beside a
  // live coordinator (WAL: readers see the last committed snapshot; the only
  // file a reader touches is jobs.db-shm, SQLite's shared-memory index).
  static absl::StatusOr<std::unique_ptr<SqliteDb>> OpenReadOnly(const std::string& path);
  ~SqliteDb();

  absl::Status Exec(absl::string_view sql);
  absl::StatusOr<Statement> Prepare(absl::string_view sql);
  int64_t Changes() const { return sqlite3_changes(db_); }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back when destroyed uncommitted.
class Transaction {
 public:
  static absl::StatusOr<Transaction> Begin(SqliteDb& db);
  Transaction(Transaction&& o) noexcept : db_(o.db_), done_(o.done_) { o.done_ = true; }
  ~Transaction();
  absl::Status Commit();

 private:
  explicit Transaction(SqliteDb& db) : db_(&db) {}
  SqliteDb* db_;
  bool done_ = false;
};

}  // namespace squeeze::server
