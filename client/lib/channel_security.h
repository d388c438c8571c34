// How a client (the CLI, squeeze-worker) connects to the coordinator: TLS
// with a CA to verify the server, an optional client certificate (workers,
// mTLS) and an optional bearer token sent as `authorization: Bearer <token>`
// metadata on every call (plaintext or TLS).
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

  bool tls() const { return !ca_file.empty() || !cert_file.empty(); }
  // $SQUEEZE_TLS_CA, $SQUEEZE_TLS_CERT, $SQUEEZE_TLS_KEY, $SQUEEZE_TOKEN.
  static ChannelSecurity FromEnv();
  // The channel credentials (insecure when !tls()). InvalidArgument naming
  // the option for unreadable / non-PEM files or a cert without its key.
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials() const;
};

// A channel to `address` with `security`'s credentials and token.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateSecureChannel(const std::string& address,
                                                                   const ChannelSecurity& security,
                                                                   const grpc::ChannelArguments& args);

}  // namespace squeeze::client
