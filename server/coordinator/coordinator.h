// Coordinator: the job state machine, the scheduler and the lease table, on top
// of the durable JobStore and the ObjectStore. Transport-free (the gRPC
// services in service_impl.* translate), so tests drive it directly.
//
// States: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED (and RUNNING ->
// QUEUED when a lease expires, fails retryably or is released).
// Invariants:
//   - every accepted mutation is committed to SQLite before the call returns,
//     so kill -9 loses nothing that a caller was told about;
//   - a job is leased to at most one worker at a time; a result is accepted only
//     with the job's current lease id, so no job completes twice;
//   - lease deadlines live in memory on a monotonic clock; after a restart every
//     RUNNING job's lease gets a fresh full TTL (its worker may still be alive);
//   - each job's events carry seq 1, 2, 3, ... with no gaps.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "server/coordinator/coordinator_metrics.h"
#include "server/coordinator/job_store.h"
#include "server/objectstore/object_store.h"
#include "squeeze/v1/service.pb.h"
#include "squeeze/v1/worker.pb.h"

namespace squeeze::server {

// Time source; tests substitute a manual clock to expire leases.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t MonotonicMs() = 0;  // lease deadlines
  virtual int64_t UnixMs() = 0;       // timestamps shown to users
};
Clock* RealClock();

struct CoordinatorOptions {
  std::string data_dir;               // jobs.db and objects/ live here
  int64_t lease_ttl_ms = 30'000;      // a worker must heartbeat within this
  int default_max_attempts = 3;       // leases per job before it fails
  int64_t max_lease_wait_ms = 30'000; // cap on a LeaseTask long-poll
  // Validates a recipe at submit time; InvalidArgument names the YAML path.
  std::function<absl::Status(const std::string& recipe_yaml)> validate_recipe;
  // Validates a recipe against the input model's config.json (its text and a
  // name for errors), when the model manifest has one; e.g. N:M masks whose M
  // does not divide a target's width. InvalidArgument names the YAML path.
  std::function<absl::Status(const std::string& recipe_yaml, const std::string& config_json,
                             const std::string& config_source)>
      validate_recipe_for_model;
  Clock* clock = nullptr;             // nullptr = RealClock()
  bool start_reaper = true;           // background thread expiring leases
  // Where the coordinator registers its metrics (coordinator_metrics.h); null
  // = none. The registry's collect hook reads this coordinator: stop serving
  // the registry before destroying the coordinator.
  metrics::Registry* metrics = nullptr;
  // Cap on the sum of declared file sizes in one UploadModel (bytes); a larger
  // upload is refused with RESOURCE_EXHAUSTED and stores nothing.
  int64_t max_upload_bytes = int64_t{64} << 30;
  // A registered worker holding no lease and not seen (register, lease poll,
  // heartbeat) for this long is forgotten (monotonic ms; checked by
  // ExpireLeases): churned workers do not pile up. One that comes back gets
  // NotFound on LeaseTask and registers again. Keep it well above
  // max_lease_wait_ms + lease_ttl_ms (until then it counts as "lost").
  int64_t forget_worker_ms = 10 * 60'000;
};

// The checks Coordinator::Open runs first (main runs them before touching
// the data dir): positive TTL and attempts, and forget_worker_ms >=
// max_lease_wait_ms + lease_ttl_ms. InvalidArgument names the fields, their
// flags and values.
absl::Status CheckCoordinatorOptions(const CoordinatorOptions& options);

struct WatchBatch {
  std::vector<v1::JobEvent> events;
  bool done = false;  // the job is terminal and `events` reaches its last event
  bool shutting_down = false;
};

class Coordinator {
 public:
  static absl::StatusOr<std::unique_ptr<Coordinator>> Open(CoordinatorOptions options,
                                                           std::unique_ptr<store::ObjectStore> objects);
  ~Coordinator();

