// The coordinator's Prometheus metrics (names under squeeze_coordinator_ and
// squeeze_objectstore_). Counters and histograms are updated where things
// happen; gauges (jobs by state, queue depth, workers, bytes stored) are
// computed from the job database and the lease table at scrape time by a
// collect hook, so they are right after a restart and never drift.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "absl/status/statusor.h"
#include "server/metrics/registry.h"
#include "squeeze/v1/service.pb.h"

namespace squeeze::server {

// A snapshot for the gauges (Coordinator::Stats).
struct CoordinatorStats {
  std::map<v1::JobState, int64_t> jobs_by_state;  // every stored job
  int64_t queued_cpu = 0;  // QUEUED jobs any worker may run
  int64_t queued_gpu = 0;  // QUEUED jobs that need a worker with a GPU
  // Registered workers: busy = holds a lease; idle = seen (register, lease
  // poll, heartbeat) within max_lease_wait + lease TTL; lost = not seen since.
  int64_t workers_busy = 0, workers_idle = 0, workers_lost = 0;
  int64_t active_leases = 0;
  // Object store contents; -1 when the backend cannot tell.
  int64_t stored_blobs = -1, stored_bytes = -1;
  // Where the coordinator's memory is (to tell a leak from fragmentation or a
  // cache filling): glibc's heap in use and free in its arenas (mallinfo2),
  // SQLite's own heap (page caches of every connection, sqlite3_memory_used);
  // -1 when unknown. And the entries of the in-memory tables, each of which
  // must stay bounded by live things (watched jobs, running stages, leases,
  // workers seen within forget_worker_ms).
  int64_t heap_in_use_bytes = -1, heap_free_bytes = -1, sqlite_bytes = -1;
  int64_t cached_last_seq = 0, cached_watchers = 0, cached_stage_starts = 0, registered_workers = 0;
};

class CoordinatorMetrics {
 public:
  static absl::StatusOr<std::unique_ptr<CoordinatorMetrics>> Create(metrics::Registry& registry);

  // A SubmitJob call took `seconds` and ended with this gRPC/absl status code.
  void Submitted(double seconds, int code);
  void LeaseExpired();
  // A job went back to QUEUED: "lease_expired", "worker_error" or "released".
  void Retried(const char* reason);
  // A job was leased for the first time after waiting this long in the queue.
  void QueueWait(double seconds);
  // A job reached a terminal state `seconds` after its first lease (0 when it
  // never ran, e.g. cancelled while queued).
  void Finished(v1::JobState state, double seconds);
  // Sets the gauges (called by the scrape-time hook).
  void Update(const CoordinatorStats& stats);

 private:
  CoordinatorMetrics() = default;
  metrics::Family<metrics::Histogram>* submit_latency_ = nullptr;
  metrics::Family<metrics::Counter>* lease_expiries_ = nullptr;
  metrics::Family<metrics::Counter>* retries_ = nullptr;
  metrics::Family<metrics::Histogram>* queue_wait_ = nullptr;
  metrics::Family<metrics::Histogram>* job_duration_ = nullptr;
  metrics::Family<metrics::Gauge>* jobs_ = nullptr;
  metrics::Family<metrics::Gauge>* queue_depth_ = nullptr;
  metrics::Family<metrics::Gauge>* workers_ = nullptr;
  metrics::Family<metrics::Gauge>* leases_ = nullptr;
  metrics::Family<metrics::Gauge>* stored_bytes_ = nullptr;
  metrics::Family<metrics::Gauge>* stored_blobs_ = nullptr;
  metrics::Family<metrics::Gauge>* memory_ = nullptr;
  metrics::Family<metrics::Gauge>* entries_ = nullptr;
};

// "queued", "running", ... (the enum name in lower case).
std::string StateLabel(v1::JobState state);

}  // namespace squeeze::server
