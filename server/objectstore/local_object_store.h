// The embedded ObjectStore: a directory on local disk.
//   <root>/blobs/<d[0:2]>/<digest>   immutable blobs (mode 0444)
//   <root>/tmp/                      writers in progress (cleared on Open)
//
// Quota (LocalStoreOptions::max_bytes, `--store-max-bytes`): the bytes of the
// committed blobs plus the bytes appended by writers still in progress never
// exceed it. An Append that would cross it fails with RESOURCE_EXHAUSTED
// naming the limit; the writer's temporary file is dropped when it is
// destroyed, so nothing half-written ever becomes visible. A deduplicated
// commit adds nothing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "server/objectstore/object_store.h"

namespace squeeze::store {

struct LocalStoreOptions {
  int64_t max_bytes = 0;  // quota on stored + in-progress bytes; 0 = none
  // Read-only (`--verify` beside a live coordinator): Open creates nothing and
  // leaves tmp/ alone (uploads in progress survive); NewBlob fails.
  bool read_only = false;
};

// What VerifyStore found: every blob's content hashes to its name, every
// manifest's files exist with their declared size. `problems` names each
// failure (empty = the store is sound).
struct StoreVerifyReport {
  int64_t blobs = 0, bytes = 0, manifests = 0;
  std::vector<std::string> problems;
  bool ok() const { return problems.empty(); }
};

class LocalObjectStore : public ObjectStore {
 public:
  // Creates the layout if needed and removes leftovers from crashed writers
  // (read-write), or only checks that <root>/blobs exists (options.read_only).
  static absl::StatusOr<std::unique_ptr<LocalObjectStore>> Open(const std::string& root,
                                                                LocalStoreOptions options = {});

  absl::StatusOr<std::unique_ptr<BlobWriter>> NewBlob() override;
  bool Contains(const std::string& digest) const override;
  absl::StatusOr<int64_t> Size(const std::string& digest) const override;
  absl::StatusOr<std::string> ReadRange(const std::string& digest, int64_t offset,
                                        int64_t max_bytes) const override;

  // Counted at Open (one scan of blobs/) and on every new blob committed since;
  // commits of one digest are serialized, so a blob is counted once.
  absl::StatusOr<StoreUsage> Usage() const override;

  // Reads every blob: its sha256 must equal its name (and the file must sit in
  // the directory of its first two hex digits); every blob that parses as a
  // manifest must name files that exist with the declared sizes. (Files in
  // tmp/ are invisible writers in progress or crash leftovers, cleared on
  // Open: not problems.) Error only when the directory cannot be read.
  absl::StatusOr<StoreVerifyReport> Verify() const;

  // State shared with the blob writers (which may outlive nothing but are
  // simpler to reason about with shared ownership).
  struct Shared {
    std::atomic<int64_t> blobs{0}, bytes{0};
    int64_t max_bytes = 0;       // 0 = no quota
    std::mutex mu;               // guards the members below
    int64_t reserved = 0;        // bytes appended by uncommitted writers
    std::set<std::string> committing;  // digests being renamed into place
    std::condition_variable committed_cv;
  };

  std::string BlobPath(const std::string& digest) const;
  const std::string& root() const { return root_; }

 private:
  explicit LocalObjectStore(std::string root) : root_(std::move(root)) {}
  std::string root_;
  bool read_only_ = false;
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

}  // namespace squeeze::store
