// The embedded ObjectStore: a directory on local disk.
//   <root>/blobs/<d[0:2]>/<digest>   immutable blobs (mode 0444)
//   <root>/tmp/                      writers in progress (cleared on Open)
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "server/objectstore/object_store.h"

namespace squeeze::store {

class LocalObjectStore : public ObjectStore {
 public:
  // Creates the layout if needed and removes leftovers from crashed writers.
  static absl::StatusOr<std::unique_ptr<LocalObjectStore>> Open(const std::string& root);

  absl::StatusOr<std::unique_ptr<BlobWriter>> NewBlob() override;
  bool Contains(const std::string& digest) const override;
  absl::StatusOr<int64_t> Size(const std::string& digest) const override;
  absl::StatusOr<std::string> ReadRange(const std::string& digest, int64_t offset,
                                        int64_t max_bytes) const override;

  // Counted at Open (one scan of blobs/) and on every new blob committed since.
  // Two writers committing the same new digest at the same instant may count it
  // twice until the next Open.
  absl::StatusOr<StoreUsage> Usage() const override;

  // Usage() counters, shared with the blob writers.
  struct UsageCounters {
    std::atomic<int64_t> blobs{0}, bytes{0};
  };

  std::string BlobPath(const std::string& digest) const;
  const std::string& root() const { return root_; }

 private:
  explicit LocalObjectStore(std::string root) : root_(std::move(root)) {}
  std::string root_;
  std::shared_ptr<UsageCounters> usage_ = std::make_shared<UsageCounters>();
};

}  // namespace squeeze::store
