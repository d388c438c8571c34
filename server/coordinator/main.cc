// squeeze-coordinator: accepts compression jobs over gRPC, keeps them in SQLite
// and leases them to squeeze-worker processes.
//
//   squeeze-coordinator --listen 127.0.0.1:50051 --data-dir ./squeeze-data
//
// SIGTERM / SIGINT: stop accepting, end streams (clients resume), exit 0.
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
#include "server/coordinator/coordinator.h"
#include "proto/limits.h"
#include "server/coordinator/recipe_check.h"
#include "server/coordinator/service_impl.h"
#include "server/http/metrics_endpoint.h"
#include "server/metrics/process_metrics.h"
#include "server/objectstore/local_object_store.h"
#include "workers/engine/core/file_util.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "address to listen on (host:port; port 0 picks a free one)");
ABSL_FLAG(std::string, data_dir, "squeeze-data", "directory for jobs.db and the object store");
ABSL_FLAG(int64_t, lease_ttl_ms, 30000, "a worker lease expires when not renewed within this (ms)");
ABSL_FLAG(int32_t, max_attempts, 3, "leases per job before it fails");
ABSL_FLAG(int64_t, max_upload_bytes, int64_t{64} << 30,
          "largest UploadModel accepted (sum of file sizes, bytes); larger ones fail with RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, port_file, "", "write the bound port here once serving (for tests)");
ABSL_FLAG(std::string, metrics_listen, "",
          "serve Prometheus metrics at http://ADDR/metrics (host:port; port 0 picks a free one); empty = off");
ABSL_FLAG(std::string, metrics_port_file, "", "write the bound metrics port here once serving (for tests)");

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
  if (absl::Status s = MakeDirs(data_dir); !s.ok()) return Fail(std::string(s.message()));
  auto objects = store::LocalObjectStore::Open(data_dir + "/objects");
  if (!objects.ok()) return Fail(std::string(objects.status().message()));

  server::CoordinatorOptions options;
  options.data_dir = data_dir;
  options.lease_ttl_ms = absl::GetFlag(FLAGS_lease_ttl_ms);
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
  auto coordinator = server::Coordinator::Open(options, *std::move(objects));
  if (!coordinator.ok()) return Fail(coordinator.status().ToString());
  std::unique_ptr<http::Server> metrics_server;
  if (!metrics_listen.empty()) {
    auto started = http::StartMetricsServer(metrics_listen, metrics_registry);
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
  server::CompressionServiceImpl api((*coordinator).get());
  server::WorkerServiceImpl workers((*coordinator).get());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
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
  std::fprintf(stderr, "squeeze-coordinator: serving on port %d, data in %s, lease TTL %lld ms\n", port,
               data_dir.c_str(), static_cast<long long>(options.lease_ttl_ms));
  if (const std::string pf = absl::GetFlag(FLAGS_port_file); !pf.empty()) {
    if (absl::Status s = WriteFileAtomically(pf, absl::StrCat(port, "\n")); !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }

  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "squeeze-coordinator: signal %d, shutting down\n", sig);
    (*coordinator)->Shutdown();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  });
  server->Wait();
  stopper.join();
  return 0;
}
