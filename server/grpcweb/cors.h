// CORS for the gRPC-web port (Fetch standard; PROTOCOL-WEB.md "CORS preflight").
//
// Policy: a request without Origin (curl, Node, same-origin GET) is served
// without CORS headers; a same-origin request (Origin equals
// <scheme>://<Host>, scheme https on a TLS port) is allowed; otherwise Origin must be in the allow-list (exact
// "scheme://host[:port]", or "*" for any). An allowed cross-origin request
// gets Access-Control-Allow-Origin echoing its origin (never "*", so
// credentials / Authorization work), Allow-Credentials, Vary: Origin and
// Expose-Headers naming grpc-status, grpc-message and grpc-status-details-bin.
// A preflight (OPTIONS) from an allowed origin for POST is answered 204 with
// the requested headers allowed; anything else gets 403 without CORS headers.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/http/http_server.h"

namespace squeeze::grpcweb {

class CorsPolicy {
 public:
  CorsPolicy() = default;
  // `values`: flag values, each one origin or a comma-separated list. Each
  // origin is "*" or scheme://host[:port] (a trailing '/' is dropped).
  // InvalidArgument naming the value otherwise.
  static absl::StatusOr<CorsPolicy> Parse(const std::vector<std::string>& values);

  const std::vector<std::string>& origins() const { return origins_; }

  // DNS rebinding defence: `hosts` (flag values, each a host or host:port, or
  // comma-separated lists) are the Host header values this port answers to;
  // empty = any (the same-origin shortcut then trusts Host, as before).
  // `https`: same-origin means Origin https://<Host>. InvalidArgument naming
  // a malformed value.
  absl::Status SetHosts(const std::vector<std::string>& hosts, bool https);
  // True when the request's Host is allowed (always, without a host list).
  bool HostAllowed(const http::Request& request) const;

  // True when `request` may be answered: no Origin, same origin, or listed.
  bool Allows(const http::Request& request) const;
  // Adds the CORS response headers for an allowed request with an Origin
  // that is not the server's own (no-op otherwise).
  void AddResponseHeaders(const http::Request& request, http::KeyValues& headers) const;
  // The answer to an OPTIONS preflight.
  http::Response Preflight(const http::Request& request) const;

 private:
  bool Listed(absl::string_view origin) const;
  // True only for an origin named in the list, not one let in by "*": only
  // those get Access-Control-Allow-Credentials (a wildcard that also allowed
  // credentials would let any site make credentialed calls).
  bool NamedExactly(absl::string_view origin) const;
  bool SameOrigin(const http::Request& request, absl::string_view origin) const;
  std::vector<std::string> origins_;
  std::vector<std::string> hosts_;  // lower case; empty = any Host
  std::string scheme_ = "http";
};

// Values of a repeatable flag in `args` (argv after the program name is fine
// too): every "--NAME=V" and "--NAME V" occurrence in order, up to "--".
// `name` is spelled without dashes, e.g. "grpc_web_allow_origin"; '-' and '_'
// in the argument are treated alike.
std::vector<std::string> RepeatedFlagValues(const std::vector<std::string>& args, absl::string_view name);

}  // namespace squeeze::grpcweb
