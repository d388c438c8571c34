#include "workers/worker/worker_metrics.h"

#include <algorithm>

#include "server/metrics/process_metrics.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/device/device.h"

namespace squeeze::worker {

absl::StatusOr<std::unique_ptr<WorkerMetrics>> WorkerMetrics::Create(metrics::Registry& r) {
  std::unique_ptr<WorkerMetrics> m(new WorkerMetrics);
  SQ_ASSIGN_OR_RETURN(m->stage_seconds_,
                      r.AddHistogram("squeeze_worker_stage_seconds",
                                     "Wall time of each task stage (fetch, load, eval, recipe stages, save, upload).",
                                     {"stage"}, metrics::LatencyBuckets()));
  SQ_ASSIGN_OR_RETURN(m->stage_cpu_, r.AddCounter("squeeze_worker_stage_cpu_seconds_total",
                                                  "CPU time (user + system, all threads) spent in each task stage.",
                                                  {"stage"}));
  SQ_ASSIGN_OR_RETURN(m->stage_gpu_,
                      r.AddCounter("squeeze_worker_stage_gpu_seconds_total",
                                   "GPU time spent in each task stage (GPTQ on a CUDA device; 0 on the CPU).",
                                   {"stage"}));
  SQ_ASSIGN_OR_RETURN(m->tasks_, r.AddCounter("squeeze_worker_tasks_total",
                                              "Leased tasks that ended, by outcome.", {"outcome"}));
  SQ_ASSIGN_OR_RETURN(m->busy_, r.AddGauge("squeeze_worker_busy", "1 while a task runs, else 0."));
  m->busy_->Get().Set(0);
  for (const char* o : {"succeeded", "failed", "cancelled", "released", "lost"}) m->tasks_->WithLabels({o});
  return m;
}

std::string WorkerMetrics::LabelFor(const std::string& stage) {
  if (seen_.count(stage)) return stage;
  if (static_cast<int>(seen_.size()) >= kMaxStages) return "other";
  seen_.insert(stage);
  return stage;
}

WorkerMetrics::Mark WorkerMetrics::Now() {
  return Mark{std::chrono::steady_clock::now(), metrics::ProcessCpuSeconds(), ProcessGpuSeconds()};
}

void WorkerMetrics::EndStageLocked(const Mark& end) {
  if (stage_.empty()) return;
  const std::string label = LabelFor(stage_);
  stage_seconds_->WithLabels({label}).Observe(std::chrono::duration<double>(end.wall - start_.wall).count());
  stage_cpu_->WithLabels({label}).Increment(end.cpu - start_.cpu);
  stage_gpu_->WithLabels({label}).Increment(std::max(0.0, end.gpu - start_.gpu));
  stage_.clear();
}

void WorkerMetrics::EnterStage(const std::string& stage) {
  std::lock_guard<std::mutex> lk(mu_);
  const Mark now = Now();
  EndStageLocked(now);
  stage_ = stage;
  driven_ = true;
  start_ = last_ = now;
}

void WorkerMetrics::OnProgress(const std::string& stage) {
  std::lock_guard<std::mutex> lk(mu_);
  const Mark now = Now();
  if (stage == stage_) {
    last_ = now;
    return;
  }
  Mark boundary = now;
  if (!stage_.empty()) {
    boundary = driven_ ? now : last_;
    EndStageLocked(boundary);
  }
  stage_ = stage;
  driven_ = false;
  start_ = boundary;
  last_ = now;
}

void WorkerMetrics::EndStage() {
  std::lock_guard<std::mutex> lk(mu_);
  EndStageLocked(Now());
}

void WorkerMetrics::TaskStarted() { busy_->Get().Set(1); }

void WorkerMetrics::TaskEnded(const char* outcome) {
  EndStage();
  tasks_->WithLabels({outcome}).Increment();
  busy_->Get().Set(0);
}

}  // namespace squeeze::worker
