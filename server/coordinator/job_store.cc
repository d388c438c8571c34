#include "server/coordinator/job_store.h"

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze::server {
namespace {

// Migration i brings the schema from version i to i+1. Append only.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE jobs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL UNIQUE,
  idempotency_key TEXT UNIQUE,
  state INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  requires_gpu INTEGER NOT NULL,
  mem_estimate INTEGER NOT NULL,
  lease_id TEXT,
  worker_id TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  report_json TEXT,
  job BLOB NOT NULL);
CREATE INDEX jobs_queue ON jobs(state, priority DESC, id);
CREATE INDEX jobs_lease ON jobs(lease_id);
CREATE TABLE events(
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  event BLOB NOT NULL,
  PRIMARY KEY(job_id, seq)) WITHOUT ROWID;
)sql",
    // v2: sha256 of the canonical SubmitJobRequest (idempotency key cleared), so a
    // reused key with a different request is refused. NULL for jobs from v1.
    "ALTER TABLE jobs ADD COLUMN request_sha256 TEXT;",
    // v3: the checkpoint a graceful stop (SIGTERM) uploaded, so that the next
    // lease, on any worker, resumes from it. NULL for jobs from v1/v2 = none.
    "ALTER TABLE jobs ADD COLUMN checkpoint_digest TEXT;",
    // v4: the job's model manifest digest as an indexed column (it lives in the
    // Job blob too), so the store-wide Pareto scan reads only that model's
    // SUCCEEDED rows. Rows from v1..v3 are backfilled from their blobs by
    // BackfillModelDigest in the same transaction.
    "ALTER TABLE jobs ADD COLUMN model_digest TEXT;"
    "CREATE INDEX jobs_model ON jobs(model_digest, state, id);",
    // v5 (security): the tenant that submitted the job (--auth-config; NULL =
    // the implicit tenant "", also for every older row), and the blobs each
    // tenant may read: its uploads and its jobs' artifacts (manifests and
    // their files). Digests are content addresses shared between tenants.
    "ALTER TABLE jobs ADD COLUMN tenant TEXT;"
    "CREATE INDEX jobs_tenant ON jobs(tenant, id);"
    "CREATE TABLE tenant_blobs(tenant TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY(tenant, digest)) "
    "WITHOUT ROWID;",
};

// Fills jobs.model_digest of every row that lacks it from its Job blob (the
// v4 migration; the caller holds the transaction).
absl::Status BackfillModelDigest(SqliteDb& db) {
  SQ_ASSIGN_OR_RETURN(Statement q, db.Prepare("SELECT id, job FROM jobs WHERE model_digest IS NULL"));
  std::vector<std::pair<int64_t, std::string>> rows;
  while (true) {
    SQ_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    v1::Job job;
    if (!job.ParseFromString(q.Text(1))) {
      return absl::DataLossError(absl::StrCat("jobs row ", q.Int(0), ": undecodable job record (schema v4 backfill)"));
    }
    rows.emplace_back(q.Int(0), job.model_digest());
  }
  for (const auto& [id, digest] : rows) {
    SQ_ASSIGN_OR_RETURN(Statement u, db.Prepare("UPDATE jobs SET model_digest=? WHERE id=?"));
    u.Bind(1, digest).Bind(2, id);
    SQ_RETURN_IF_ERROR(u.Run());
  }
  return absl::OkStatus();
}

constexpr char kColumns[] =
    "id, lease_id, worker_id, cancel_requested, report_json, job, request_sha256, checkpoint_digest";

