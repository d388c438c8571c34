// S3ObjectStore: the ObjectStore over an S3 bucket (AWS or any S3-protocol
// server), keyed by content: blob <digest> is object <key_prefix><digest>.
//
// Invariants (those of ObjectStore):
//  - A blob becomes visible only complete: a single PUT, or a multipart upload
//    whose CompleteMultipartUpload succeeded; a failed multipart upload is
//    aborted (best effort; parts of an upload that cannot be aborted are never
//    visible as an object, and a bucket lifecycle rule
//    AbortIncompleteMultipartUpload reclaims them).
//  - Every upload request is signed with the sha256 of its payload (the server
//    rejects a body that does not match); a blob's sha256 is also stored as
//    x-amz-meta-sha256. Reads of a whole blob are re-hashed and must equal the
//    digest (DataLoss otherwise); range reads check length and the stored
//    x-amz-meta-sha256.
//  - A writer hashes while it buffers (memory up to multipart_threshold_bytes,
//    then an unnamed spool file), so the key is known at Commit; an existing
//    object of the same digest and size is not uploaded again.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "server/objectstore/object_store.h"
#include "server/objectstore/s3_client.h"
#include "server/objectstore/s3_options.h"

namespace squeeze::store {

class S3ObjectStore : public ObjectStore {
 public:
  // Validates the options and checks the bucket is reachable with these
  // credentials (one ListObjectsV2 of at most one key): NotFound naming the
  // bucket and endpoint when it does not exist, PermissionDenied on bad
  // credentials, Unavailable when the endpoint cannot be reached.
  static absl::StatusOr<std::unique_ptr<S3ObjectStore>> Open(S3Options options);

  absl::StatusOr<std::unique_ptr<BlobWriter>> NewBlob() override;
  bool Contains(const std::string& digest) const override;
  absl::StatusOr<int64_t> Size(const std::string& digest) const override;
  absl::StatusOr<std::string> ReadRange(const std::string& digest, int64_t offset,
                                        int64_t max_bytes) const override;

  // Digests of every blob under the key prefix (ListObjectsV2, all pages),
  // sorted; objects whose name is not a digest are skipped.
  absl::StatusOr<std::vector<std::string>> ListDigests() const;
  // Removes a blob; deleting an absent one is not an error (S3 semantics).
  absl::Status Delete(const std::string& digest);

  std::string KeyFor(const std::string& digest) const { return client_.options().key_prefix + digest; }
  const S3Client& client() const { return client_; }

  // Upload paths of BlobWriter::Commit (public for the writer; size/threshold
  // decide between them). `spool_fd` is read with pread.
  absl::Status PutSmall(const std::string& digest, absl::string_view bytes) const;
  absl::Status PutMultipart(const std::string& digest, int spool_fd, int64_t size) const;

 private:
  explicit S3ObjectStore(S3Options options) : client_(std::move(options)) {}
  absl::Status CheckBucket() const;
  S3Client client_;
};

}  // namespace squeeze::store
