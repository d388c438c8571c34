// HTTPS options of the HTTP server (ServerOptions::tls_cert_pem / tls_key_pem):
// half a pair or material that is not a certificate is refused at Start and
// nothing listens. The HTTPS round trip itself (a real CA and server
// certificate made with the openssl CLI, curl --cacert, plain HTTP refused)
// is tests/integration/security.
#include <gtest/gtest.h>

#include "server/http/http_server.h"

namespace squeeze::http {
namespace {

TEST(HttpsOptions, HalfAPairIsRefusedNamingTheServer) {
  ServerOptions o;
  o.name = "metrics";
  o.tls_cert_pem = "-----BEGIN CERTIFICATE-----\n";
  absl::StatusOr<std::unique_ptr<Server>> s = Server::Start(o, Router());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("metrics: TLS needs both a certificate and a key"), std::string::npos)
      << s.status();
  o.tls_cert_pem.clear();
  o.tls_key_pem = "-----BEGIN PRIVATE KEY-----\n";
  EXPECT_FALSE(Server::Start(o, Router()).ok());
}

TEST(HttpsOptions, GarbageCertificateFailsToStart) {
  ServerOptions o;
  o.tls_cert_pem = "not a certificate";
  o.tls_key_pem = "not a key";
  absl::StatusOr<std::unique_ptr<Server>> s = Server::Start(o, Router());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("failed to start"), std::string::npos) << s.status();
}

TEST(HttpsOptions, PlainHttpStaysTheDefault) {
  absl::StatusOr<std::unique_ptr<Server>> s = Server::Start(ServerOptions(), Router());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE((*s)->tls());
  EXPECT_GT((*s)->port(), 0);
}

}  // namespace
}  // namespace squeeze::http
