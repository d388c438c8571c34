// How a client (the CLI, squeeze-worker) connects to the coordinator: TLS
// with a CA to verify the server, an optional client certificate (workers,
// mTLS) and an optional bearer token sent as `authorization: Bearer <token>`
// metadata on every call.
// Invariant: the token only ever travels over TLS, unless the caller opted in
// with insecure_send_token (--insecure-send-token): a token without TLS is
// refused (InvalidArgument) before any channel exists, so a mistyped --server
// or a plaintext proxy never sees it.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace squeeze::client {

struct ChannelSecurity {
  std::string ca_file;    // PEM roots for the server certificate; TLS when set
  std::string cert_file;  // PEM client certificate (with key_file); TLS too
  std::string key_file;
  std::string token;      // "" = none
  // Send `token` over a plaintext channel too (tests, a trusted local
  // network). Off: a token without TLS is refused.
  bool insecure_send_token = false;

  bool tls() const { return !ca_file.empty() || !cert_file.empty(); }
  // $SQUEEZE_TLS_CA, $SQUEEZE_TLS_CERT, $SQUEEZE_TLS_KEY, $SQUEEZE_TOKEN, and
  // $SQUEEZE_INSECURE_SEND_TOKEN (set to 1 = insecure_send_token).
  static ChannelSecurity FromEnv();
  // The channel credentials (insecure when !tls()). InvalidArgument naming
  // the option for unreadable / non-PEM files, a cert without its key, or a
  // token without TLS (unless insecure_send_token).
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials() const;
};

// The environment variable behind insecure_send_token ("1" = on).
inline constexpr char kInsecureSendTokenEnv[] = "SQUEEZE_INSECURE_SEND_TOKEN";

// A channel to `address` with `security`'s credentials and token; fails as
// Credentials() does (so a refused token is never sent).
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateSecureChannel(const std::string& address,
                                                                   const ChannelSecurity& security,
                                                                   const grpc::ChannelArguments& args);

}  // namespace squeeze::client
