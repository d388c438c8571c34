// `squeeze-coordinator --verify`: integrity check of a data dir. Read-only
// (SQLITE_OPEN_READONLY, no migrations; the object store opened read-only, so
// objects/tmp is left alone): safe beside a live coordinator, whose
// uncommitted writes it does not see.
//   - jobs.db passes SQLite's PRAGMA integrity_check;
//   - every job's events are seq 1..last_seq with no gaps;
//   - the object store passes LocalObjectStore::Verify (each blob hashes to its
//     name, each manifest's files exist with their sizes, no leftovers in tmp/);
//   - every SUCCEEDED job's artifact and every stored checkpoint is a manifest
//     present in the store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace squeeze::server {

struct DataDirReport {
  int64_t jobs = 0, events = 0, blobs = 0, bytes = 0, manifests = 0;
  std::vector<std::string> problems;  // empty = sound
  bool ok() const { return problems.empty(); }
  std::string Summary() const;        // one line of figures, then one line per problem
};

// Error only when the directory cannot be opened at all.
absl::StatusOr<DataDirReport> VerifyDataDir(const std::string& data_dir);

}  // namespace squeeze::server
