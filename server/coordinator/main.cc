// squeeze-coordinator: accepts compression jobs over gRPC, keeps them in SQLite
// and leases them to squeeze-worker processes.
//
//   squeeze-coordinator --listen 127.0.0.1:50051 --data-dir ./squeeze-data
//
// SIGTERM / SIGINT: stop accepting, end streams (clients resume), exit 0.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <algorithm>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "server/auth/grpc_auth.h"
#include "server/coordinator/coordinator.h"
#include "proto/limits.h"
#include "server/coordinator/recipe_check.h"
#include "server/coordinator/service_impl.h"
#include "server/grpcweb/gateway.h"
#include "server/coordinator/verify.h"
#include "server/http/metrics_endpoint.h"
#include "server/metrics/process_metrics.h"
#include "server/objectstore/local_object_store.h"
#include "server/objectstore/open_object_store.h"
#include "workers/engine/core/file_util.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "address to listen on (host:port; port 0 picks a free one)");
ABSL_FLAG(std::string, data_dir, "squeeze-data", "directory for jobs.db and the object store");
ABSL_FLAG(int64_t, lease_ttl_ms, 30000, "a worker lease expires when not renewed within this (ms)");
ABSL_FLAG(int64_t, forget_worker_ms, 600000,
          "forget a worker holding no lease and not seen for this long (ms; it registers again if it comes back); "
          "at least the 30000 ms lease long-poll cap + --lease-ttl-ms");
ABSL_FLAG(int32_t, max_attempts, 3, "leases per job before it fails");
ABSL_FLAG(int64_t, max_upload_bytes, int64_t{64} << 30,
          "largest UploadModel accepted (sum of file sizes, bytes); larger ones fail with RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, store_max_bytes, 0,
          "quota on the object store's bytes (stored plus uploads in progress); an upload that would cross it "
          "fails with RESOURCE_EXHAUSTED and stores nothing; 0 = no quota");
ABSL_FLAG(bool, verify, false,
          "check --data-dir offline (SQLite integrity_check, event sequences, every blob's sha256, every "
          "manifest's files) and exit: 0 sound, 1 problems found, 2 cannot check");
ABSL_FLAG(std::string, object_store, "local",
          "where blobs live: local (<data-dir>/objects) or s3 (--s3-*; credentials from AWS_ACCESS_KEY_ID / "
          "AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN in the environment, never from flags)");
ABSL_FLAG(std::string, s3_endpoint, "", "S3 endpoint URL, e.g. https://s3.eu-west-1.amazonaws.com (path-style)");
ABSL_FLAG(std::string, s3_bucket, "", "S3 bucket (must exist)");
ABSL_FLAG(std::string, s3_region, "us-east-1", "S3 region used in the SigV4 signature");
ABSL_FLAG(std::string, s3_prefix, "blobs/", "S3 key prefix: blob <sha256> is object <prefix><sha256>");
ABSL_FLAG(int64_t, s3_part_size_mib, 16, "S3 multipart part size (MiB, >= 5)");
ABSL_FLAG(int64_t, s3_multipart_threshold_mib, 64, "S3: blobs larger than this (MiB) go up as multipart uploads");
ABSL_FLAG(std::string, port_file, "", "write the bound port here once serving (for tests)");
ABSL_FLAG(std::string, metrics_listen, "",
          "serve Prometheus metrics at http://ADDR/metrics (host:port; port 0 picks a free one); empty = off");
ABSL_FLAG(std::string, metrics_port_file, "", "write the bound metrics port here once serving (for tests)");
ABSL_FLAG(std::string, grpc_web_listen, "",
          "serve gRPC-web (HTTP/1.1, binary and -text) on ADDR (host:port; port 0 picks a free one); empty = off");
ABSL_FLAG(std::string, grpc_web_port_file, "", "write the bound gRPC-web port here once serving (for tests)");
ABSL_FLAG(std::string, grpc_web_allow_origin, "",
          "CORS: an origin (scheme://host[:port], or *) allowed to call the gRPC-web port; repeatable and/or "
          "comma-separated; same-origin calls are always allowed");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM server certificate (chain): TLS on every listener (gRPC, gRPC-web, metrics); needs --tls-key; "
          "empty = plaintext");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA that signs worker client certificates (mTLS): WorkerService then refuses peers without a "
          "verified one; users still connect without one and authenticate with tokens");
