// A small HTTP/1.1 server: a Router (exact path + method -> handler, with
// 404 / 405 answers) behind GNU libmicrohttpd, which does the protocol work
// (request parsing, 400 for malformed requests, keep-alive, 100-continue,
// chunked encoding). Serves /metrics in squeeze-coordinator and
// squeeze-worker; the gRPC-web gateway is meant to reuse it (streamed bodies:
// Response::stream).
//
// Threading: one thread per connection (poll based, no FD_SETSIZE limit);
// handlers run on that thread and may be called concurrently with each other.
// Invariants: a request body larger than max_body_bytes is answered 413 and
// never handed to a handler; every response carries Content-Length or is
// chunked; a handler sees its path percent-decoded and header names in lower
// case.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct MHD_Daemon;

namespace squeeze::http {

using KeyValues = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;   // as sent: "GET", "POST", ...
  std::string path;     // percent-decoded, without the query
  std::string version;  // "HTTP/1.1"
  KeyValues headers;    // names lower-cased, in arrival order
  KeyValues query;      // decoded ?a=b&c pairs ("c" has an empty value)
  std::string body;
  // The connection's socket, so a handler streaming a long response can poll
  // it for a hang-up (POLLRDHUP) while it waits; never read, write or close
  // it. -1 when unknown.
  int socket_fd = -1;

  // The first header / query value with this name (headers: any case), or "".
  std::string Header(absl::string_view name) const;
  std::string Query(absl::string_view name) const;
};

// A streamed body: each call returns the next piece, nullopt at the end, or an
// error (the connection is then closed without the final chunk, so the client
// sees a truncated body rather than a complete wrong one). Runs on the
// connection's thread and may block while it waits for data; it should return
// (an error, or the end) within seconds once the server is stopping.
using BodyStream = std::function<absl::StatusOr<std::optional<std::string>>()>;

struct Response {
  int status = 200;
  KeyValues headers;
  std::string body;
  BodyStream stream;  // when set, `body` is ignored and the body is sent chunked

  // `body` with Content-Type text/plain; charset=utf-8.
  static Response Text(int status, std::string body);
};

using Handler = std::function<Response(const Request&)>;

class Router {
 public:
  // `path` is matched exactly; a GET handler also answers HEAD (without body).
  void Handle(const std::string& method, const std::string& path, Handler handler);
  // 404 for an unknown path; 405 with an Allow header when the path exists
  // but not for this method.
  Response Route(const Request& request) const;

 private:
  std::map<std::string, std::map<std::string, Handler>> routes_;  // path -> method -> handler
};

struct ServerOptions {
  std::string listen = "127.0.0.1:0";   // host:port (listen_address.h)
  int64_t max_body_bytes = 16 << 20;    // a larger request body gets 413
  int max_connections = 64;             // more are refused at accept
  int idle_timeout_s = 60;              // a connection silent this long is closed
  std::string name = "http";            // prefix of error log lines
  // HTTPS (TLS by libmicrohttpd's GnuTLS backend): PEM text of the server
  // certificate (chain) and its private key; both empty = plain HTTP.
  std::string tls_cert_pem;
  std::string tls_key_pem;
};

class Server {
 public:
  // Binds, then serves on background threads until Stop() or destruction.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options, Router router);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  bool tls() const { return !options_.tls_cert_pem.empty(); }
  // Stops accepting and joins every connection thread (waits for handlers and
  // streams in progress to return). Idempotent.
  void Stop();

  // libmicrohttpd callbacks (public for the C trampolines only).
  struct Pending;
  const Router& router() const { return router_; }
  const ServerOptions& options() const { return options_; }

 private:
  Server(ServerOptions options, Router router) : options_(std::move(options)), router_(std::move(router)) {}
  ServerOptions options_;
  Router router_;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
};

}  // namespace squeeze::http
