// Configuration of the S3 object store backend (S3ObjectStore).
//
// Addressing is path-style, <endpoint>/<bucket>/<key_prefix><sha256>, which
// every S3-protocol server accepts (AWS, MinIO, Ceph RGW, s3rver) and which
// needs no wildcard DNS for custom endpoints. Credentials come from the
// environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN),
// never from flags, so they do not show in `ps`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"

namespace squeeze::store {

struct S3Options {
  std::string endpoint;  // scheme://host[:port], e.g. https://s3.eu-west-1.amazonaws.com
  std::string bucket;    // must exist; the store never creates buckets
  std::string region = "us-east-1";
  std::string key_prefix = "blobs/";  // [A-Za-z0-9/._-]*; objects are <prefix><digest>
  std::string access_key_id;
  std::string secret_access_key;  // never printed
  std::string session_token;      // optional (temporary credentials)

  // Blobs larger than this go up as a multipart upload of part_size_bytes
  // parts (S3 requires >= 5 MiB parts except the last; at most 10000 parts, so
  // a larger blob gets proportionally larger parts).
  int64_t multipart_threshold_bytes = int64_t{64} << 20;
  int64_t part_size_bytes = int64_t{16} << 20;

  // Retries on connection errors, timeouts and HTTP 429/500/502/503/504:
  // attempt k (1-based) waits min(initial_backoff_ms * 2^(k-1), max_backoff_ms)
  // with +-25% jitter before attempt k+1.
  int max_attempts = 6;
  int64_t initial_backoff_ms = 200;
  int64_t max_backoff_ms = 5000;
  int64_t connect_timeout_ms = 5000;
  int64_t request_timeout_ms = 600000;  // one request (a part or a small blob)

  // Writers spool blobs larger than multipart_threshold_bytes here (an
  // unnamed file, gone when the writer is). Empty: $TMPDIR or /tmp.
  std::string spool_dir;

  // Test hook: called after each part of a multipart upload is stored
  // (1-based part number, parts total). Empty in production.
  std::function<void(int part, int parts)> after_part_uploaded;
};

// InvalidArgument naming the field and the reason for the first bad one.
absl::Status ValidateS3Options(const S3Options& options);

// Fills the credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN; InvalidArgument naming the variable when one of the first
// two is unset or empty.
absl::Status LoadS3CredentialsFromEnv(S3Options& options);

}  // namespace squeeze::store
