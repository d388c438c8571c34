#include "server/grpcweb/cors.h"

#include <gtest/gtest.h>

#include <string>

namespace squeeze::grpcweb {
namespace {

http::Request Req(const std::string& method, http::KeyValues headers) {
  http::Request r;
  r.method = method;
  r.path = "/squeeze.v1.CompressionService/GetJob";
  r.headers = std::move(headers);
  return r;
}

std::string HeaderOf(const http::KeyValues& h, const std::string& name) {
  for (const auto& [k, v] : h) {
    if (k == name) return v;
  }
  return "<absent>";
}

TEST(Cors, ParsesRepeatedAndCommaSeparatedOrigins) {
  auto p = CorsPolicy::Parse({"http://a.example:8080, https://b.example/", "http://127.0.0.1:3000"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->origins(),
            (std::vector<std::string>{"http://a.example:8080", "https://b.example", "http://127.0.0.1:3000"}));
  auto bad = CorsPolicy::Parse({"http://ok.example,a.example"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"a.example\" is not an origin"), std::string::npos) << bad.status();
  EXPECT_FALSE(CorsPolicy::Parse({"http://x.example/path"}).ok());
  EXPECT_TRUE(CorsPolicy::Parse({}).ok());
}

TEST(Cors, NoOriginAndSameOriginAreAllowedOthersOnlyWhenListed) {
  auto p = *CorsPolicy::Parse({"http://app.example"});
  EXPECT_TRUE(p.Allows(Req("POST", {{"host", "127.0.0.1:9"}})));
  EXPECT_TRUE(p.Allows(Req("POST", {{"host", "127.0.0.1:9"}, {"origin", "http://127.0.0.1:9"}})));
  EXPECT_TRUE(p.Allows(Req("POST", {{"host", "127.0.0.1:9"}, {"origin", "http://APP.example"}})));
  EXPECT_FALSE(p.Allows(Req("POST", {{"host", "127.0.0.1:9"}, {"origin", "http://evil.example"}})));
  auto any = *CorsPolicy::Parse({"*"});
  EXPECT_TRUE(any.Allows(Req("POST", {{"host", "127.0.0.1:9"}, {"origin", "http://evil.example"}})));
}

TEST(Cors, AllowedCrossOriginResponseEchoesTheOriginAndExposesGrpcStatus) {
  auto p = *CorsPolicy::Parse({"http://app.example"});
  http::KeyValues h;
  p.AddResponseHeaders(Req("POST", {{"host", "h:1"}, {"origin", "http://app.example"}}), h);
  EXPECT_EQ(HeaderOf(h, "Access-Control-Allow-Origin"), "http://app.example");
  EXPECT_EQ(HeaderOf(h, "Access-Control-Allow-Credentials"), "true");
  EXPECT_NE(HeaderOf(h, "Access-Control-Expose-Headers").find("grpc-status"), std::string::npos);
  EXPECT_NE(HeaderOf(h, "Access-Control-Expose-Headers").find("grpc-message"), std::string::npos);
  http::KeyValues none;
  p.AddResponseHeaders(Req("POST", {{"host", "h:1"}}), none);
  p.AddResponseHeaders(Req("POST", {{"host", "h:1"}, {"origin", "http://evil.example"}}), none);
  EXPECT_TRUE(none.empty());
}

TEST(Cors, WildcardAllowsAnyOriginButNeverWithCredentials) {
  auto any = *CorsPolicy::Parse({"*"});
  http::KeyValues h;
  any.AddResponseHeaders(Req("POST", {{"host", "h:1"}, {"origin", "http://evil.example"}}), h);
  EXPECT_EQ(HeaderOf(h, "Access-Control-Allow-Origin"), "http://evil.example");
  EXPECT_EQ(HeaderOf(h, "Access-Control-Allow-Credentials"), "<absent>");
  const http::Response pre = any.Preflight(Req("OPTIONS", {{"host", "h:1"},
                                                            {"origin", "http://evil.example"},
                                                            {"access-control-request-method", "POST"}}));
  EXPECT_EQ(pre.status, 204);
  EXPECT_EQ(HeaderOf(pre.headers, "Access-Control-Allow-Credentials"), "<absent>");
}

TEST(Cors, PreflightAllowsPostWithTheRequestedHeadersOnlyForAllowedOrigins) {
  auto p = *CorsPolicy::Parse({"http://app.example"});
  http::Response ok = p.Preflight(Req("OPTIONS", {{"host", "h:1"},
                                                  {"origin", "http://app.example"},
                                                  {"access-control-request-method", "POST"},
                                                  {"access-control-request-headers", "content-type,x-grpc-web,authorization"}}));
  EXPECT_EQ(ok.status, 204);
  EXPECT_EQ(HeaderOf(ok.headers, "Access-Control-Allow-Origin"), "http://app.example");
  EXPECT_EQ(HeaderOf(ok.headers, "Access-Control-Allow-Headers"), "content-type,x-grpc-web,authorization");
  EXPECT_EQ(HeaderOf(ok.headers, "Access-Control-Allow-Methods"), "POST, OPTIONS");
  http::Response evil = p.Preflight(Req("OPTIONS", {{"host", "h:1"},
                                                    {"origin", "http://evil.example"},
                                                    {"access-control-request-method", "POST"}}));
  EXPECT_EQ(evil.status, 403);
  EXPECT_EQ(HeaderOf(evil.headers, "Access-Control-Allow-Origin"), "<absent>");
  EXPECT_EQ(p.Preflight(Req("OPTIONS", {{"host", "h:1"},
                                        {"origin", "http://app.example"},
                                        {"access-control-request-method", "DELETE"}}))
                .status,
            403);
  EXPECT_EQ(p.Preflight(Req("OPTIONS", {{"host", "h:1"},
                                        {"origin", "http://app.example"},
                                        {"access-control-request-method", "POST"},
                                        {"access-control-request-headers", "a\r\nb"}}))
                .status,
            403);
}

TEST(Cors, RepeatedFlagValuesCollectsEveryOccurrenceInBothSpellings) {
  const std::vector<std::string> args = {"prog", "--grpc-web-allow-origin=http://a", "--listen", ":0",
                                         "--grpc_web_allow_origin", "http://b,http://c", "--", "--grpc-web-allow-origin=x"};
  EXPECT_EQ(RepeatedFlagValues(args, "grpc_web_allow_origin"),
            (std::vector<std::string>{"http://a", "http://b,http://c"}));
  EXPECT_TRUE(RepeatedFlagValues({"prog", "--grpc-web-allow-origin"}, "grpc_web_allow_origin").empty());
}

}  // namespace
}  // namespace squeeze::grpcweb
