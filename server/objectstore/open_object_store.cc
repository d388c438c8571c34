#include "server/objectstore/open_object_store.h"

#include "absl/strings/str_cat.h"
#include "server/objectstore/local_object_store.h"
#include "server/objectstore/s3_object_store.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze::store {

absl::StatusOr<std::unique_ptr<ObjectStore>> OpenObjectStore(ObjectStoreConfig config) {
  if (config.backend == "local") {
    if (config.local_root.empty()) return absl::InvalidArgumentError("object store local: no directory given");
    LocalStoreOptions local_options;
    local_options.max_bytes = config.local_max_bytes;
    SQ_ASSIGN_OR_RETURN(std::unique_ptr<LocalObjectStore> local,
                        LocalObjectStore::Open(config.local_root, local_options));
    return std::unique_ptr<ObjectStore>(std::move(local));
  }
  if (config.backend == "s3") {
    if (config.local_max_bytes != 0) {
      return absl::InvalidArgumentError("a quota on stored bytes applies to the local object store only");
    }
    if (config.s3.access_key_id.empty() || config.s3.secret_access_key.empty()) {
      SQ_RETURN_IF_ERROR(LoadS3CredentialsFromEnv(config.s3));
    }
    SQ_ASSIGN_OR_RETURN(std::unique_ptr<S3ObjectStore> s3, S3ObjectStore::Open(std::move(config.s3)));
    return std::unique_ptr<ObjectStore>(std::move(s3));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("object store backend \"", config.backend, "\" is unknown (use local or s3)"));
}

std::string DescribeObjectStore(const ObjectStoreConfig& config) {
  if (config.backend == "s3") {
    return absl::StrCat("s3 ", config.s3.endpoint, " bucket ", config.s3.bucket, " region ", config.s3.region,
                        " prefix ", config.s3.key_prefix);
  }
  return absl::StrCat(config.backend, " ", config.local_root);
}

}  // namespace squeeze::store
