// The embedded ObjectStore: a directory on local disk.
//   <root>/blobs/<d[0:2]>/<digest>   immutable blobs (mode 0444)
//   <root>/tmp/                      writers in progress (cleared on Open)
#pragma once

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

  std::string BlobPath(const std::string& digest) const;
  const std::string& root() const { return root_; }

 private:
  explicit LocalObjectStore(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

}  // namespace squeeze::store
