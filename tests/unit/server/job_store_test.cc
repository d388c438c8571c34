#include "server/coordinator/job_store.h"

#include <filesystem>
#include <iterator>
#include <string>

#include "gtest/gtest.h"

namespace squeeze::server {
namespace {
namespace fs = std::filesystem;

std::string DbPath(const char* name) {
  const fs::path p = fs::path(::testing::TempDir()) / (std::string("jobstore_") + std::to_string(::getpid()) + name);
  fs::remove(p);
  fs::remove(p.string() + "-wal");
  fs::remove(p.string() + "-shm");
  return p.string();
}

// The statements of migrations v1..`version` as shipped (verbatim; never
// edited, like the migrations in job_store.cc) and that user_version: a
// database as an older coordinator left it, for the migration tests.
std::string SchemaAsShipped(int version) {
  static const char* const kMigrations[] = {
      // v1
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
      // v2
      "ALTER TABLE jobs ADD COLUMN request_sha256 TEXT;\n",
      // v3
      "ALTER TABLE jobs ADD COLUMN checkpoint_digest TEXT;\n",
  };
  if (version < 1 || version > static_cast<int>(std::size(kMigrations))) {
    ADD_FAILURE() << "no shipped schema v" << version << " here (add its statements)";
    return "";
  }
  std::string sql;
  for (int v = 1; v <= version; ++v) sql += kMigrations[v - 1];
  return sql + "PRAGMA user_version = " + std::to_string(version) + ";\n";
}

TEST(JobStore, MigratesToTheCurrentSchemaOnceAndUsesWal) {
  const std::string path = DbPath("migrate.db");
  {
    auto s = JobStore::Open(path);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ((*s)->schema_version(), JobStore::kSchemaVersion);
    auto mode = (*s)->db().Prepare("PRAGMA journal_mode");
    ASSERT_TRUE(mode.ok());
    ASSERT_TRUE(*mode->Step());
    EXPECT_EQ(mode->Text(0), "wal");
    auto sync = (*s)->db().Prepare("PRAGMA synchronous");
    ASSERT_TRUE(*sync->Step());
    EXPECT_EQ(sync->Int(0), 2);  // FULL
  }
  auto again = JobStore::Open(path);  // re-opening applies nothing twice
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->schema_version(), JobStore::kSchemaVersion);
}

TEST(JobStore, RefusesANewerSchema) {
  const std::string path = DbPath("newer.db");
  {
    auto s = JobStore::Open(path);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->db().Exec("PRAGMA user_version = 99").ok());
  }
  auto s = JobStore::Open(path);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(JobStore, RoundTripsJobsAndEvents) {
  auto s = JobStore::Open(DbPath("roundtrip.db"));
  ASSERT_TRUE(s.ok());
  JobStore& st = **s;
  StoredJob j;
  j.job.set_job_id("job-1");
  j.job.set_state(v1::QUEUED);
  j.job.set_priority(3);
  (*j.job.mutable_labels())["a"] = "b";
  ASSERT_TRUE(st.Insert(j, "key").ok());
  EXPECT_GT(j.row, 0);
  StoredJob dup = j;
  dup.job.set_job_id("job-2");
  EXPECT_EQ(st.Insert(dup, "key").code(), absl::StatusCode::kAlreadyExists);
  j.lease_id = "lease-1";
  j.job.set_state(v1::RUNNING);
  ASSERT_TRUE(st.Update(j).ok());
  auto got = st.FindByLease("lease-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->job.labels().at("a"), "b");
  EXPECT_EQ((*got)->job.state(), v1::RUNNING);
  EXPECT_EQ((*st.FindByIdempotencyKey("key"))->job.job_id(), "job-1");
  for (int seq = 1; seq <= 3; ++seq) {
    v1::JobEvent e;
    e.set_job_id("job-1");
    e.set_seq(seq);
    e.set_message("m" + std::to_string(seq));
    ASSERT_TRUE(st.AppendEvent(e).ok());
  }
  v1::JobEvent again;
  again.set_job_id("job-1");
  again.set_seq(2);
  EXPECT_FALSE(st.AppendEvent(again).ok());  // a seq is never reused
  auto ev = st.EventsAfter("job-1", 1, 10);
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->size(), 2u);
  EXPECT_EQ((*ev)[0].message(), "m2");
  StoredJob missing;
  missing.job.set_job_id("job-x");
  EXPECT_EQ(st.Update(missing).code(), absl::StatusCode::kNotFound);
}

// A database as schema v2 left it (the shipped v1 + v2 statements, verbatim),
// with one job in it, is migrated to v3 in place: the job survives and the new
// checkpoint column reads as "no checkpoint" until one is stored.
TEST(JobStore, MigratesAVersion2DatabaseAndStoresCheckpoints) {
  const std::string path = DbPath("v2.db");
  v1::Job job;
  job.set_job_id("job-old");
  job.set_state(v1::QUEUED);
  job.set_recipe_yaml("s:\n  m_modifiers:\n    X: {}\n");
  {
    auto db = SqliteDb::Open(path);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec(SchemaAsShipped(2)).ok());
    auto ins = (*db)->Prepare(
        "INSERT INTO jobs(job_id, idempotency_key, state, priority, requires_gpu, mem_estimate, lease_id, "
        "worker_id, cancel_requested, report_json, job, request_sha256) VALUES(?,?,?,0,0,0,'','',0,'',?,?)");
    ASSERT_TRUE(ins.ok()) << ins.status();
    ins->Bind(1, job.job_id()).Bind(2, std::string("old-key")).Bind(3, static_cast<int64_t>(v1::QUEUED));
    ins->BindBlob(4, job.SerializeAsString()).Bind(5, std::string("abc"));
    ASSERT_TRUE(ins->Run().ok());
  }
  const std::string digest(64, 'c');
  {
    auto s = JobStore::Open(path);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ((*s)->schema_version(), JobStore::kSchemaVersion);
    auto got = (*s)->Get("job-old");
    ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
    EXPECT_EQ((*got)->job.recipe_yaml(), job.recipe_yaml());
    EXPECT_EQ((*got)->request_sha256, "abc");
    EXPECT_EQ((*got)->checkpoint_digest, "");
    EXPECT_EQ((*(*s)->FindByIdempotencyKey("old-key"))->job.job_id(), "job-old");
    StoredJob j = **got;
    j.checkpoint_digest = digest;
    ASSERT_TRUE((*s)->Update(j).ok());
    StoredJob fresh;
    fresh.job.set_job_id("job-new");
    fresh.checkpoint_digest = std::string(64, 'd');
    ASSERT_TRUE((*s)->Insert(fresh, "").ok());
  }
  auto s = JobStore::Open(path);  // durable across reopen
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*(*s)->Get("job-old"))->checkpoint_digest, digest);
  EXPECT_EQ((*(*s)->Get("job-new"))->checkpoint_digest, std::string(64, 'd'));
  StoredJob cleared = **(*s)->Get("job-old");
  cleared.checkpoint_digest.clear();
  ASSERT_TRUE((*s)->Update(cleared).ok());
  EXPECT_EQ((*(*s)->Get("job-old"))->checkpoint_digest, "");
  auto null_check = (*s)->db().Prepare("SELECT checkpoint_digest IS NULL FROM jobs WHERE job_id='job-old'");
  ASSERT_TRUE(null_check.ok());
  ASSERT_TRUE(*null_check->Step());
  EXPECT_EQ(null_check->Int(0), 1);  // "" is stored as NULL
}

