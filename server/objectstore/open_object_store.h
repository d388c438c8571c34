// The one place a program picks its ObjectStore backend.
//   local (default): LocalObjectStore under `local_root`
//   s3:              S3ObjectStore (credentials from the environment)
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/objectstore/object_store.h"
#include "server/objectstore/s3_options.h"

namespace squeeze::store {

struct ObjectStoreConfig {
  std::string backend = "local";  // "local" or "s3"
  std::string local_root;         // backend local: the store's directory
  int64_t local_max_bytes = 0;    // backend local: quota (LocalStoreOptions::max_bytes); 0 = none
  S3Options s3;                   // backend s3: endpoint, bucket, region, ... (credentials filled by Open)
};

// Opens the configured backend. For s3 the credentials are read from
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) unless the
// config already has them. InvalidArgument naming the field for a bad config.
absl::StatusOr<std::unique_ptr<ObjectStore>> OpenObjectStore(ObjectStoreConfig config);

// One line for logs: "local /data/objects" or "s3 http://host:9000 bucket b prefix blobs/".
std::string DescribeObjectStore(const ObjectStoreConfig& config);

}  // namespace squeeze::store
