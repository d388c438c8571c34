// squeeze-worker's Prometheus metrics (names under squeeze_worker_):
//   squeeze_worker_stage_seconds{stage}              wall time per stage (histogram)
//   squeeze_worker_stage_cpu_seconds_total{stage}    CPU time per stage (getrusage)
//   squeeze_worker_stage_gpu_seconds_total{stage}    GPU time per stage: the growth
//                                                    of the engine's ProcessGpuSeconds()
//                                                    (engine/device/device.h; GPTQ on a
//                                                    cuda device), 0 on the CPU
//   squeeze_worker_tasks_total{outcome}              leases ended: succeeded, failed,
//                                                    cancelled, released, lost
//   squeeze_worker_busy                              1 while a task runs
// Stages: "fetch" (inputs), the runner's phases as its progress events name
// them ("load", "eval", each recipe stage, "save"), "upload" (the artifact).
// The runner reports a layer when it is done, so a runner stage is taken to
// span from the last event of the stage before it to its own last event (the
// first layer's time belongs to the stage that computed it).
// CPU time is the whole process's (RUSAGE_SELF) between stage boundaries; the
// worker runs one task at a time, so it is that task's (plus the small
// heartbeat and /metrics threads). Recipe stage names are user input: after
// kMaxStages distinct names, further ones are counted as "other".
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "server/metrics/registry.h"

namespace squeeze::worker {

class WorkerMetrics {
 public:
  static constexpr int kMaxStages = 32;
  static absl::StatusOr<std::unique_ptr<WorkerMetrics>> Create(metrics::Registry& registry);

  // A stage the worker itself drives ("fetch", "upload"): ends the current
  // stage now and starts `stage` now. Thread-safe (all of these are).
  void EnterStage(const std::string& stage);
  // A runner progress event of `stage` (the rule above).
  void OnProgress(const std::string& stage);
  // Ends the current stage now, if any.
  void EndStage();
  void TaskStarted();
  // "succeeded", "failed", "cancelled", "released" or "lost"; ends the stage.
  void TaskEnded(const char* outcome);

 private:
  WorkerMetrics() = default;
  struct Mark {
    std::chrono::steady_clock::time_point wall;
    double cpu = 0;
    double gpu = 0;  // ProcessGpuSeconds()
  };
  static Mark Now();
  // Observes the current stage as [start_, end] and clears it.
  void EndStageLocked(const Mark& end);
  std::string LabelFor(const std::string& stage);

  metrics::Family<metrics::Histogram>* stage_seconds_ = nullptr;
  metrics::Family<metrics::Counter>* stage_cpu_ = nullptr;
  metrics::Family<metrics::Counter>* stage_gpu_ = nullptr;
  metrics::Family<metrics::Counter>* tasks_ = nullptr;
  metrics::Family<metrics::Gauge>* busy_ = nullptr;

  std::mutex mu_;
  std::string stage_;  // "" = none
  bool driven_ = false;  // stage_ came from EnterStage
  Mark start_, last_;    // stage start; its latest event
  std::set<std::string> seen_;
};

}  // namespace squeeze::worker