// A v3 database (the shipped v1..v3 statements, verbatim) holding SUCCEEDED
// jobs of two models: migrating to v4 backfills model_digest from each blob,
// so the indexed scan finds exactly that model's SUCCEEDED jobs, newest first.
TEST(JobStore, MigratesAVersion3DatabaseBackfillingModelDigests) {
  const std::string path = DbPath("v3.db");
  const std::string ma(64, 'a'), mb(64, 'b');
  {
    auto db = SqliteDb::Open(path);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec(SchemaAsShipped(3)).ok());
    const struct { const char* id; const std::string* model; v1::JobState state; } rows[] = {
        {"j1", &ma, v1::SUCCEEDED}, {"j2", &mb, v1::SUCCEEDED}, {"j3", &ma, v1::FAILED}, {"j4", &ma, v1::SUCCEEDED}};
    for (const auto& r : rows) {
      v1::Job job;
      job.set_job_id(r.id);
      job.set_model_digest(*r.model);
      job.set_state(r.state);
      auto ins = (*db)->Prepare(
          "INSERT INTO jobs(job_id, state, priority, requires_gpu, mem_estimate, job) VALUES(?,?,0,0,0,?)");
      ASSERT_TRUE(ins.ok()) << ins.status();
      ins->Bind(1, std::string(r.id)).Bind(2, static_cast<int64_t>(r.state)).BindBlob(3, job.SerializeAsString());
      ASSERT_TRUE(ins->Run().ok());
    }
  }
  // Read-only opens never migrate: the old file is refused, left at v3.
  EXPECT_EQ(JobStore::OpenReadOnly(path).status().code(), absl::StatusCode::kFailedPrecondition);
  auto s = JobStore::Open(path);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ((*s)->schema_version(), JobStore::kSchemaVersion);
  auto of_a = (*s)->SucceededOfModel(ma, 0, 10);
  ASSERT_TRUE(of_a.ok()) << of_a.status();
  ASSERT_EQ(of_a->size(), 2u);
  EXPECT_EQ((*of_a)[0].job.job_id(), "j4");
  EXPECT_EQ((*of_a)[1].job.job_id(), "j1");
  auto page2 = (*s)->SucceededOfModel(ma, (*of_a)[0].row, 10);  // paging by row
  ASSERT_TRUE(page2.ok());
  ASSERT_EQ(page2->size(), 1u);
  EXPECT_EQ((*page2)[0].job.job_id(), "j1");
  EXPECT_EQ((*s)->SucceededOfModel(mb, 0, 10)->size(), 1u);
  // New rows carry the column from Insert.
  StoredJob fresh;
  fresh.job.set_job_id("j5");
  fresh.job.set_model_digest(mb);
  fresh.job.set_state(v1::SUCCEEDED);
  ASSERT_TRUE((*s)->Insert(fresh, "").ok());
  EXPECT_EQ((*s)->SucceededOfModel(mb, 0, 10)->front().job.job_id(), "j5");
  // The planner uses the index (no full scan of jobs).
  auto plan = (*s)->db().Prepare(
      "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE model_digest=? AND state=? ORDER BY id DESC");
  ASSERT_TRUE(plan.ok());
  std::string detail;
  while (*plan->Step()) detail += plan->Text(3) + ";";
  EXPECT_NE(detail.find("jobs_model"), std::string::npos) << detail;
}

