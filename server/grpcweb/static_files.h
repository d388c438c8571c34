// The dashboard's built bundle (client/web/dist) served on the gRPC-web port:
// every regular file under the directory, read once at start, answered on
// GET/HEAD /<relative path>, and "/" answers index.html. Content-Type comes
// from the extension; responses carry Cache-Control: no-cache and
// X-Content-Type-Options: nosniff.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "server/http/http_server.h"

namespace squeeze::grpcweb {

// Adds the routes to `router`. InvalidArgument naming `dir` when it is not a
// directory, has no index.html, or holds more than `max_total_bytes`.
absl::Status AddStaticFiles(http::Router& router, const std::string& dir, int64_t max_total_bytes = 64 << 20);

// "text/html; charset=utf-8" for "index.html", etc.; application/octet-stream
// for an unknown extension.
std::string ContentTypeForPath(const std::string& path);

}  // namespace squeeze::grpcweb