ABSL_FLAG(std::string, auth_config, "",
          "YAML file of tenants, their bearer tokens' sha256 digests and limits (server/auth/auth_config.h); "
          "every CompressionService call then needs 'authorization: Bearer <token>' and a tenant sees only its "
          "own jobs and blobs; needs --tls-client-ca (workers authenticate with certificates); empty = one "
          "implicit tenant, no tokens");
ABSL_FLAG(std::string, grpc_web_allow_host, "",
          "Host header values (host or host:port; repeatable and/or comma-separated) the gRPC-web port answers "
          "to; others get 403 (DNS rebinding defence); empty = any");
ABSL_FLAG(std::string, dashboard_dir, "",
          "serve the dashboard's built bundle (client/web/dist) on the gRPC-web port: GET / and its files");

namespace {

// Accept --flag-name as well as absl's --flag_name spelling.
std::vector<char*> DashesToUnderscores(int argc, char** argv, std::vector<std::string>& storage) {
  storage.assign(argv, argv + argc);
  std::vector<char*> out;
  for (std::string& a : storage) {
    if (a.rfind("--", 0) == 0) {
      const size_t end = std::min(a.find('='), a.size());
      for (size_t i = 2; i < end; ++i) {
        if (a[i] == '-') a[i] = '_';
      }
    }
    out.push_back(a.data());
  }
  return out;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "squeeze-coordinator: %s\n", what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("squeeze-coordinator --listen ADDR --data-dir DIR [--lease-ttl-ms N]");
  std::vector<std::string> arg_storage;
  std::vector<char*> args = DashesToUnderscores(argc, argv, arg_storage);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  using namespace squeeze;

  // Block the stop signals in every thread; a dedicated thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (absl::GetFlag(FLAGS_verify)) {
    // --verify checks <data-dir>/objects; against an S3 store it would report
    // every job's blobs missing, so it refuses instead.
    if (absl::GetFlag(FLAGS_object_store) != "local") {
      return Fail("--verify checks the local object store only; --object-store " +
                  absl::GetFlag(FLAGS_object_store) + " is not supported");
    }
    absl::StatusOr<server::DataDirReport> report = server::VerifyDataDir(data_dir);
    if (!report.ok()) return Fail(absl::StrCat("--verify: ", report.status().message()));
    std::fputs(report->Summary().c_str(), stdout);
    return report->ok() ? 0 : 1;
  }
  {
    // Timing flags refused before anything is created (Open checks again).
    server::CoordinatorOptions timing;
    timing.lease_ttl_ms = absl::GetFlag(FLAGS_lease_ttl_ms);
    timing.forget_worker_ms = absl::GetFlag(FLAGS_forget_worker_ms);
    timing.default_max_attempts = absl::GetFlag(FLAGS_max_attempts);
    if (absl::Status s = server::CheckCoordinatorOptions(timing); !s.ok()) return Fail(std::string(s.message()));
  }
  if (absl::Status s = MakeDirs(data_dir); !s.ok()) return Fail(std::string(s.message()));
  store::LocalStoreOptions store_options;
  store_options.max_bytes = absl::GetFlag(FLAGS_store_max_bytes);
  if (store_options.max_bytes < 0) return Fail("--store-max-bytes must be >= 0 (0 = no quota)");
  // The object store backend: <data-dir>/objects (default) or an S3 bucket.
  store::ObjectStoreConfig store_config;
  store_config.backend = absl::GetFlag(FLAGS_object_store);
  store_config.local_root = data_dir + "/objects";
  store_config.local_max_bytes = store_options.max_bytes;
  store_config.s3.endpoint = absl::GetFlag(FLAGS_s3_endpoint);
  store_config.s3.bucket = absl::GetFlag(FLAGS_s3_bucket);
  store_config.s3.region = absl::GetFlag(FLAGS_s3_region);
  store_config.s3.key_prefix = absl::GetFlag(FLAGS_s3_prefix);
  store_config.s3.part_size_bytes = absl::GetFlag(FLAGS_s3_part_size_mib) << 20;
  store_config.s3.multipart_threshold_bytes = absl::GetFlag(FLAGS_s3_multipart_threshold_mib) << 20;
  auto objects = store::OpenObjectStore(store_config);
  if (!objects.ok()) return Fail(absl::StrCat("--object-store ", store_config.backend, ": ", objects.status().message()));
  std::fprintf(stderr, "squeeze-coordinator: object store %s\n", store::DescribeObjectStore(store_config).c_str());

