#include "server/coordinator/job_store.h"

#include <filesystem>

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

}  // namespace
}  // namespace squeeze::server
