// The squeeze-worker lease loop: register, long-poll for a task, fetch its
// inputs (cached by digest under the work dir), run the recipe through the
// stage runner while a heartbeat thread renews the lease and forwards
// progress, upload the artifact and complete (or fail, or release).
//
// Layout of the work dir:
//   models/<digest>/        materialized inputs (models, calibration text), by
//                           manifest digest; ".complete" marks a finished copy
//   jobs/<job_id>/work      runner checkpoint of the run (resume)
//   jobs/<job_id>/out       the artifact being written
// Stop (SIGTERM): the runner stops at the next layer boundary and checkpoints,
// the checkpoint is uploaded to the object store and its digest goes with the
// release (no attempt charged); Run() returns kStopped. A task whose lease
// carries a checkpoint_digest gets that checkpoint downloaded into its work
// dir first, whichever worker wrote it; a checkpoint that cannot be fetched or
// used is logged (worker log and job events) and the run starts from zero.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "client/lib/service_client.h"
#include "workers/runner/stage_runner.h"
#include "workers/worker/capabilities.h"
#include "workers/worker/worker_metrics.h"

namespace squeeze::worker {

struct WorkerOptions {
  std::string coordinator;
  std::string work_dir;
  int threads = 0;          // runner threads; 0 = all cores
  bool once = false;        // exit after one task
  int64_t lease_wait_ms = 10'000;
  // Test and demo knob: sleep this long at every layer boundary so that jobs on
  // tiny models last long enough to watch, kill or cancel. 0 in production.
  int64_t pace_ms = 0;
  // How long to keep retrying the coordinator before giving up on a result.
  int64_t result_retry_ms = 120'000;
  // Stage timings and task outcomes go here when set (--metrics-listen); the
  // caller keeps it alive as long as the Worker.
  WorkerMetrics* metrics = nullptr;
  // Where a job's evaluation task names resolve (DIR/NAME.jsonl; --tasks-dir,
  // default $SQUEEZE_TASKS_DIR). Empty: a job that asks for tasks fails.
  std::string tasks_dir;
  // Where GPTQ runs (--device; engine/device/device.h): auto = cuda when the
  // build has CUDA and a device is present, else cpu.
  DeviceRequest device = DeviceRequest::kAuto;
};

class Worker {
 public:
  enum class Exit { kDone, kStopped };
  explicit Worker(WorkerOptions options);
  ~Worker();

  absl::StatusOr<Exit> Run();
  // Async-signal-unsafe; call from a normal thread (main's signal thread).
  void RequestStop();

 private:
  struct TaskOutcome;
  absl::Status Register();
  absl::StatusOr<Exit> RunTask(const v1::Task& task);
  absl::StatusOr<std::string> EnsureTree(const std::string& digest);
  absl::StatusOr<std::string> ModelPath(const std::string& dir);
  absl::StatusOr<std::string> SingleFile(const std::string& dir, const char* what);
  // Downloads task.checkpoint_digest into work_dir (replacing what is there);
  // never fails the task: returns the line to log and report either way.
  std::string FetchCheckpoint(const v1::Task& task, const std::string& job_dir, const std::string& work_dir);
  // Retries `call` while the coordinator is unreachable, up to result_retry_ms.
  absl::Status RetryUnreachable(const std::function<absl::Status()>& call);

  WorkerOptions options_;
  client::ServiceClient client_;
  HostCapabilities caps_;
  std::string worker_id_;
  int64_t heartbeat_interval_ms_ = 1000;

  std::atomic<bool> stop_{false};
  std::mutex mu_;                        // guards the two pointers below
  RunControl* control_ = nullptr;        // the run in progress
  grpc::ClientContext* lease_ctx_ = nullptr;  // the long-poll in progress
};

}  // namespace squeeze::worker