// "" is stored as NULL.
void BindOptionalText(Statement& s, int i, const std::string& v) {
  if (v.empty()) {
    s.BindNull(i);
  } else {
    s.Bind(i, v);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path));
  std::unique_ptr<JobStore> store(new JobStore(std::move(db)));
  SQ_RETURN_IF_ERROR(store->Migrate());
  return store;
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::OpenReadOnly(const std::string& path) {
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::OpenReadOnly(path));
  std::unique_ptr<JobStore> store(new JobStore(std::move(db)));
  SQ_ASSIGN_OR_RETURN(Statement q, store->db_->Prepare("PRAGMA user_version"));
  SQ_ASSIGN_OR_RETURN(bool row, q.Step());
  const int version = row ? static_cast<int>(q.Int(0)) : 0;
  if (version != kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": database schema version ", version, ", this coordinator reads version ", kSchemaVersion,
        version < kSchemaVersion ? " (start the coordinator once to migrate it; a read-only open never migrates)"
                                 : " (it is newer than this coordinator)"));
  }
  store->schema_version_ = version;
  return store;
}

absl::Status JobStore::Migrate() {
  SQ_ASSIGN_OR_RETURN(Statement q, db_->Prepare("PRAGMA user_version"));
  SQ_ASSIGN_OR_RETURN(bool row, q.Step());
  int version = row ? static_cast<int>(q.Int(0)) : 0;
  constexpr int kCount = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));
  static_assert(kCount == kSchemaVersion);
  if (version > kCount) {
    return absl::FailedPreconditionError(
        absl::StrCat("database schema version ", version, " is newer than this coordinator (", kCount, ")"));
  }
  for (; version < kCount; ++version) {
    SQ_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*db_));
    SQ_RETURN_IF_ERROR(db_->Exec(kMigrations[version]));
    if (version + 1 == 4) SQ_RETURN_IF_ERROR(BackfillModelDigest(*db_));
    SQ_RETURN_IF_ERROR(db_->Exec(absl::StrCat("PRAGMA user_version = ", version + 1)));
    SQ_RETURN_IF_ERROR(tx.Commit());
  }
  schema_version_ = version;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredJob>> JobStore::Query(Statement& stmt) {
  std::vector<StoredJob> out;
  while (true) {
    SQ_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    StoredJob j;
    j.row = stmt.Int(0);
    j.lease_id = stmt.Text(1);
    j.worker_id = stmt.Text(2);
    j.cancel_requested = stmt.Int(3) != 0;
    j.report_json = stmt.Text(4);
    if (!j.job.ParseFromString(stmt.Text(5))) {
      return absl::DataLossError(absl::StrCat("jobs row ", j.row, ": undecodable job record"));
    }
    j.request_sha256 = stmt.Text(6);
    j.checkpoint_digest = stmt.Text(7);
    out.push_back(std::move(j));
  }
  return out;
}

