// squeeze-worker: pulls compression tasks from a coordinator and runs them.
//
//   squeeze-worker --coordinator localhost:50051 --work-dir /var/lib/squeeze-worker
//
// Exit status: 0 after --once, 143 after SIGTERM/SIGINT (the running task is
// checkpointed at a layer boundary and its lease released), 2 on bad flags or
// an unusable work dir.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>
#include <algorithm>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "client/lib/service_client.h"
#include "server/http/metrics_endpoint.h"
#include "server/metrics/process_metrics.h"
#include "workers/engine/core/allocator_config.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/eval/task_files.h"
#include "workers/worker/worker.h"

ABSL_FLAG(std::string, coordinator, "", "coordinator address (default $SQUEEZE_SERVER or localhost:50051)");
ABSL_FLAG(std::string, work_dir, "squeeze-worker", "cache and scratch directory");
ABSL_FLAG(int32_t, threads, 0, "engine threads (0 = all cores)");
ABSL_FLAG(std::string, device, "auto",
          "where GPTQ runs: auto (cuda when built with CUDA and a GPU is present), cpu, cuda");
ABSL_FLAG(bool, once, false, "exit after one task");
ABSL_FLAG(int64_t, lease_wait_ms, 10000, "long-poll duration for a lease (ms)");
ABSL_FLAG(int64_t, pace_ms, 0, "sleep this long at every layer boundary (tests and demos only)");
ABSL_FLAG(std::string, metrics_listen, "",
          "serve Prometheus metrics at http://ADDR/metrics (host:port; port 0 picks a free one); empty = off");
ABSL_FLAG(std::string, tasks_dir, "",
          "directory of zero-shot task files (NAME.jsonl) that jobs' --tasks name (default $SQUEEZE_TASKS_DIR)");
ABSL_FLAG(std::string, metrics_port_file, "", "write the bound metrics port here once serving (for tests)");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA that verifies the coordinator's certificate: TLS to the coordinator (default $SQUEEZE_TLS_CA; "
          "unset = plaintext)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate presented to the coordinator (mTLS; default $SQUEEZE_TLS_CERT); needs --tls-key");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert (default $SQUEEZE_TLS_KEY)");
ABSL_FLAG(bool, insecure_send_token, false,
          "send $SQUEEZE_TOKEN to the coordinator over plaintext too (default: a token without --tls-ca is "
          "refused; $SQUEEZE_INSECURE_SEND_TOKEN=1)");
ABSL_FLAG(std::string, metrics_tls_cert, "",
          "PEM server certificate for HTTPS on --metrics-listen (with --metrics-tls-key); empty = HTTP");
ABSL_FLAG(std::string, metrics_tls_key, "", "PEM private key of --metrics-tls-cert");

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
}  // namespace

