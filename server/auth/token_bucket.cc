#include "server/auth/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace squeeze::auth {

TokenBucket::TokenBucket(double rate_per_s, double burst, int64_t now_ms)
    : rate_per_ms_(rate_per_s / 1000.0), burst_(burst), tokens_(burst), last_ms_(now_ms) {}

void TokenBucket::Refill(int64_t now_ms) {
  if (now_ms <= last_ms_) return;  // same instant or a clock step back
  tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_ms - last_ms_) * rate_per_ms_);
  last_ms_ = now_ms;
}

// Refills accumulate rounding error (0.002 * 499 + 0.002 != 1.0 exactly):
// amounts within kEpsilon tokens / ms of a whole count as reached.
constexpr double kEpsilon = 1e-9;

int64_t TokenBucket::TryTake(int64_t now_ms) {
  Refill(now_ms);
  if (tokens_ >= 1.0 - kEpsilon) {
    tokens_ = std::max(0.0, tokens_ - 1.0);
    return 0;
  }
  const double wait = std::ceil((1.0 - tokens_) / rate_per_ms_ - 1e-6);
  return std::max<int64_t>(1, static_cast<int64_t>(wait));
}

}  // namespace squeeze::auth
