// Bearer token -> tenant, plus the tenant's request rate limit. Transport-free:
// the gRPC glue (grpc_auth.h) hands it the `authorization` metadata value.
//
// Tokens are looked up by sha256 (the config holds digests only), so neither
// the plaintext nor a comparison of it against stored secrets happens here.
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/auth/auth_config.h"
#include "server/auth/token_bucket.h"
#include "server/metrics/registry.h"

namespace squeeze::auth {

struct Caller {
  std::string tenant;
  int64_t max_upload_bytes = 0;  // bytes; 0 = the server-wide cap
};

class Authenticator {
 public:
  // `now_ms`: a monotonic clock in ms (tests pass a manual one).
  Authenticator(AuthConfig config, std::function<int64_t()> now_ms);

  // Registers squeeze_auth_requests_total{tenant,result} in `registry`
  // (which must outlive this); optional.
  absl::Status AddMetrics(metrics::Registry& registry);

  // `authorization`: the header / metadata value, "" when absent.
  // Unauthenticated when missing, malformed or unknown (the message never
  // repeats the token); ResourceExhausted when the tenant is over its rate,
  // with *retry_after_ms set (ms until a request would pass).
  absl::StatusOr<Caller> Authenticate(absl::string_view authorization, int64_t* retry_after_ms = nullptr);

  // The sha256 digest of a token, as the config stores it.
  static std::string TokenDigest(absl::string_view token);

 private:
  struct Tenant {
    TenantConfig config;
    std::unique_ptr<TokenBucket> bucket;  // null = unlimited
  };
  void Count(const std::string& tenant, const char* result);

  std::function<int64_t()> now_ms_;
  std::map<std::string, Tenant> tenants_;                       // by name
  std::unordered_map<std::string, std::string> tenant_by_digest_;  // sha256 hex -> name
  std::mutex mu_;                                               // guards the buckets
  metrics::Family<metrics::Counter>* requests_ = nullptr;
};

}  // namespace squeeze::auth
