// gRPC side of the coordinator's security (TLS, mTLS for workers, bearer
// tokens -> tenants). Lives in the services, not in port credentials, because
// the gRPC-web gateway forwards over grpc::Server::InProcessChannel, which
// bypasses those: a forwarded call carries the browser's `authorization`
// header as metadata and an unauthenticated (in-process) peer, so it can
// never pass as a worker.
//
// Principals:
//   - no Authenticator (no --auth-config): everyone is the implicit tenant ""
//     and sees everything (the behaviour without security);
//   - `authorization: Bearer <token>` metadata: the token's tenant;
//   - no token, but a client certificate verified against --tls-client-ca:
//     a worker; on CompressionService it may only UploadModel (artifacts,
//     checkpoints) and DownloadArtifact (inputs) for any tenant.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "server/auth/authenticator.h"

namespace squeeze::auth {

struct ServerSecurity {
  Authenticator* authenticator = nullptr;  // null = no tokens, implicit tenant ""
  // WorkerService needs a peer with a verified client certificate (mTLS).
  bool require_worker_cert = false;
};

struct Principal {
  enum class Kind { kImplicit, kTenant, kWorker };
  Kind kind = Kind::kImplicit;
  std::string tenant;            // kTenant only
  int64_t max_upload_bytes = 0;  // kTenant: the tenant's cap (0 = server cap)
  // True when the caller sees only `tenant`'s jobs and blobs.
  bool scoped() const { return kind == Kind::kTenant; }
};

// True when the peer presented a client certificate that the TLS handshake
// verified against the client CA (x509 identity in the auth context).
bool PeerHasVerifiedCert(const grpc::ServerContext& ctx);

// The caller of a CompressionService method. Errors: UNAUTHENTICATED (no /
// bad token), RESOURCE_EXHAUSTED (rate; trailing metadata `retry-after-ms`
// says when to retry). Null `security` = the implicit principal.
grpc::Status AuthenticateCaller(grpc::ServerContext* ctx, const ServerSecurity* security, Principal* out);

// WorkerService: OK without mTLS configured; else the peer must hold a
// verified client certificate (UNAUTHENTICATED otherwise, naming the flag).
grpc::Status CheckWorkerPeer(const grpc::ServerContext& ctx, const ServerSecurity* security);

// Server credentials: TLS with `cert_file`/`key_file` (PEM); with
// `client_ca_file`, client certificates are requested and verified when sent
// (a peer without one still connects, as users authenticate with tokens).
// All empty: insecure. InvalidArgument naming the flag for partial or
// unreadable sets.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFiles(
    const std::string& cert_file, const std::string& key_file, const std::string& client_ca_file);

// Reads a PEM file (at most 1 MiB) that must contain "-----BEGIN"; `flag`
// names the option in errors.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& flag);

}  // namespace squeeze::auth
