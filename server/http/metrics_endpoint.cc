#include "server/http/metrics_endpoint.h"

#include "server/metrics/text_format.h"

namespace squeeze::http {

void AddMetricsRoute(Router& router, const metrics::Registry& registry) {
  router.Handle("GET", "/metrics", [&registry](const Request&) {
    Response r;
    r.headers.emplace_back("Content-Type", metrics::kTextContentType);
    r.body = registry.Render();
    return r;
  });
}

absl::StatusOr<std::unique_ptr<Server>> StartMetricsServer(const std::string& listen,
                                                           const metrics::Registry& registry,
                                                           const std::string& tls_cert_pem,
                                                           const std::string& tls_key_pem) {
  Router router;
  AddMetricsRoute(router, registry);
  ServerOptions options;
  options.listen = listen;
  options.name = "metrics";
  options.max_body_bytes = 64 << 10;  // /metrics takes no body
  options.max_connections = 16;
  options.tls_cert_pem = tls_cert_pem;
  options.tls_key_pem = tls_key_pem;
  return Server::Start(options, std::move(router));
}

}  // namespace squeeze::http