  // CompressionService.
  // `tenant` (security, --auth-config) is recorded on the job; "" = the
  // implicit tenant. Idempotency keys are per tenant.
  absl::StatusOr<v1::Job> Submit(const v1::SubmitJobRequest& request, const std::string& tenant = "");
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id);
  // `tenant` non-null: only that tenant's jobs (null = every job).
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request,
                                                const std::string* tenant = nullptr);
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id);
  // Events with seq > after_seq, waiting up to `wait_ms` for the first one.
  absl::StatusOr<WatchBatch> WaitEvents(const std::string& job_id, int64_t after_seq, int64_t wait_ms);
  absl::StatusOr<v1::GetReportResponse> GetReport(const std::string& job_id);
  // The store-wide Pareto front of a model (coordinator_pareto.cc;
  // workers/runner/report_front.h): every SUCCEEDED job of the model given by
  // digest, or of a job's model with that job as the anchor. GetReport adds
  // the same front as report scores.pareto.store (and the job's ELUE-style
  // score against the store as scores.elue.store).
  // `tenant` non-null: the front holds only that tenant's jobs (GetReport's
  // store front always holds only the jobs of the report's job's tenant).
  absl::StatusOr<v1::GetParetoResponse> GetPareto(const v1::GetParetoRequest& request,
                                                  const std::string* tenant = nullptr);

  // Tenant isolation (server/auth): blobs a tenant may read. Uploads are
  // granted by the service, a job's artifact (manifest and files) by
  // CompleteTask.
  absl::Status GrantBlob(const std::string& tenant, const std::string& digest);
  // Every digest in one transaction (one fsync): all granted or, on any
  // failure, none (an upload's files and manifest).
  absl::Status GrantBlobs(const std::string& tenant, const std::vector<std::string>& digests);
  absl::StatusOr<bool> TenantHasBlob(const std::string& tenant, const std::string& digest);

  // WorkerService.
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::Capabilities& caps);
  // nullopt when nothing matched within wait_ms (or `give_up` turned true).
  absl::StatusOr<std::optional<v1::Task>> LeaseTask(const std::string& worker_id, int64_t wait_ms,
                                                    const std::function<bool()>& give_up = {});
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  absl::StatusOr<v1::TaskAck> CompleteTask(const v1::CompleteTaskRequest& request);
  absl::StatusOr<v1::TaskAck> FailTask(const v1::FailTaskRequest& request);
  // Gives the task back without charging an attempt. A checkpoint_digest that
  // names a complete checkpoint manifest in the object store is stored on the
  // job and handed to its next lease; any other is logged and ignored.
  // The ack says checkpoint_stored only when the digest was taken.
  absl::StatusOr<v1::TaskAck> ReleaseTask(const v1::ReleaseTaskRequest& request);

  // Requeues (or fails, when attempts are spent) every job whose lease expired.
  // Returns how many expired. Called by the reaper thread; tests call it directly.
  absl::StatusOr<int> ExpireLeases();

  // Wakes every waiter; later waits return at once.
  void Shutdown();

  // Figures for the scrape-time gauges: one aggregate query on a read-only
  // connection of its own (WAL: it neither takes mu_ nor blocks writers), then
  // mu_ only to count leases and workers.
  absl::StatusOr<CoordinatorStats> Stats();
  // Null when options.metrics was null.
  CoordinatorMetrics* metrics() { return metrics_.get(); }

  store::ObjectStore& objects() { return *objects_; }
  int64_t max_upload_bytes() const { return options_.max_upload_bytes; }
  int64_t lease_ttl_ms() const { return options_.lease_ttl_ms; }

 private:
  struct Lease {
    std::string job_id;
    std::string worker_id;
    int64_t deadline_ms;  // monotonic
  };
  struct Worker {
    v1::Capabilities caps;
    int64_t last_seen_ms = 0;  // monotonic: register, lease poll, heartbeat (metrics)
  };

  Coordinator(CoordinatorOptions options, std::unique_ptr<JobStore> store,
              std::unique_ptr<store::ObjectStore> objects);
  absl::Status Recover();
  // Appends an event to `job` (bumping last_seq) inside the caller's transaction.
  absl::Status AddEvent(StoredJob& job, v1::JobEvent event);
  absl::Status SetState(StoredJob& job, v1::JobState state, const std::string& message);
  // Ends the job's lease (map and row); requeues or fails per the rules.
  absl::Status Requeue(StoredJob& job, const std::string& why, bool charge_attempt);
  absl::StatusOr<StoredJob> MustGet(const std::string& job_id);
  // Every SUCCEEDED job of `model_digest` (newest first): index jobs_model on
  // a read-only connection of its own (reader_), so mu_ is not held.
  // `tenant` non-null: only jobs of that tenant.
  absl::StatusOr<std::vector<StoredJob>> SucceededJobsOfModel(const std::string& model_digest,
                                                              const std::string* tenant = nullptr);
  // Adds scores.pareto.store / scores.elue.store to `report_json` (a job's
  // report); leaves it unchanged when the front cannot be built.
  void AddStoreFront(const v1::Job& job, std::string* report_json);
  // OK when `digest` is a manifest in the object store whose files are all
  // present and which holds a checkpoint.json (reads the store; no lock).
  absl::Status CheckCheckpoint(const std::string& digest) const;
  absl::StatusOr<std::optional<StoredJob>> JobForLease(const std::string& lease_id);
  void ForgetJobCaches(const std::string& job_id);
  // Drops workers idle past options_.forget_worker_ms (mu_ held).
  void PruneWorkersLocked(int64_t now_ms);
  std::string NewId(const char* prefix);
  void ReaperLoop();

  CoordinatorOptions options_;
  Clock* clock_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<store::ObjectStore> objects_;

  std::mutex mu_;
  std::condition_variable queue_cv_;   // a job became QUEUED
  // Watchers wait on their job's own condition variable, so an event wakes
  // only the streams of that job (no thundering herd with many watchers).
  struct Watchers {
    std::condition_variable cv;
    int count = 0;
  };
  std::unordered_map<std::string, std::shared_ptr<Watchers>> watchers_;  // by job id
  std::vector<std::string> dirty_;  // jobs with events not yet signalled
  void NotifyWatchersLocked();
  // Writes `job` and commits `tx`, then wakes its watchers: the tail of every
  // state change (mu_ held).
  absl::Status CommitJobLocked(const StoredJob& job, Transaction& tx);
  std::map<std::string, Lease> leases_;              // by lease id
  std::map<std::string, Worker> workers_;            // by worker id
  std::unordered_map<std::string, int64_t> last_seq_;  // job.last_seq of watched jobs only
  // (job_id + '\0' + stage) -> (first seen monotonic ms, first current) for ETA.
  std::unordered_map<std::string, std::pair<int64_t, int64_t>> stage_start_;
  uint64_t id_state_;
  bool shutdown_ = false;

  std::unique_ptr<CoordinatorMetrics> metrics_;  // null without options.metrics
  std::mutex stats_mu_;                  // guards stats_db_ (Stats may run on any thread)
  std::unique_ptr<SqliteDb> stats_db_;   // second connection to jobs.db, for Stats only
  std::mutex reader_mu_;                 // guards reader_
  std::unique_ptr<JobStore> reader_;     // read-only connection: report / Pareto scans
  std::thread reaper_;
  std::atomic<bool> stop_reaper_{false};
};

bool IsTerminal(v1::JobState state);

}  // namespace squeeze::server
