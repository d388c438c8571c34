// ObjectStore: immutable blobs named by the sha256 of their bytes.
//
// Invariants: a blob is visible under its digest only once all of its bytes are
// durable (written to a temporary file, fsynced, renamed, directory fsynced); a
// writer that is destroyed without Commit() leaves nothing behind; putting bytes
// that already exist is a no-op (deduplication).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace squeeze::store {

// What a store holds (for the squeeze_objectstore_* metrics).
struct StoreUsage {
  int64_t blobs = 0;
  int64_t bytes = 0;
};

class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  virtual absl::Status Append(absl::string_view bytes) = 0;
  virtual int64_t bytes_written() const = 0;
  // Makes the blob visible and returns its digest. When `expected_digest` is not
  // empty and differs, nothing is stored and DataLoss is returned.
  virtual absl::StatusOr<std::string> Commit(const std::string& expected_digest = "") = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  virtual absl::StatusOr<std::unique_ptr<BlobWriter>> NewBlob() = 0;
  virtual bool Contains(const std::string& digest) const = 0;
  // NotFound when absent; InvalidArgument for a malformed digest.
  virtual absl::StatusOr<int64_t> Size(const std::string& digest) const = 0;
  // Up to `max_bytes` starting at `offset` (empty at or past the end).
  virtual absl::StatusOr<std::string> ReadRange(const std::string& digest, int64_t offset,
                                                int64_t max_bytes) const = 0;
  // Blobs and bytes stored now; Unimplemented for a backend that cannot tell
  // cheaply.
  virtual absl::StatusOr<StoreUsage> Usage() const {
    return absl::UnimplementedError("this object store does not report its usage");
  }

  // Conveniences built on the above.
  absl::StatusOr<std::string> Put(absl::string_view bytes);
  absl::StatusOr<std::string> Get(const std::string& digest) const;
  absl::StatusOr<std::string> PutFile(const std::string& path);
  // Writes the blob to `path` atomically.
  absl::Status CopyToFile(const std::string& digest, const std::string& path) const;
};

}  // namespace squeeze::store
