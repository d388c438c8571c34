// The client side (client/lib/channel_security.h): unusable TLS files are
// refused naming the option, and the bearer token reaches the server as
// `authorization` metadata on every call over a real loopback connection.
#include "client/lib/channel_security.h"

#include <fstream>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "squeeze/v1/service.grpc.pb.h"
#include "tests/common/temp_dirs.h"

namespace squeeze::client {
namespace {

TEST(ChannelSecurity, RefusesUnusableFilesNamingTheOption) {
  const auto dir = test_inputs::EmptyPerTestDir("chansec_");
  const std::string not_pem = (dir / "ca.txt").string();
  std::ofstream(not_pem) << "hello\n";
  ChannelSecurity plain;
  EXPECT_FALSE(plain.tls());
  EXPECT_TRUE(plain.Credentials().ok());

  ChannelSecurity s;
  s.ca_file = (dir / "missing.pem").string();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> c = s.Credentials();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("--tls-ca"), std::string::npos) << c.status();
  s.ca_file = not_pem;
  c = s.Credentials();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("not a PEM file"), std::string::npos) << c.status();

  ChannelSecurity key_only;
  key_only.key_file = not_pem;
  EXPECT_FALSE(key_only.Credentials().ok());
}

// Records the authorization metadata of each GetJob.
class Recorder final : public v1::CompressionService::Service {
 public:
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest*, v1::Job* out) override {
    auto it = ctx->client_metadata().find("authorization");
    out->set_job_id(it == ctx->client_metadata().end() ? "<none>" : std::string(it->second.data(), it->second.size()));
    return grpc::Status::OK;
  }
};

TEST(ChannelSecurity, TokenTravelsAsBearerMetadataOnEveryCall) {
  Recorder service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string address = "127.0.0.1:" + std::to_string(port);

  ChannelSecurity with_token;
  with_token.token = "s3cret";
  auto channel = CreateSecureChannel(address, with_token, grpc::ChannelArguments());
  ASSERT_TRUE(channel.ok()) << channel.status();
  auto stub = v1::CompressionService::NewStub(*channel);
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    v1::Job job;
    ASSERT_TRUE(stub->GetJob(&ctx, v1::GetJobRequest(), &job).ok());
    EXPECT_EQ(job.job_id(), "Bearer s3cret") << i;
  }
  auto bare = CreateSecureChannel(address, ChannelSecurity(), grpc::ChannelArguments());
  ASSERT_TRUE(bare.ok());
  grpc::ClientContext ctx;
  v1::Job job;
  ASSERT_TRUE(v1::CompressionService::NewStub(*bare)->GetJob(&ctx, v1::GetJobRequest(), &job).ok());
  EXPECT_EQ(job.job_id(), "<none>");
  server->Shutdown();
}

}  // namespace
}  // namespace squeeze::client
