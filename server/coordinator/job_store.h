// JobStore: the durable state of the coordinator, in SQLite.
//
// Schema (versioned by PRAGMA user_version; migrations in job_store.cc are
// applied in order and never edited once shipped):
//   jobs(id INTEGER PK = FIFO order, job_id UNIQUE, idempotency_key UNIQUE,
//        state, priority, requires_gpu, mem_estimate, lease_id, worker_id,
//        cancel_requested, report_json, job BLOB = squeeze.v1.Job,
//        request_sha256 (v2; NULL for older rows),
//        checkpoint_digest (v3; NULL = no checkpoint),
//        model_digest (v4, indexed with state; = job.model_digest, backfilled),
//        tenant (v5; = job.tenant, NULL for "" and every older row))
//   tenant_blobs(tenant, digest, PK) (v5): blobs a tenant may read
//   events(job_id, seq, event BLOB = squeeze.v1.JobEvent, PK(job_id, seq))
// Invariants: a job's events have seq 1..job.last_seq with no gaps; the
// indexed columns always agree with the Job blob. Not thread-safe: the
// Coordinator serializes every call under its mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/coordinator/sqlite_db.h"
#include "squeeze/v1/service.pb.h"

namespace squeeze::server {

struct StoredJob {
  int64_t row = 0;  // insertion order (FIFO)
  v1::Job job;
  std::string lease_id;   // "" when not leased
  std::string worker_id;
  bool cancel_requested = false;
  std::string report_json;
  // sha256 hex of the canonical SubmitJobRequest with idempotency_key cleared;
  // "" when unknown (rows written before schema v2). Written once by Insert.
  std::string request_sha256;
  // Manifest digest of the runner checkpoint left by a graceful stop; handed
  // to the next lease. "" when none (and always once the job is terminal).
  std::string checkpoint_digest;
};

class JobStore {
 public:
  static constexpr int kSchemaVersion = 5;
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  // SQLITE_OPEN_READONLY, no migrations: FailedPrecondition unless the file is
  // at kSchemaVersion. For `--verify` and for scans beside the writer (WAL).
  static absl::StatusOr<std::unique_ptr<JobStore>> OpenReadOnly(const std::string& path);

  int schema_version() const { return schema_version_; }
  SqliteDb& db() { return *db_; }

  absl::Status Insert(StoredJob& job, const std::string& idempotency_key);  // sets job.row
  absl::Status Update(const StoredJob& job);
  absl::StatusOr<std::optional<StoredJob>> Get(const std::string& job_id);
  absl::StatusOr<std::optional<StoredJob>> FindByIdempotencyKey(const std::string& key);
  absl::StatusOr<std::optional<StoredJob>> FindByLease(const std::string& lease_id);
  absl::StatusOr<std::vector<StoredJob>> InState(v1::JobState state);
  // The first QUEUED job by (priority desc, row asc) a worker may run.
  absl::StatusOr<std::optional<StoredJob>> NextQueued(bool worker_has_gpu, int64_t worker_ram_bytes);
  // Newest first, rows < before_row (0 = from the newest), state 0 = any.
  absl::StatusOr<std::vector<StoredJob>> List(v1::JobState state, int64_t before_row, int limit);
  // As List, only jobs of `tenant` ("" = rows without a tenant).
  absl::StatusOr<std::vector<StoredJob>> ListOfTenant(const std::string& tenant, v1::JobState state,
                                                      int64_t before_row, int limit);
  // tenant_blobs: `tenant` may read blob `digest` (idempotent).
  absl::Status GrantBlob(const std::string& tenant, const std::string& digest);
  // GrantBlob for each digest, one prepared statement reused. Opens no
  // transaction of its own (the caller's makes it all or none: a failure
  // part-way leaves the earlier rows to the caller's rollback).
  absl::Status GrantBlobs(const std::string& tenant, const std::vector<std::string>& digests);
  absl::StatusOr<bool> TenantHasBlob(const std::string& tenant, const std::string& digest);
  // SUCCEEDED jobs of one model (index jobs_model), newest first, rows <
  // before_row (0 = from the newest).
  absl::StatusOr<std::vector<StoredJob>> SucceededOfModel(const std::string& model_digest, int64_t before_row,
                                                          int limit);

  absl::Status AppendEvent(const v1::JobEvent& event);
  absl::StatusOr<std::vector<v1::JobEvent>> EventsAfter(const std::string& job_id, int64_t after_seq,
                                                        int limit);

 private:
  explicit JobStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  absl::Status Migrate();
  absl::StatusOr<std::vector<StoredJob>> Query(Statement& stmt);

  std::unique_ptr<SqliteDb> db_;
  int schema_version_ = 0;
};

}  // namespace squeeze::server
