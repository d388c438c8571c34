// TokenBucket and the Authenticator's rate limit on a manual clock: exact
// refill arithmetic, no wall-clock time.
#include "server/auth/token_bucket.h"

#include "gtest/gtest.h"
#include "server/auth/authenticator.h"
#include "server/objectstore/sha256.h"
#include "tests/common/manual_clock.h"

namespace squeeze::auth {
namespace {

TEST(TokenBucket, BurstThenRefillAtTheRate) {
  test_inputs::ManualClock clock;
  TokenBucket b(/*rate_per_s=*/2, /*burst=*/3, clock.MonotonicMs());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(b.TryTake(clock.MonotonicMs()), 0) << i;
  // Empty: one token takes 500 ms at 2/s.
  EXPECT_EQ(b.TryTake(clock.MonotonicMs()), 500);
  clock.Advance(499);
  EXPECT_EQ(b.TryTake(clock.MonotonicMs()), 1);
  clock.Advance(1);
  EXPECT_EQ(b.TryTake(clock.MonotonicMs()), 0);
  EXPECT_EQ(b.TryTake(clock.MonotonicMs()), 500);
  // A long idle period refills only up to the burst.
  clock.Advance(60'000);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(b.TryTake(clock.MonotonicMs()), 0) << i;
  EXPECT_GT(b.TryTake(clock.MonotonicMs()), 0);
}

TEST(TokenBucket, ClockGoingBackwardsRefillsNothing) {
  TokenBucket b(1, 1, 10'000);
  EXPECT_EQ(b.TryTake(10'000), 0);
  EXPECT_EQ(b.TryTake(5'000), 1000);  // earlier than the last take: no refill, no crash
  EXPECT_EQ(b.TryTake(10'999), 1);
  EXPECT_EQ(b.TryTake(11'000), 0);
}

TEST(TokenBucket, SlowRatesWaitWholeMilliseconds) {
  TokenBucket b(0.1, 1, 0);  // one request per 10 s
  EXPECT_EQ(b.TryTake(0), 0);
  EXPECT_EQ(b.TryTake(0), 10'000);
  EXPECT_EQ(b.TryTake(2'500), 7'500);
}

AuthConfig TwoTenants() {
  AuthConfig c;
  TenantConfig a;
  a.name = "a";
  a.token_sha256 = {store::Sha256Hex("tok-a")};
  a.requests_per_second = 1;
  a.burst = 2;
  TenantConfig b;
  b.name = "b";
  b.token_sha256 = {store::Sha256Hex("tok-b")};
  b.max_upload_bytes = 1234;
  c.tenants = {a, b};
  return c;
}

TEST(Authenticator, MapsTokensToTenantsAndRefusesOthers) {
  test_inputs::ManualClock clock;
  Authenticator auth(TwoTenants(), [&] { return clock.MonotonicMs(); });
  absl::StatusOr<Caller> a = auth.Authenticate("Bearer tok-a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->tenant, "a");
  absl::StatusOr<Caller> b = auth.Authenticate("bearer   tok-b ");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->tenant, "b");
  EXPECT_EQ(b->max_upload_bytes, 1234);
  for (const char* bad : {"", "tok-a", "Basic dG9rLWE=", "Bearer ", "Bearer tok-c", "Bearer tok-a2"}) {
    absl::StatusOr<Caller> c = auth.Authenticate(bad);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated) << bad;
    EXPECT_EQ(c.status().message().find("tok-"), std::string::npos) << "echoed the token: " << c.status();
  }
}

TEST(Authenticator, RateLimitIsPerTenantWithRetryAfter) {
  test_inputs::ManualClock clock;
  metrics::Registry registry;
  Authenticator auth(TwoTenants(), [&] { return clock.MonotonicMs(); });
  ASSERT_TRUE(auth.AddMetrics(registry).ok());
  int64_t retry = -1;
  EXPECT_TRUE(auth.Authenticate("Bearer tok-a", &retry).ok());
  EXPECT_TRUE(auth.Authenticate("Bearer tok-a", &retry).ok());
  EXPECT_EQ(retry, 0);
  absl::StatusOr<Caller> limited = auth.Authenticate("Bearer tok-a", &retry);
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(retry, 1000);
  EXPECT_NE(limited.status().message().find("retry after 1000 ms"), std::string::npos) << limited.status();
  // Tenant b has no limit and is not affected by a's bucket.
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(auth.Authenticate("Bearer tok-b").ok()) << i;
  clock.Advance(1000);
  EXPECT_TRUE(auth.Authenticate("Bearer tok-a", &retry).ok());
  const std::string text = registry.Render();
  EXPECT_NE(text.find("squeeze_auth_requests_total{tenant=\"a\",result=\"ok\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("squeeze_auth_requests_total{tenant=\"a\",result=\"rate_limited\"} 1"), std::string::npos)
      << text;
  EXPECT_NE(text.find("squeeze_auth_requests_total{tenant=\"b\",result=\"ok\"} 50"), std::string::npos) << text;
}

}  // namespace
}  // namespace squeeze::auth
