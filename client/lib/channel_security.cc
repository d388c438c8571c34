#include "client/lib/channel_security.h"

#include <cstdlib>
#include <fstream>
#include <vector>

#include <grpcpp/support/client_interceptor.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace squeeze::client {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": cannot open"));
  std::string text(1 << 20 | 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > (1u << 20) || !absl::StrContains(text, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": not a PEM file"));
  }
  return text;
}

// Adds the bearer token to every call's initial metadata.
class TokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(const std::string* header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", *header_);
    }
    methods->Proceed();
  }

 private:
  const std::string* header_;
};

class TokenInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(const std::string& token) : header_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo*) override {
    return new TokenInterceptor(&header_);
  }

 private:
  std::string header_;  // lives as long as the channel (which owns the factory)
};

}  // namespace

ChannelSecurity ChannelSecurity::FromEnv() {
  ChannelSecurity s;
  s.ca_file = Env("SQUEEZE_TLS_CA");
  s.cert_file = Env("SQUEEZE_TLS_CERT");
  s.key_file = Env("SQUEEZE_TLS_KEY");
  s.token = Env("SQUEEZE_TOKEN");
  s.insecure_send_token = Env(kInsecureSendTokenEnv) == "1";
  return s;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelSecurity::Credentials() const {
  if (!tls()) {
    if (!key_file.empty()) return absl::InvalidArgumentError("--tls-key needs --tls-cert");
    if (!token.empty() && !insecure_send_token) {
      return absl::InvalidArgumentError(
          "--token / $SQUEEZE_TOKEN: refusing to send the bearer token over a plaintext connection; give --tls-ca "
          "(or $SQUEEZE_TLS_CA) to use TLS, or --insecure-send-token to send it in the clear anyway");
    }
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions opts;
  if (!ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(ca_file, "--tls-ca");
    if (!ca.ok()) return ca.status();
    opts.pem_root_certs = *ca;
  }
  if (cert_file.empty() != key_file.empty()) return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  if (!cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadPem(cert_file, "--tls-cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(key_file, "--tls-key");
    if (!key.ok()) return key.status();
    opts.pem_cert_chain = *cert;
    opts.pem_private_key = *key;
  }
  return grpc::SslCredentials(opts);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateSecureChannel(const std::string& address,
                                                                   const ChannelSecurity& security,
                                                                   const grpc::ChannelArguments& args) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = security.Credentials();
  if (!creds.ok()) return creds.status();
  if (security.token.empty()) return grpc::CreateCustomChannel(address, *creds, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<TokenInterceptorFactory>(security.token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, *creds, args, std::move(interceptors));
}

}  // namespace squeeze::client