absl::Status JobStore::Insert(StoredJob& j, const std::string& idempotency_key) {
  // request_sha256 travels in the StoredJob; "" is stored as NULL (unknown).
  SQ_ASSIGN_OR_RETURN(
      Statement s,
      db_->Prepare("INSERT INTO jobs(job_id, idempotency_key, state, priority, requires_gpu, mem_estimate, "
                   "lease_id, worker_id, cancel_requested, report_json, job, request_sha256, checkpoint_digest, "
                   "model_digest, tenant) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  s.Bind(1, j.job.job_id());
  if (idempotency_key.empty()) {
    s.BindNull(2);
  } else {
    s.Bind(2, idempotency_key);
  }
  s.Bind(3, static_cast<int64_t>(j.job.state()))
      .Bind(4, static_cast<int64_t>(j.job.priority()))
      .Bind(5, static_cast<int64_t>(j.job.requires_gpu()))
      .Bind(6, j.job.memory_estimate_bytes())
      .Bind(7, j.lease_id)
      .Bind(8, j.worker_id)
      .Bind(9, static_cast<int64_t>(j.cancel_requested))
      .Bind(10, j.report_json)
      .BindBlob(11, j.job.SerializeAsString());
  BindOptionalText(s, 12, j.request_sha256);
  BindOptionalText(s, 13, j.checkpoint_digest);
  s.Bind(14, j.job.model_digest());
  BindOptionalText(s, 15, j.job.tenant());
  SQ_RETURN_IF_ERROR(s.Run());
  SQ_ASSIGN_OR_RETURN(Statement q, db_->Prepare("SELECT last_insert_rowid()"));
  SQ_ASSIGN_OR_RETURN(bool row, q.Step());
  j.row = row ? q.Int(0) : 0;
  return absl::OkStatus();
}

absl::Status JobStore::Update(const StoredJob& j) {
  SQ_ASSIGN_OR_RETURN(Statement s, db_->Prepare("UPDATE jobs SET state=?, priority=?, lease_id=?, worker_id=?, "
                                                "cancel_requested=?, report_json=?, job=?, checkpoint_digest=? "
                                                "WHERE job_id=?"));
  s.Bind(1, static_cast<int64_t>(j.job.state()))
      .Bind(2, static_cast<int64_t>(j.job.priority()))
      .Bind(3, j.lease_id)
      .Bind(4, j.worker_id)
      .Bind(5, static_cast<int64_t>(j.cancel_requested))
      .Bind(6, j.report_json)
      .BindBlob(7, j.job.SerializeAsString());
  BindOptionalText(s, 8, j.checkpoint_digest);
  s.Bind(9, j.job.job_id());
  SQ_RETURN_IF_ERROR(s.Run());
  if (db_->Changes() != 1) return absl::NotFoundError(absl::StrCat("job ", j.job.job_id(), " not found"));
  return absl::OkStatus();
}

namespace {
absl::StatusOr<std::optional<StoredJob>> First(absl::StatusOr<std::vector<StoredJob>> rows) {
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return std::optional<StoredJob>();
  return std::optional<StoredJob>(std::move(rows->front()));
}
}  // namespace

absl::StatusOr<std::optional<StoredJob>> JobStore::Get(const std::string& job_id) {
  SQ_ASSIGN_OR_RETURN(Statement s, db_->Prepare(absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE job_id=?")));
  s.Bind(1, job_id);
  return First(Query(s));
}

absl::StatusOr<std::optional<StoredJob>> JobStore::FindByIdempotencyKey(const std::string& key) {
  SQ_ASSIGN_OR_RETURN(Statement s,
                      db_->Prepare(absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE idempotency_key=?")));
  s.Bind(1, key);
  return First(Query(s));
}

absl::StatusOr<std::optional<StoredJob>> JobStore::FindByLease(const std::string& lease_id) {
  SQ_ASSIGN_OR_RETURN(Statement s, db_->Prepare(absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE lease_id=?")));
  s.Bind(1, lease_id);
  return First(Query(s));
}

absl::StatusOr<std::vector<StoredJob>> JobStore::InState(v1::JobState state) {
  SQ_ASSIGN_OR_RETURN(Statement s,
                      db_->Prepare(absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE state=? ORDER BY id")));
  s.Bind(1, static_cast<int64_t>(state));
  return Query(s);
}

absl::StatusOr<std::optional<StoredJob>> JobStore::NextQueued(bool worker_has_gpu, int64_t worker_ram_bytes) {
  SQ_ASSIGN_OR_RETURN(Statement s, db_->Prepare(absl::StrCat(
                                       "SELECT ", kColumns,
                                       " FROM jobs WHERE state=? AND (requires_gpu=0 OR ?) AND mem_estimate<=? "
                                       "ORDER BY priority DESC, id ASC LIMIT 1")));
  s.Bind(1, static_cast<int64_t>(v1::QUEUED)).Bind(2, static_cast<int64_t>(worker_has_gpu)).Bind(3, worker_ram_bytes);
  return First(Query(s));
}

absl::StatusOr<std::vector<StoredJob>> JobStore::List(v1::JobState state, int64_t before_row, int limit) {
  SQ_ASSIGN_OR_RETURN(Statement s, db_->Prepare(absl::StrCat("SELECT ", kColumns,
                                                             " FROM jobs WHERE (?=0 OR state=?) AND (?=0 OR id<?) "
                                                             "ORDER BY id DESC LIMIT ?")));
  s.Bind(1, static_cast<int64_t>(state))
      .Bind(2, static_cast<int64_t>(state))
      .Bind(3, before_row)
      .Bind(4, before_row)
      .Bind(5, static_cast<int64_t>(limit));
  return Query(s);
}

absl::StatusOr<std::vector<StoredJob>> JobStore::ListOfTenant(const std::string& tenant, v1::JobState state,
                                                               int64_t before_row, int limit) {
  // "" is stored as NULL; a named tenant uses index jobs_tenant(tenant, id).
  SQ_ASSIGN_OR_RETURN(Statement s, db_->Prepare(absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE ",
                                                             tenant.empty() ? "(tenant IS NULL AND ?='')" : "tenant=?",
                                                             " AND (?=0 OR state=?) AND (?=0 OR id<?) "
                                                             "ORDER BY id DESC LIMIT ?")));
  s.Bind(1, tenant)
      .Bind(2, static_cast<int64_t>(state))
      .Bind(3, static_cast<int64_t>(state))
      .Bind(4, before_row)
      .Bind(5, before_row)
      .Bind(6, static_cast<int64_t>(limit));
  return Query(s);
}

absl::Status JobStore::GrantBlob(const std::string& tenant, const std::string& digest) {
  SQ_ASSIGN_OR_RETURN(Statement s, db_->Prepare("INSERT OR IGNORE INTO tenant_blobs(tenant, digest) VALUES(?,?)"));
  s.Bind(1, tenant).Bind(2, digest);
  return s.Run();
}

absl::Status JobStore::GrantBlobs(const std::string& tenant, const std::vector<std::string>& digests) {
  SQ_ASSIGN_OR_RETURN(Statement s, db_->Prepare("INSERT OR IGNORE INTO tenant_blobs(tenant, digest) VALUES(?,?)"));
  for (const std::string& digest : digests) {
    s.Reset().Bind(1, tenant).Bind(2, digest);
    SQ_RETURN_IF_ERROR(s.Run());
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> JobStore::TenantHasBlob(const std::string& tenant, const std::string& digest) {
  SQ_ASSIGN_OR_RETURN(Statement s, db_->Prepare("SELECT 1 FROM tenant_blobs WHERE tenant=? AND digest=?"));
  s.Bind(1, tenant).Bind(2, digest);
  return s.Step();
}

absl::StatusOr<std::vector<StoredJob>> JobStore::SucceededOfModel(const std::string& model_digest,
                                                                   int64_t before_row, int limit) {
  SQ_ASSIGN_OR_RETURN(Statement s, db_->Prepare(absl::StrCat("SELECT ", kColumns,
                                                             " FROM jobs WHERE model_digest=? AND state=? "
                                                             "AND (?=0 OR id<?) ORDER BY id DESC LIMIT ?")));
  s.Bind(1, model_digest)
      .Bind(2, static_cast<int64_t>(v1::SUCCEEDED))
      .Bind(3, before_row)
      .Bind(4, before_row)
      .Bind(5, static_cast<int64_t>(limit));
  return Query(s);
}

absl::Status JobStore::AppendEvent(const v1::JobEvent& event) {
  SQ_ASSIGN_OR_RETURN(Statement s, db_->Prepare("INSERT INTO events(job_id, seq, event) VALUES(?,?,?)"));
  s.Bind(1, event.job_id()).Bind(2, event.seq()).BindBlob(3, event.SerializeAsString());
  return s.Run();
}

absl::StatusOr<std::vector<v1::JobEvent>> JobStore::EventsAfter(const std::string& job_id, int64_t after_seq,
                                                                int limit) {
  SQ_ASSIGN_OR_RETURN(Statement s,
                      db_->Prepare("SELECT event FROM events WHERE job_id=? AND seq>? ORDER BY seq LIMIT ?"));
  s.Bind(1, job_id).Bind(2, after_seq).Bind(3, static_cast<int64_t>(limit));
  std::vector<v1::JobEvent> out;
  while (true) {
    SQ_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    v1::JobEvent e;
    if (!e.ParseFromString(s.Text(0))) return absl::DataLossError("undecodable event record");
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace squeeze::server
