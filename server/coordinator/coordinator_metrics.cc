#include "server/coordinator/coordinator_metrics.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze::server {

std::string StateLabel(v1::JobState state) { return absl::AsciiStrToLower(v1::JobState_Name(state)); }

absl::StatusOr<std::unique_ptr<CoordinatorMetrics>> CoordinatorMetrics::Create(metrics::Registry& r) {
  std::unique_ptr<CoordinatorMetrics> m(new CoordinatorMetrics);
  SQ_ASSIGN_OR_RETURN(m->submit_latency_,
                      r.AddHistogram("squeeze_coordinator_submit_latency_seconds",
                                     "Time to answer SubmitJob (validation, fingerprint, durable commit), by gRPC code.",
                                     {"code"}, metrics::LatencyBuckets()));
  SQ_ASSIGN_OR_RETURN(m->lease_expiries_,
                      r.AddCounter("squeeze_coordinator_lease_expiries_total",
                                   "Leases that expired without a heartbeat (the job was requeued or failed)."));
  SQ_ASSIGN_OR_RETURN(m->retries_, r.AddCounter("squeeze_coordinator_job_retries_total",
                                                "Jobs put back in the queue after a lease ended without a result.",
                                                {"reason"}));
  SQ_ASSIGN_OR_RETURN(m->queue_wait_,
                      r.AddHistogram("squeeze_coordinator_queue_wait_seconds",
                                     "Time from submit to the first lease.", {}, metrics::LatencyBuckets()));
  SQ_ASSIGN_OR_RETURN(m->job_duration_,
                      r.AddHistogram("squeeze_coordinator_job_duration_seconds",
                                     "Time from the first lease to a terminal state, by that state.", {"state"},
                                     metrics::LatencyBuckets()));
  SQ_ASSIGN_OR_RETURN(m->jobs_, r.AddGauge("squeeze_coordinator_jobs", "Stored jobs by state.", {"state"}));
  SQ_ASSIGN_OR_RETURN(m->queue_depth_,
                      r.AddGauge("squeeze_coordinator_queue_depth",
                                 "Queued jobs by the capability they need (gpu: requires_gpu).", {"capability"}));
  SQ_ASSIGN_OR_RETURN(m->workers_,
                      r.AddGauge("squeeze_coordinator_workers",
                                 "Registered workers: busy (holds a lease), idle (polling), lost (not seen within "
                                 "max lease wait + lease TTL).",
                                 {"state"}));
  SQ_ASSIGN_OR_RETURN(m->leases_, r.AddGauge("squeeze_coordinator_active_leases", "Leases currently held."));
  SQ_ASSIGN_OR_RETURN(m->stored_bytes_,
                      r.AddGauge("squeeze_objectstore_stored_bytes", "Bytes of the blobs in the object store."));
  SQ_ASSIGN_OR_RETURN(m->stored_blobs_, r.AddGauge("squeeze_objectstore_blobs", "Blobs in the object store."));
  SQ_ASSIGN_OR_RETURN(m->memory_,
                      r.AddGauge("squeeze_coordinator_memory_bytes",
                                 "Coordinator memory by kind: heap_in_use and heap_free (glibc mallinfo2), sqlite "
                                 "(SQLite's heap: page caches).",
                                 {"kind"}));
  SQ_ASSIGN_OR_RETURN(m->entries_,
                      r.AddGauge("squeeze_coordinator_table_entries",
                                 "Entries of the coordinator's in-memory tables (each bounded by live jobs, "
                                 "watchers and workers).",
                                 {"table"}));
  // Children that exist from the start, so a rate() or an absent series never
  // depends on whether the event happened yet.
  m->lease_expiries_->Get();
  for (const char* reason : {"lease_expired", "worker_error", "released"}) m->retries_->WithLabels({reason});
  return m;
}

void CoordinatorMetrics::Submitted(double seconds, int code) {
  submit_latency_->WithLabels({absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}).Observe(seconds);
}

void CoordinatorMetrics::LeaseExpired() { lease_expiries_->Get().Increment(); }

void CoordinatorMetrics::Retried(const char* reason) { retries_->WithLabels({reason}).Increment(); }

void CoordinatorMetrics::QueueWait(double seconds) { queue_wait_->Get().Observe(seconds); }

void CoordinatorMetrics::Finished(v1::JobState state, double seconds) {
  job_duration_->WithLabels({StateLabel(state)}).Observe(seconds);
}

void CoordinatorMetrics::Update(const CoordinatorStats& s) {
  for (v1::JobState state : {v1::QUEUED, v1::RUNNING, v1::SUCCEEDED, v1::FAILED, v1::CANCELLED}) {
    auto it = s.jobs_by_state.find(state);
    jobs_->WithLabels({StateLabel(state)}).Set(it == s.jobs_by_state.end() ? 0 : static_cast<double>(it->second));
  }
  queue_depth_->WithLabels({"cpu"}).Set(static_cast<double>(s.queued_cpu));
  queue_depth_->WithLabels({"gpu"}).Set(static_cast<double>(s.queued_gpu));
  workers_->WithLabels({"busy"}).Set(static_cast<double>(s.workers_busy));
  workers_->WithLabels({"idle"}).Set(static_cast<double>(s.workers_idle));
  workers_->WithLabels({"lost"}).Set(static_cast<double>(s.workers_lost));
  leases_->Get().Set(static_cast<double>(s.active_leases));
  if (s.stored_bytes >= 0) stored_bytes_->Get().Set(static_cast<double>(s.stored_bytes));
  if (s.stored_blobs >= 0) stored_blobs_->Get().Set(static_cast<double>(s.stored_blobs));
  const std::pair<const char*, int64_t> memory[] = {
      {"heap_in_use", s.heap_in_use_bytes}, {"heap_free", s.heap_free_bytes}, {"sqlite", s.sqlite_bytes}};
  for (const auto& [kind, bytes] : memory) {
    if (bytes >= 0) memory_->WithLabels({kind}).Set(static_cast<double>(bytes));
  }
  entries_->WithLabels({"last_seq"}).Set(static_cast<double>(s.cached_last_seq));
  entries_->WithLabels({"watchers"}).Set(static_cast<double>(s.cached_watchers));
  entries_->WithLabels({"stage_starts"}).Set(static_cast<double>(s.cached_stage_starts));
  entries_->WithLabels({"workers"}).Set(static_cast<double>(s.registered_workers));
}

}  // namespace squeeze::server
