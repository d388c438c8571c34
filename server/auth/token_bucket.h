// A token bucket rate limiter on a caller-supplied monotonic clock (ms), so
// tests drive it with a manual clock. Not thread-safe (Authenticator locks).
//
// Invariants: 0 <= tokens <= burst; tokens refill at rate_per_s, continuously;
// a clock that goes backwards refills nothing. The bucket starts full.
#pragma once

#include <cstdint>

namespace squeeze::auth {

class TokenBucket {
 public:
  // rate_per_s > 0, burst >= 1 (requests).
  TokenBucket(double rate_per_s, double burst, int64_t now_ms);

  // Takes one token at `now_ms`: returns 0 when taken, else the whole number
  // of ms (>= 1) after which one will be available (nothing taken).
  int64_t TryTake(int64_t now_ms);
  double tokens() const { return tokens_; }

 private:
  void Refill(int64_t now_ms);
  double rate_per_ms_;
  double burst_;
  double tokens_;
  int64_t last_ms_;
};

}  // namespace squeeze::auth