int main(int argc, char** argv) {
  squeeze::ConfigureAllocatorForInference();  // warm heap pages across forward passes
  absl::SetProgramUsageMessage("squeeze-worker --coordinator ADDR --work-dir DIR");
  std::vector<std::string> arg_storage;
  std::vector<char*> args = DashesToUnderscores(argc, argv, arg_storage);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGUSR1);  // sent by main itself to end the signal thread
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // TLS to the coordinator: the flags override $SQUEEZE_TLS_*, which the
  // worker's client reads (client/lib/channel_security.h).
  const std::pair<std::string, const char*> tls_flags[] = {{absl::GetFlag(FLAGS_tls_ca), "SQUEEZE_TLS_CA"},
                                                           {absl::GetFlag(FLAGS_tls_cert), "SQUEEZE_TLS_CERT"},
                                                           {absl::GetFlag(FLAGS_tls_key), "SQUEEZE_TLS_KEY"}};
  for (const auto& [value, env] : tls_flags) {
    if (!value.empty()) setenv(env, value.c_str(), 1);
  }
  if (absl::GetFlag(FLAGS_insecure_send_token)) setenv(squeeze::client::kInsecureSendTokenEnv, "1", 1);
  // Checks the token too: $SQUEEZE_TOKEN without TLS is refused here (exit 2).
  if (auto creds = squeeze::client::ChannelSecurity::FromEnv().Credentials(); !creds.ok()) {
    std::fprintf(stderr, "squeeze-worker: %s\n", std::string(creds.status().message()).c_str());
    return 2;
  }
  squeeze::worker::WorkerOptions options;
  options.coordinator = absl::GetFlag(FLAGS_coordinator);
  if (options.coordinator.empty()) options.coordinator = squeeze::client::DefaultServerAddress();
  options.work_dir = absl::GetFlag(FLAGS_work_dir);
  options.threads = absl::GetFlag(FLAGS_threads);
  {
    auto device = squeeze::ParseDeviceRequest(absl::GetFlag(FLAGS_device), "--device");
    absl::StatusOr<squeeze::Device> usable =
        device.ok() ? squeeze::SelectDevice(*device, "--device") : absl::StatusOr<squeeze::Device>(device.status());
    if (!usable.ok()) {
      std::fprintf(stderr, "squeeze-worker: %s\n", std::string(usable.status().message()).c_str());
      return 2;
    }
    options.device = *device;
    std::fprintf(stderr, "squeeze-worker: device %s: %s (%s)\n", std::string(squeeze::DeviceKindName(usable->kind)).c_str(),
                 usable->description.c_str(), usable->reason.c_str());
  }
  options.once = absl::GetFlag(FLAGS_once);
  options.lease_wait_ms = absl::GetFlag(FLAGS_lease_wait_ms);
  options.pace_ms = absl::GetFlag(FLAGS_pace_ms);
  options.tasks_dir = absl::GetFlag(FLAGS_tasks_dir);
  if (options.tasks_dir.empty()) {
    if (const char* env = std::getenv(squeeze::kTasksDirEnv); env != nullptr) options.tasks_dir = env;
  }
  // Metrics: the registry and WorkerMetrics outlive the worker; the HTTP
  // server is stopped before they go (reverse order of declaration).
  squeeze::metrics::Registry metrics_registry;
  std::unique_ptr<squeeze::worker::WorkerMetrics> worker_metrics;
  std::unique_ptr<squeeze::http::Server> metrics_server;
  if (const std::string listen = absl::GetFlag(FLAGS_metrics_listen); !listen.empty()) {
    const auto fail = [](const absl::Status& s) {
      std::fprintf(stderr, "squeeze-worker: --metrics-listen: %s\n", std::string(s.message()).c_str());
      return 2;
    };
    if (absl::Status s = squeeze::metrics::AddProcessMetrics(metrics_registry); !s.ok()) return fail(s);
    auto wm = squeeze::worker::WorkerMetrics::Create(metrics_registry);
    if (!wm.ok()) return fail(wm.status());
    std::string cert_pem, key_pem;
    const std::string cert_file = absl::GetFlag(FLAGS_metrics_tls_cert), key_file = absl::GetFlag(FLAGS_metrics_tls_key);
    if (!cert_file.empty() || !key_file.empty()) {
      std::string* const outs[] = {&cert_pem, &key_pem};
      const std::string files[] = {cert_file, key_file};
      for (int i = 0; i < 2; ++i) {
        std::ifstream in(files[i], std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        if (!in || text.str().find("-----BEGIN ") == std::string::npos) {
          return fail(absl::InvalidArgumentError(absl::StrCat(i == 0 ? "--metrics-tls-cert " : "--metrics-tls-key ",
                                                              files[i], ": not a readable PEM file")));
        }
        *outs[i] = text.str();
      }
    }
    auto started = squeeze::http::StartMetricsServer(listen, metrics_registry, cert_pem, key_pem);
    if (!started.ok()) return fail(started.status());
    worker_metrics = *std::move(wm);
    options.metrics = worker_metrics.get();
    metrics_server = *std::move(started);
    std::fprintf(stderr, "squeeze-worker: metrics on port %d (GET /metrics)\n", metrics_server->port());
    if (const std::string pf = absl::GetFlag(FLAGS_metrics_port_file); !pf.empty()) {
      if (absl::Status w = squeeze::WriteFileAtomically(pf, absl::StrCat(metrics_server->port(), "\n")); !w.ok()) {
        std::fprintf(stderr, "squeeze-worker: %s\n", std::string(w.message()).c_str());
        return 2;
      }
    }
  }
  squeeze::worker::Worker worker(options);

  std::atomic<bool> signalled{false};
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig == SIGUSR1) return;  // main is done
    signalled = true;
    std::fprintf(stderr, "squeeze-worker: signal %d, stopping at the next layer boundary\n", sig);
    worker.RequestStop();
  });
  auto result = worker.Run();
  if (!signalled) pthread_kill(stopper.native_handle(), SIGUSR1);  // wake it so it can be joined
  stopper.join();
  if (!result.ok()) {
    std::fprintf(stderr, "squeeze-worker: %s\n", result.status().ToString().c_str());
    return 2;
  }
  return signalled ? 143 : 0;
}
