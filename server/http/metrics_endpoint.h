// GET /metrics: the registry rendered in the Prometheus text format 0.0.4.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/http/http_server.h"
#include "server/metrics/registry.h"

namespace squeeze::http {

// Adds GET (and HEAD) /metrics serving `registry` (which must outlive the
// server) to `router`.
void AddMetricsRoute(Router& router, const metrics::Registry& registry);

// A server with only /metrics, on `listen` (host:port); the programs' --metrics-listen.
// `tls_cert_pem` / `tls_key_pem`: both set = HTTPS (ServerOptions), both empty = HTTP.
absl::StatusOr<std::unique_ptr<Server>> StartMetricsServer(const std::string& listen,
                                                           const metrics::Registry& registry,
                                                           const std::string& tls_cert_pem = "",
                                                           const std::string& tls_key_pem = "");

}  // namespace squeeze::http