TEST(JobStore, ReadOnlyOpenReadsButNeverWritesOrCreates) {
  const std::string path = DbPath("ro.db");
  EXPECT_FALSE(JobStore::OpenReadOnly(path).ok());  // no file: nothing is created
  EXPECT_FALSE(fs::exists(path));
  auto rw = JobStore::Open(path);
  ASSERT_TRUE(rw.ok()) << rw.status();
  StoredJob j;
  j.job.set_job_id("job-1");
  j.job.set_state(v1::QUEUED);
  ASSERT_TRUE((*rw)->Insert(j, "k").ok());
  auto ro = JobStore::OpenReadOnly(path);  // beside the live writer (WAL)
  ASSERT_TRUE(ro.ok()) << ro.status();
  EXPECT_EQ((*(*ro)->Get("job-1"))->job.state(), v1::QUEUED);
  StoredJob other;
  other.job.set_job_id("job-2");
  EXPECT_FALSE((*ro)->Insert(other, "").ok());
  j.job.set_state(v1::RUNNING);
  ASSERT_TRUE((*rw)->Update(j).ok());
  EXPECT_EQ((*(*ro)->Get("job-1"))->job.state(), v1::RUNNING);  // sees later commits
  EXPECT_FALSE((*(*rw)->Get("job-2")).has_value());
}

}  // namespace
}  // namespace squeeze::server
