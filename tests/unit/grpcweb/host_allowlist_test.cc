// DNS rebinding defence of the gRPC-web port (CorsPolicy::SetHosts): with a
// host allow-list a request whose Host is not listed is refused, and the
// same-origin shortcut (Origin == scheme://Host) counts only for listed hosts;
// on a TLS port same-origin means https.
#include <gtest/gtest.h>

#include <string>

#include "server/grpcweb/cors.h"

namespace squeeze::grpcweb {
namespace {

http::Request Req(http::KeyValues headers) {
  http::Request r;
  r.method = "POST";
  r.path = "/squeeze.v1.CompressionService/ListJobs";
  r.headers = std::move(headers);
  return r;
}

TEST(HostAllowList, WithoutAListAnyHostPassesAndSameOriginTrustsHost) {
  auto p = CorsPolicy::Parse({});
  ASSERT_TRUE(p.ok());
  // The rebinding hazard this list exists for: evil.example resolving to us.
  const http::Request rebound = Req({{"host", "evil.example"}, {"origin", "http://evil.example"}});
  EXPECT_TRUE(p->HostAllowed(rebound));
  EXPECT_TRUE(p->Allows(rebound));
}

TEST(HostAllowList, UnlistedHostsAreRefusedAndSameOriginNeedsAListedHost) {
  auto p = CorsPolicy::Parse({});
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->SetHosts({"127.0.0.1:8080, dash.example:8080", "LOCALHOST:8080"}, /*https=*/false).ok());
  const http::Request rebound = Req({{"host", "evil.example"}, {"origin", "http://evil.example"}});
  EXPECT_FALSE(p->HostAllowed(rebound));
  EXPECT_FALSE(p->Allows(rebound));
  EXPECT_FALSE(p->HostAllowed(Req({{"host", "127.0.0.1:8081"}})));
  EXPECT_FALSE(p->HostAllowed(Req({})));  // no Host at all
  const http::Request own = Req({{"host", "Dash.Example:8080"}, {"origin", "http://dash.example:8080"}});
  EXPECT_TRUE(p->HostAllowed(own));
  EXPECT_TRUE(p->Allows(own));
  EXPECT_TRUE(p->HostAllowed(Req({{"host", "localhost:8080"}})));
  // A listed Host but a foreign Origin is still cross-origin: refused.
  EXPECT_FALSE(p->Allows(Req({{"host", "127.0.0.1:8080"}, {"origin", "http://evil.example"}})));
}

TEST(HostAllowList, TlsPortsCompareHttpsOrigins) {
  auto p = CorsPolicy::Parse({});
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->SetHosts({"dash.example"}, /*https=*/true).ok());
  EXPECT_TRUE(p->Allows(Req({{"host", "dash.example"}, {"origin", "https://dash.example"}})));
  EXPECT_FALSE(p->Allows(Req({{"host", "dash.example"}, {"origin", "http://dash.example"}})));
}

TEST(HostAllowList, MalformedEntriesAreRefusedNamingTheFlag) {
  auto p = CorsPolicy::Parse({});
  ASSERT_TRUE(p.ok());
  for (const char* bad : {"http://x.example", "a b", "x.example/path", "user@x"}) {
    absl::Status s = p->SetHosts({bad}, false);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.message().find("--grpc-web-allow-host"), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace squeeze::grpcweb
