// The coordinator's gRPC-web gateway: an HTTP/1.1 port (server/http) that
// answers gRPC-web calls (binary and -text, unary and server streaming) by
// forwarding the raw message bytes to the coordinator's own grpc::Server over
// an in-process channel (upstream_call.h), so every method, status code and
// metadata (authorization, ...) behaves exactly as for a native gRPC client.
//
// Per call (POST /package.Service/Method):
//   - CORS (cors.h): a disallowed Origin gets 403; OPTIONS is the preflight.
//   - Content-Type must be application/grpc-web[-text][+proto] (else 415);
//     the body's frames (grpc_web_frame.h) become the request messages (a
//     malformed body gets 400 with grpc-status 3 and the reason).
//   - Request headers become metadata, except HTTP/CORS/browser ones;
//     grpc-timeout becomes the deadline; -bin values are base64-decoded.
//   - The response is 200 once the first message (or the end) arrives:
//     server initial metadata as headers, one data frame per message (a
//     streaming method flushes each as it arrives), then the trailer frame
//     with grpc-status / grpc-message and trailing metadata. In -text mode each
//     flushed piece is base64 on its own (padded).
//   - A client that hangs up, or Stop(), cancels the upstream call within
//     about `poll_interval`.
// Optionally serves the dashboard's static bundle (static_files.h) on GET.
//
// Security note: calls arrive over grpc::Server::InProcessChannel, which does
// not pass through the listening port's ServerCredentials; checks bound to
// those (an AuthMetadataProcessor) would not see them. Authentication must read
// the forwarded metadata in the service or a server interceptor, where native
// and gRPC-web calls look the same.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "server/grpcweb/cors.h"
#include "server/grpcweb/grpc_web_frame.h"
#include "server/http/http_server.h"

namespace squeeze::grpcweb {

struct GatewayOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 lets the kernel pick
  std::vector<std::string> allowed_origins;  // flag values (cors.h); empty = same-origin only
  // Services exposed, by full name; their methods are looked up in the
  // generated descriptor pool (the binary must link their generated code).
  std::vector<std::string> services = {"squeeze.v1.CompressionService"};
  std::string dashboard_dir;  // "" = no static files
  // Host header values answered (cors.h SetHosts); empty = any. A call or
  // preflight with another Host gets 403 (DNS rebinding defence).
  std::vector<std::string> allowed_hosts;
  // HTTPS: PEM text of the certificate (chain) and key; both empty = HTTP.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  int64_t max_body_bytes = 24 << 20;  // a 16 MiB message base64-encoded fits
  int max_connections = 256;
  std::chrono::milliseconds poll_interval{100};  // how often a waiting call checks for hang-up/stop
};

class Gateway {
 public:
  // Starts serving. `upstream` is a channel to the gRPC server (normally
  // grpc::Server::InProcessChannel); it must accept messages of the sizes the
  // services use.
  static absl::StatusOr<std::unique_ptr<Gateway>> Start(const GatewayOptions& options,
                                                        std::shared_ptr<grpc::Channel> upstream);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  int port() const { return http_->port(); }
  // Cancels every call in progress (streams end with CANCELLED) and stops the
  // HTTP server. Idempotent.
  void Stop();

 private:
  struct Method {
    std::string path;  // "/squeeze.v1.CompressionService/WatchJob"
    bool server_streaming = false;
  };
  Gateway(const GatewayOptions& options, CorsPolicy cors, std::shared_ptr<grpc::Channel> upstream);
  http::Response HandleCall(const Method& method, const http::Request& request);

  GatewayOptions options_;
  CorsPolicy cors_;
  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<http::Server> http_;
};

// Request headers -> call metadata (see the file comment); exposed for tests.
Metadata MetadataFromHeaders(const http::KeyValues& headers);
// "10S", "250m", ... (gRPC over HTTP/2: at most 8 digits, units H M S m u n).
// InvalidArgument for anything else.
absl::StatusOr<std::chrono::nanoseconds> ParseGrpcTimeout(absl::string_view value);

}  // namespace squeeze::grpcweb
