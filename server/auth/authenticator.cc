#include "server/auth/authenticator.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/objectstore/sha256.h"

namespace squeeze::auth {

Authenticator::Authenticator(AuthConfig config, std::function<int64_t()> now_ms) : now_ms_(std::move(now_ms)) {
  const int64_t now = now_ms_();
  for (TenantConfig& t : config.tenants) {
    for (const std::string& d : t.token_sha256) tenant_by_digest_[d] = t.name;
    Tenant entry;
    if (t.requests_per_second > 0) {
      entry.bucket = std::make_unique<TokenBucket>(t.requests_per_second, t.burst, now);
    }
    const std::string name = t.name;
    entry.config = std::move(t);
    tenants_.emplace(name, std::move(entry));
  }
}

absl::Status Authenticator::AddMetrics(metrics::Registry& registry) {
  absl::StatusOr<metrics::Family<metrics::Counter>*> f = registry.AddCounter(
      "squeeze_auth_requests_total",
      "Authenticated API calls by tenant and result (ok, rate_limited; tenant \"\" for unknown tokens).",
      {"tenant", "result"});
  if (!f.ok()) return f.status();
  requests_ = *f;
  return absl::OkStatus();
}

void Authenticator::Count(const std::string& tenant, const char* result) {
  if (requests_ != nullptr) requests_->WithLabels({tenant, result}).Increment();
}

std::string Authenticator::TokenDigest(absl::string_view token) { return store::Sha256Hex(token); }

absl::StatusOr<Caller> Authenticator::Authenticate(absl::string_view authorization, int64_t* retry_after_ms) {
  if (retry_after_ms != nullptr) *retry_after_ms = 0;
  if (authorization.empty()) {
    Count("", "unauthenticated");
    return absl::UnauthenticatedError(
        "missing bearer token: send metadata \"authorization: Bearer <token>\" (squeeze --token / $SQUEEZE_TOKEN)");
  }
  absl::string_view v = absl::StripAsciiWhitespace(authorization);
  if (v.size() < 7 || !absl::StartsWithIgnoreCase(v, "bearer ")) {
    Count("", "unauthenticated");
    return absl::UnauthenticatedError("authorization metadata must be \"Bearer <token>\"");
  }
  absl::string_view token = absl::StripLeadingAsciiWhitespace(v.substr(7));
  if (token.empty()) {
    Count("", "unauthenticated");
    return absl::UnauthenticatedError("empty bearer token");
  }
  auto it = tenant_by_digest_.find(TokenDigest(token));
  if (it == tenant_by_digest_.end()) {
    Count("", "unauthenticated");
    return absl::UnauthenticatedError("unknown bearer token");
  }
  Tenant& t = tenants_.at(it->second);
  if (t.bucket) {
    int64_t wait = 0;
    {
      std::lock_guard<std::mutex> lk(mu_);
      wait = t.bucket->TryTake(now_ms_());
    }
    if (wait > 0) {
      if (retry_after_ms != nullptr) *retry_after_ms = wait;
      Count(t.config.name, "rate_limited");
      return absl::ResourceExhaustedError(absl::StrCat("tenant ", t.config.name, ": request rate limit (",
                                                       t.config.requests_per_second, "/s, burst ",
                                                       t.config.burst, ") exceeded; retry after ", wait, " ms"));
    }
  }
  Count(t.config.name, "ok");
  return Caller{t.config.name, t.config.max_upload_bytes};
}

}  // namespace squeeze::auth