  server::CoordinatorOptions options;
  options.data_dir = data_dir;
  options.lease_ttl_ms = absl::GetFlag(FLAGS_lease_ttl_ms);
  options.forget_worker_ms = absl::GetFlag(FLAGS_forget_worker_ms);
  options.default_max_attempts = absl::GetFlag(FLAGS_max_attempts);
  options.validate_recipe = server::ValidateRecipe;
  options.validate_recipe_for_model = server::ValidateRecipeForModel;
  options.max_upload_bytes = absl::GetFlag(FLAGS_max_upload_bytes);
  if (options.max_upload_bytes <= 0) return Fail("--max-upload-bytes must be positive");
  // Metrics: the registry outlives the coordinator (its collect hook reads
  // the coordinator) and the HTTP server is destroyed before both.
  metrics::Registry metrics_registry;
  const std::string metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  if (!metrics_listen.empty()) {
    options.metrics = &metrics_registry;
    if (absl::Status s = metrics::AddProcessMetrics(metrics_registry); !s.ok()) return Fail(s.ToString());
  }
  // Security: TLS material (read once; the HTTP listeners get the PEM text),
  // tokens -> tenants. Plaintext and no tokens when no flag is given.
  const std::string tls_cert = absl::GetFlag(FLAGS_tls_cert), tls_key = absl::GetFlag(FLAGS_tls_key);
  const std::string tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  auto grpc_credentials = auth::ServerCredentialsFromFiles(tls_cert, tls_key, tls_client_ca);
  if (!grpc_credentials.ok()) return Fail(std::string(grpc_credentials.status().message()));
  std::string tls_cert_pem, tls_key_pem;
  if (!tls_cert.empty()) {
    auto cert = auth::ReadPemFile(tls_cert, "tls-cert");
    auto key = auth::ReadPemFile(tls_key, "tls-key");
    if (!cert.ok()) return Fail(std::string(cert.status().message()));
    if (!key.ok()) return Fail(std::string(key.status().message()));
    tls_cert_pem = *std::move(cert);
    tls_key_pem = *std::move(key);
  }
  std::unique_ptr<auth::Authenticator> authenticator;
  auth::ServerSecurity security;
  security.require_worker_cert = !tls_client_ca.empty();
  if (const std::string path = absl::GetFlag(FLAGS_auth_config); !path.empty()) {
    if (tls_client_ca.empty()) {
      return Fail("--auth-config needs --tls-client-ca (with --tls-cert/--tls-key): workers authenticate with "
                  "client certificates, users with tokens");
    }
    absl::StatusOr<auth::AuthConfig> config = auth::AuthConfig::Load(path);
    if (!config.ok()) return Fail(absl::StrCat("--auth-config: ", config.status().message()));
    const size_t tenants = config->tenants.size();
    authenticator = std::make_unique<auth::Authenticator>(*std::move(config), [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now().time_since_epoch()).count();
    });
    if (!metrics_listen.empty()) {
      if (absl::Status s = authenticator->AddMetrics(metrics_registry); !s.ok()) return Fail(s.ToString());
    }
    security.authenticator = authenticator.get();
    std::fprintf(stderr, "squeeze-coordinator: auth: %zu tenants from %s\n", tenants, path.c_str());
  }
  auto coordinator = server::Coordinator::Open(options, *std::move(objects));
  if (!coordinator.ok()) return Fail(coordinator.status().ToString());
  std::unique_ptr<http::Server> metrics_server;
  if (!metrics_listen.empty()) {
    auto started = http::StartMetricsServer(metrics_listen, metrics_registry, tls_cert_pem, tls_key_pem);
    if (!started.ok()) return Fail(absl::StrCat("--metrics-listen: ", started.status().message()));
    metrics_server = *std::move(started);
    std::fprintf(stderr, "squeeze-coordinator: metrics on port %d (GET /metrics)\n", metrics_server->port());
    if (const std::string pf = absl::GetFlag(FLAGS_metrics_port_file); !pf.empty()) {
      if (absl::Status s = WriteFileAtomically(pf, absl::StrCat(metrics_server->port(), "\n")); !s.ok()) {
        return Fail(std::string(s.message()));
      }
    }
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  server::CompressionServiceImpl api((*coordinator).get(), &security);
  server::WorkerServiceImpl workers((*coordinator).get(), &security);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), *grpc_credentials, &port);
  builder.SetMaxReceiveMessageSize(api::kMaxMessageBytes);
  builder.SetMaxSendMessageSize(api::kMaxMessageBytes);
  // Long-polls and watches each hold a thread: allow plenty.
  grpc::ResourceQuota quota("squeeze-coordinator");
  quota.SetMaxThreads(2048);
  builder.SetResourceQuota(quota);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 4);
  builder.RegisterService(&api);
  builder.RegisterService(&workers);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail(absl::StrCat("cannot listen on ", absl::GetFlag(FLAGS_listen)));
  std::fprintf(stderr, "squeeze-coordinator: serving on port %d (%s), data in %s, lease TTL %lld ms\n", port,
               tls_cert.empty() ? "plaintext" : (tls_client_ca.empty() ? "TLS" : "TLS, worker mTLS"),
               data_dir.c_str(), static_cast<long long>(options.lease_ttl_ms));
  if (const std::string pf = absl::GetFlag(FLAGS_port_file); !pf.empty()) {
    if (absl::Status s = WriteFileAtomically(pf, absl::StrCat(port, "\n")); !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }

  // gRPC-web: a second port whose calls run on this very server (in process).
  std::unique_ptr<grpcweb::Gateway> grpc_web;
  if (const std::string web_listen = absl::GetFlag(FLAGS_grpc_web_listen); !web_listen.empty()) {
    grpcweb::GatewayOptions web;
    web.listen = web_listen;
    web.allowed_origins = grpcweb::RepeatedFlagValues(arg_storage, "grpc_web_allow_origin");
    web.dashboard_dir = absl::GetFlag(FLAGS_dashboard_dir);
    web.allowed_hosts = grpcweb::RepeatedFlagValues(arg_storage, "grpc_web_allow_host");
    web.tls_cert_pem = tls_cert_pem;
    web.tls_key_pem = tls_key_pem;
    grpc::ChannelArguments channel_args;
    channel_args.SetMaxReceiveMessageSize(api::kMaxMessageBytes);
    channel_args.SetMaxSendMessageSize(api::kMaxMessageBytes);
    auto started = grpcweb::Gateway::Start(web, server->InProcessChannel(channel_args));
    if (!started.ok()) return Fail(absl::StrCat("--grpc-web-listen: ", started.status().message()));
    grpc_web = *std::move(started);
    std::fprintf(stderr, "squeeze-coordinator: gRPC-web on port %d%s\n", grpc_web->port(),
                 web.dashboard_dir.empty() ? "" : " (dashboard at /)");
    if (const std::string pf = absl::GetFlag(FLAGS_grpc_web_port_file); !pf.empty()) {
      if (absl::Status s = WriteFileAtomically(pf, absl::StrCat(grpc_web->port(), "\n")); !s.ok()) {
        return Fail(std::string(s.message()));
      }
    }
  } else if (!absl::GetFlag(FLAGS_dashboard_dir).empty()) {
    return Fail("--dashboard-dir needs --grpc-web-listen (the dashboard is served on that port)");
  }

  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "squeeze-coordinator: signal %d, shutting down\n", sig);
    if (grpc_web) grpc_web->Stop();  // cancels its calls, so the server's shutdown below has none left
    (*coordinator)->Shutdown();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  });
  server->Wait();
  stopper.join();
  return 0;
}
