#include "server/auth/grpc_auth.h"

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace squeeze::auth {

bool PeerHasVerifiedCert(const grpc::ServerContext& ctx) {
  std::shared_ptr<const grpc::AuthContext> ac = ctx.auth_context();
  if (!ac || !ac->IsPeerAuthenticated()) return false;
  // An SSL peer's identity comes from its verified certificate only.
  for (const grpc::string_ref& t : ac->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME)) {
    if (std::string(t.data(), t.size()) == GRPC_SSL_TRANSPORT_SECURITY_TYPE) return true;
  }
  return false;
}

grpc::Status AuthenticateCaller(grpc::ServerContext* ctx, const ServerSecurity* security, Principal* out) {
  *out = Principal{};
  if (security == nullptr || security->authenticator == nullptr) return grpc::Status::OK;
  std::string authorization;
  const auto& md = ctx->client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) {
    authorization.assign(it->second.data(), it->second.size());
  }
  if (authorization.empty() && security->require_worker_cert && PeerHasVerifiedCert(*ctx)) {
    out->kind = Principal::Kind::kWorker;
    return grpc::Status::OK;
  }
  int64_t retry_ms = 0;
  absl::StatusOr<Caller> caller = security->authenticator->Authenticate(authorization, &retry_ms);
  if (!caller.ok()) {
    if (retry_ms > 0) ctx->AddTrailingMetadata("retry-after-ms", absl::StrCat(retry_ms));
    return grpc::Status(static_cast<grpc::StatusCode>(caller.status().code()), std::string(caller.status().message()));
  }
  out->kind = Principal::Kind::kTenant;
  out->tenant = caller->tenant;
  out->max_upload_bytes = caller->max_upload_bytes;
  return grpc::Status::OK;
}

grpc::Status CheckWorkerPeer(const grpc::ServerContext& ctx, const ServerSecurity* security) {
  if (security == nullptr || !security->require_worker_cert) return grpc::Status::OK;
  if (PeerHasVerifiedCert(ctx)) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "WorkerService needs a client certificate signed by the coordinator's --tls-client-ca "
                      "(squeeze-worker --tls-cert/--tls-key)");
}

absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", path, ": cannot open"));
  std::string text(1 << 20 | 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > (1u << 20)) return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", path, ": over 1 MiB"));
  if (!absl::StrContains(text, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", path, ": not a PEM file"));
  }
  return text;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFiles(
    const std::string& cert_file, const std::string& key_file, const std::string& client_ca_file) {
  if (cert_file.empty() && key_file.empty()) {
    if (!client_ca_file.empty()) {
      return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key (mTLS runs over TLS)");
    }
    return grpc::InsecureServerCredentials();
  }
  if (cert_file.empty() || key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  absl::StatusOr<std::string> cert = ReadPemFile(cert_file, "tls-cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPemFile(key_file, "tls-key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions opts(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  opts.pem_key_cert_pairs.push_back({*key, *cert});
  if (!client_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPemFile(client_ca_file, "tls-client-ca");
    if (!ca.ok()) return ca.status();
    opts.pem_root_certs = *ca;
    opts.client_certificate_request = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(opts);
}

}  // namespace squeeze::auth
