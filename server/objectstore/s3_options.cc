#include "server/objectstore/s3_options.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace squeeze::store {

absl::Status ValidateS3Options(const S3Options& o) {
  auto bad = [](const char* field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("s3 option ", field, ": ", why));
  };
  if (!absl::StartsWith(o.endpoint, "http://") && !absl::StartsWith(o.endpoint, "https://")) {
    return bad("endpoint", absl::StrCat("\"", o.endpoint, "\" must start with http:// or https://"));
  }
  if (absl::EndsWith(o.endpoint, "/")) return bad("endpoint", "must not end with '/'");
  // Bucket naming rules (lowercase DNS-style, 3..63 chars): path-style URLs
  // carry the name unescaped, so nothing else may pass.
  if (o.bucket.size() < 3 || o.bucket.size() > 63) return bad("bucket", "must be 3 to 63 characters");
  for (char c : o.bucket) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
      return bad("bucket", absl::StrCat("\"", o.bucket, "\" may hold only a-z, 0-9, '-' and '.'"));
    }
  }
  if (o.region.empty()) return bad("region", "must not be empty");
  for (char c : o.region) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return bad("region", absl::StrCat("\"", o.region, "\" may hold only a-z, 0-9 and '-'"));
    }
  }
  for (char c : o.key_prefix) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '.' ||
          c == '_' || c == '-')) {
      return bad("key_prefix", absl::StrCat("\"", o.key_prefix, "\" may hold only A-Z a-z 0-9 / . _ -"));
    }
  }
  if (absl::StartsWith(o.key_prefix, "/")) return bad("key_prefix", "must not start with '/'");
  if (o.access_key_id.empty()) return bad("access_key_id", "is empty (set AWS_ACCESS_KEY_ID)");
  if (o.secret_access_key.empty()) return bad("secret_access_key", "is empty (set AWS_SECRET_ACCESS_KEY)");
  if (o.part_size_bytes < (int64_t{5} << 20)) return bad("part_size_bytes", "must be at least 5 MiB (S3's minimum)");
  if (o.part_size_bytes > (int64_t{5} << 30)) return bad("part_size_bytes", "must be at most 5 GiB (S3's maximum)");
  if (o.multipart_threshold_bytes < o.part_size_bytes) {
    return bad("multipart_threshold_bytes", "must be at least part_size_bytes");
  }
  if (o.max_attempts < 1) return bad("max_attempts", "must be at least 1");
  if (o.initial_backoff_ms < 0 || o.max_backoff_ms < o.initial_backoff_ms) {
    return bad("initial_backoff_ms", "must be >= 0 and <= max_backoff_ms");
  }
  if (o.connect_timeout_ms <= 0 || o.request_timeout_ms <= 0) return bad("request_timeout_ms", "must be positive");
  return absl::OkStatus();
}

absl::Status LoadS3CredentialsFromEnv(S3Options& o) {
  const char* id = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  if (id == nullptr || *id == '\0') {
    return absl::InvalidArgumentError("the S3 object store needs AWS_ACCESS_KEY_ID in the environment");
  }
  if (secret == nullptr || *secret == '\0') {
    return absl::InvalidArgumentError("the S3 object store needs AWS_SECRET_ACCESS_KEY in the environment");
  }
  o.access_key_id = id;
  o.secret_access_key = secret;
  if (const char* token = std::getenv("AWS_SESSION_TOKEN"); token != nullptr) o.session_token = token;
  return absl::OkStatus();
}

}  // namespace squeeze::store
