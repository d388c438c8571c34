// The client side (client/lib/channel_security.h): unusable TLS files are
// refused naming the option; the bearer token reaches the server as
// `authorization` metadata on every call over a real TLS loopback connection
// (a CA and server certificate made here with the openssl CLI); and a token
// is never sent over plaintext unless the caller opted in
// (insecure_send_token / --insecure-send-token).
#include "client/lib/channel_security.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <grpcpp/grpcpp.h>

#include "client/lib/service_client.h"
#include "gtest/gtest.h"
#include "squeeze/v1/service.grpc.pb.h"
#include "tests/common/temp_dirs.h"

namespace squeeze::client {
namespace {
namespace fs = std::filesystem;

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

// Records the authorization metadata of each GetJob and counts the calls.
class Recorder final : public v1::CompressionService::Service {
 public:
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest*, v1::Job* out) override {
    ++calls;
    auto it = ctx->client_metadata().find("authorization");
    out->set_job_id(it == ctx->client_metadata().end() ? "<none>" : std::string(it->second.data(), it->second.size()));
    return grpc::Status::OK;
  }
  std::atomic<int> calls{0};
};

struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

RunningServer Serve(Recorder& service, std::shared_ptr<grpc::ServerCredentials> creds) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", std::move(creds), &port);
  builder.RegisterService(&service);
  RunningServer out{builder.BuildAndStart(), ""};
  out.address = "127.0.0.1:" + std::to_string(port);
  return out;
}

std::string ReadText(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A CA and a server certificate for 127.0.0.1 signed by it (P-256 keys: fast
// to make), written under `dir` with the openssl CLI; false when openssl is
// missing or failed (the log is dir/openssl.txt).
bool MakeServerCertificate(const fs::path& dir) {
  if (std::system("command -v openssl >/dev/null 2>&1") != 0) return false;
  std::ofstream(dir / "server.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
  const std::string d = dir.string();
  const std::string log = " >>" + d + "/openssl.txt 2>&1";
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string cmds[] = {
      "openssl req -x509" + ec + " -days 2 -subj /CN=chansec-test-ca -keyout " + d + "/ca.key -out " + d + "/ca.pem",
      "openssl req" + ec + " -subj /CN=127.0.0.1 -keyout " + d + "/server.key -out " + d + "/server.csr",
      "openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.pem -CAkey " + d + "/ca.key -CAcreateserial " +
          "-days 2 -extfile " + d + "/server.ext -out " + d + "/server.pem"};
  for (const std::string& cmd : cmds) {
    if (std::system((cmd + log).c_str()) != 0) return false;
  }
  return true;
}

TEST(ChannelSecurity, TokenTravelsAsBearerMetadataOnEveryCallOverTls) {
  const auto dir = test_inputs::EmptyPerTestDir("chansec_tls_");
  if (!MakeServerCertificate(dir)) GTEST_SKIP() << "needs the openssl CLI (scripts/install-deps.sh)";
  grpc::SslServerCredentialsOptions server_opts;
  server_opts.pem_key_cert_pairs.push_back({ReadText(dir / "server.key"), ReadText(dir / "server.pem")});
  Recorder service;
  RunningServer s = Serve(service, grpc::SslServerCredentials(server_opts));
  ASSERT_NE(s.server, nullptr);

  ChannelSecurity with_token;
  with_token.ca_file = (dir / "ca.pem").string();
  with_token.token = "s3cret";
  ASSERT_TRUE(with_token.tls());
  auto channel = CreateSecureChannel(s.address, with_token, grpc::ChannelArguments());
  ASSERT_TRUE(channel.ok()) << channel.status();
  auto stub = v1::CompressionService::NewStub(*channel);
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::Job job;
    const grpc::Status st = stub->GetJob(&ctx, v1::GetJobRequest(), &job);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(job.job_id(), "Bearer s3cret") << i;
  }
  ChannelSecurity bare;
  bare.ca_file = with_token.ca_file;
  auto no_token = CreateSecureChannel(s.address, bare, grpc::ChannelArguments());
  ASSERT_TRUE(no_token.ok());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::Job job;
  ASSERT_TRUE(v1::CompressionService::NewStub(*no_token)->GetJob(&ctx, v1::GetJobRequest(), &job).ok());
  EXPECT_EQ(job.job_id(), "<none>");
  EXPECT_EQ(service.calls.load(), 4);
  s.server->Shutdown();
  fs::remove_all(dir);
}

// A token without TLS would reach whoever listens at --server (a mistyped
// address, a plaintext proxy): refused before any channel exists, and a
// ServiceClient built anyway never delivers it.
TEST(ChannelSecurity, TokenWithoutTlsIsRefusedUnlessOptedIn) {
  Recorder service;
  RunningServer s = Serve(service, grpc::InsecureServerCredentials());
  ASSERT_NE(s.server, nullptr);

  ChannelSecurity plain_token;
  plain_token.token = "s3cret";
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = plain_token.Credentials();
  ASSERT_EQ(creds.status().code(), absl::StatusCode::kInvalidArgument) << creds.status();
  for (const char* part : {"--token", "plaintext", "--tls-ca", "--insecure-send-token"}) {
    EXPECT_NE(creds.status().message().find(part), std::string::npos) << part << ": " << creds.status();
  }
  EXPECT_EQ(creds.status().message().find("s3cret"), std::string::npos);  // never echoed
  EXPECT_FALSE(CreateSecureChannel(s.address, plain_token, grpc::ChannelArguments()).ok());

  ServiceClient client(s.address, plain_token);
  auto ctx = ServiceClient::UnaryContext();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::Job job;
  EXPECT_FALSE(client.api().GetJob(ctx.get(), v1::GetJobRequest(), &job).ok());
  EXPECT_EQ(service.calls.load(), 0);  // nothing reached the plaintext server

  // Opted in: sent in the clear (tests, a trusted network).
  ChannelSecurity opted_in = plain_token;
  opted_in.insecure_send_token = true;
  auto channel = CreateSecureChannel(s.address, opted_in, grpc::ChannelArguments());
  ASSERT_TRUE(channel.ok()) << channel.status();
  grpc::ClientContext ctx2;
  ASSERT_TRUE(v1::CompressionService::NewStub(*channel)->GetJob(&ctx2, v1::GetJobRequest(), &job).ok());
  EXPECT_EQ(job.job_id(), "Bearer s3cret");
  EXPECT_EQ(service.calls.load(), 1);
  // Without a token plaintext stays allowed.
  EXPECT_TRUE(CreateSecureChannel(s.address, ChannelSecurity(), grpc::ChannelArguments()).ok());
  s.server->Shutdown();
}

TEST(ChannelSecurity, FromEnvReadsTheOptIn) {
  const char* old = std::getenv(kInsecureSendTokenEnv);
  const std::string saved = old ? old : "";
  unsetenv(kInsecureSendTokenEnv);
  EXPECT_FALSE(ChannelSecurity::FromEnv().insecure_send_token);
  setenv(kInsecureSendTokenEnv, "1", 1);
  EXPECT_TRUE(ChannelSecurity::FromEnv().insecure_send_token);
  setenv(kInsecureSendTokenEnv, "0", 1);
  EXPECT_FALSE(ChannelSecurity::FromEnv().insecure_send_token);
  if (old) {
    setenv(kInsecureSendTokenEnv, saved.c_str(), 1);
  } else {
    unsetenv(kInsecureSendTokenEnv);
  }
}

}  // namespace
}  // namespace squeeze::client
