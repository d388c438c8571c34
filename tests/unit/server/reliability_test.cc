// Faults the service must survive: a full object store (quota), two writers
// committing the same blob at once, wall-clock jumps under live leases,
// metrics scrapes racing submits; and the offline integrity check
// (LocalObjectStore::Verify, VerifyDataDir) finding real damage.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/sqlite_db.h"
#include "server/coordinator/verify.h"
#include "server/objectstore/local_object_store.h"
#include "server/objectstore/manifest.h"
#include "server/objectstore/sha256.h"
#include "tests/common/temp_dirs.h"
#include "tests/common/test_coordinator.h"

namespace squeeze::server {
namespace {
namespace fs = std::filesystem;
using store::LocalObjectStore;

size_t FilesUnder(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

TEST(ObjectStoreQuota, AnUploadThatWouldCrossItFailsAndLeavesNothing) {
  const fs::path root = test_inputs::EmptyPerTestDir("quota_");
  auto s = LocalObjectStore::Open(root.string(), {.max_bytes = 1000});
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE((*s)->Put(std::string(600, 'a')).ok());
  {
    auto w = (*s)->NewBlob();
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append(std::string(300, 'b')).ok());  // 900 of 1000: fits
    // A second writer in progress sees the first one's reservation.
    auto w2 = (*s)->NewBlob();
    ASSERT_TRUE(w2.ok());
    absl::Status full = (*w2)->Append(std::string(200, 'c'));
    EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
    EXPECT_NE(full.message().find("--store-max-bytes 1000"), std::string::npos) << full;
    absl::Status full2 = (*w)->Append(std::string(101, 'b'));  // 1001: one byte over
    EXPECT_EQ(full2.code(), absl::StatusCode::kResourceExhausted) << full2;
  }  // both abandoned: their temporary files and reservations go away
  EXPECT_EQ((*s)->Usage()->blobs, 1);
  EXPECT_EQ((*s)->Usage()->bytes, 600);
  EXPECT_EQ(FilesUnder(root / "blobs"), 1u);
  EXPECT_EQ(FilesUnder(root / "tmp"), 0u);
  // The reservations were released: 400 more bytes fit exactly.
  auto last = (*s)->Put(std::string(400, 'd'));
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ((*s)->Usage()->bytes, 1000);
  EXPECT_EQ((*s)->Put("x").status().code(), absl::StatusCode::kResourceExhausted);
  // Reopened with the same quota, the stored bytes are counted from disk.
  s->reset();
  auto again = LocalObjectStore::Open(root.string(), {.max_bytes = 1000});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->Put("x").status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(LocalObjectStore::Open(root.string(), {.max_bytes = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  fs::remove_all(root);
}

TEST(ObjectStoreUsageRace, ConcurrentCommitsOfOneBlobCountItOnce) {
  const fs::path root = test_inputs::EmptyPerTestDir("race_");
  auto s = LocalObjectStore::Open(root.string());
  ASSERT_TRUE(s.ok());
  constexpr int kRounds = 20, kThreads = 6;
  for (int round = 0; round < kRounds; ++round) {
    const std::string content(4096 + round, static_cast<char>('a' + round));
    // Every writer has all its bytes before any commits, so the commits race.
    std::vector<std::unique_ptr<store::BlobWriter>> writers;
    for (int t = 0; t < kThreads; ++t) {
      auto w = (*s)->NewBlob();
      ASSERT_TRUE(w.ok());
      ASSERT_TRUE((*w)->Append(content).ok());
      writers.push_back(*std::move(w));
    }
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (auto& w : writers) {
      threads.emplace_back([&w, &ok] { ok += w->Commit().ok() ? 1 : 0; });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), kThreads);
  }
  auto u = (*s)->Usage();
  EXPECT_EQ(u->blobs, kRounds);
  int64_t bytes = 0;
  for (int round = 0; round < kRounds; ++round) bytes += 4096 + round;
  EXPECT_EQ(u->bytes, bytes);
  EXPECT_EQ(FilesUnder(root / "blobs"), static_cast<size_t>(kRounds));
  fs::remove_all(root);
}

TEST(ObjectStoreVerify, FindsCorruptBlobsAndBrokenManifests) {
  const fs::path root = test_inputs::EmptyPerTestDir("verify_");
  auto s = LocalObjectStore::Open(root.string());
  ASSERT_TRUE(s.ok());
  const std::string a = *(*s)->Put("file a"), b = *(*s)->Put("file b, longer");
  store::Manifest m;
  m.files = {{"a.txt", a, 6}, {"b.txt", b, 14}};
  const std::string manifest = *(*s)->Put(m.ToJson());
  auto r = (*s)->Verify();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ok()) << r->problems.front();
  EXPECT_EQ(r->blobs, 3);
  EXPECT_EQ(r->manifests, 1);
  // Flip a byte of blob a (blobs are 0444: make it writable first).
  const std::string path_a = (*s)->BlobPath(a);
  ::chmod(path_a.c_str(), 0644);
  { std::ofstream(path_a, std::ios::binary | std::ios::trunc) << "file A"; }
  // Remove blob b, which the manifest names.
  fs::remove((*s)->BlobPath(b));
  r = (*s)->Verify();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->problems.size(), 2u);
  EXPECT_NE(r->problems[0].find(a + ": content hashes to"), std::string::npos) << r->problems[0];
  EXPECT_NE(r->problems[1].find("manifest " + manifest + ": file b.txt"), std::string::npos) << r->problems[1];
  EXPECT_NE(r->problems[1].find("is missing"), std::string::npos) << r->problems[1];
  fs::remove_all(root);
}

// A coordinator clock whose wall time can jump while the monotonic one moves
// only when told (as NTP steps or a VM resume do).
class JumpingClock : public Clock {
 public:
  int64_t MonotonicMs() override { return mono_; }
  int64_t UnixMs() override { return wall_; }
  void Advance(int64_t ms) {
    mono_ += ms;
    wall_ += ms;
  }
  void JumpWall(int64_t ms) { wall_ += ms; }

 private:
  int64_t mono_ = 5000;
  int64_t wall_ = 1'700'000'000'000;
};

class CoordinatorFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test_inputs::EmptyPerTestDir("coordfault_");
    CoordinatorOptions o = test_inputs::TestCoordinatorOptions(dir_, &clock_);
    o.lease_ttl_ms = 2000;
    auto c = test_inputs::OpenTestCoordinator(o);
    ASSERT_TRUE(c.ok()) << c.status();
    c_ = *std::move(c);
    store::Manifest m;
    m.files.push_back({"model.safetensors", *c_->objects().Put("model bytes"), 11});
    model_ = *c_->objects().Put(m.ToJson());
  }
  void TearDown() override {
    c_.reset();
    fs::remove_all(dir_);
  }
  v1::Job Submit() {
    v1::SubmitJobRequest r;
    r.set_recipe_yaml("stage:\n  m_modifiers:\n    X: {}\n");
    r.set_model_digest(model_);
    auto j = c_->Submit(r);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? *j : v1::Job();
  }
  std::string Register() {
    v1::Capabilities caps;
    caps.set_cpu_cores(2);
    caps.set_ram_bytes(8ll << 30);
    return c_->RegisterWorker(caps)->worker_id();
  }
  fs::path dir_;
  JumpingClock clock_;
  std::unique_ptr<Coordinator> c_;
  std::string model_;
};

TEST_F(CoordinatorFaultTest, WallClockJumpsDoNotExpireLiveLeases) {
  const v1::Job job = Submit();
  const std::string w = Register();
  auto t = c_->LeaseTask(w, 0);
  ASSERT_TRUE(t.ok() && t->has_value());
  const std::string lease = (*t)->lease_id();
  // The wall clock leaps a day forward, then two days back: no lease expires.
  clock_.JumpWall(24 * 3600 * 1000LL);
  EXPECT_EQ(*c_->ExpireLeases(), 0);
  clock_.JumpWall(-48 * 3600 * 1000LL);
  EXPECT_EQ(*c_->ExpireLeases(), 0);
  // Heartbeats within the TTL (monotonic) keep it across further jumps.
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(1500);
    clock_.JumpWall(i % 2 ? 3'600'000 : -3'600'000);
    v1::HeartbeatRequest hb;
    hb.set_lease_id(lease);
    ASSERT_TRUE(c_->Heartbeat(hb)->lease_valid());
    EXPECT_EQ(*c_->ExpireLeases(), 0);
  }
  EXPECT_EQ(c_->GetJob(job.job_id())->state(), v1::RUNNING);
  // Silence for a TTL of monotonic time does expire it, whatever the wall says.
  clock_.JumpWall(-24 * 3600 * 1000LL);
  clock_.Advance(2000);
  EXPECT_EQ(*c_->ExpireLeases(), 1);
  EXPECT_EQ(c_->GetJob(job.job_id())->state(), v1::QUEUED);
}

TEST_F(CoordinatorFaultTest, StatsDuringSubmitsSeesEveryJobAndNeverFails) {
  std::atomic<bool> done{false};
  std::atomic<int> scrapes{0}, errors{0};
  std::thread scraper([&] {
    while (!done) {
      absl::StatusOr<CoordinatorStats> s = c_->Stats();
      if (s.ok()) {
        ++scrapes;
      } else {
        ++errors;
      }
    }
  });
  constexpr int kJobs = 150;
  for (int i = 0; i < kJobs; ++i) Submit();
  done = true;
  scraper.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(scrapes.load(), 0);
  auto s = c_->Stats();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->jobs_by_state[v1::QUEUED], kJobs);
  EXPECT_EQ(s->queued_cpu, kJobs);
}

TEST_F(CoordinatorFaultTest, VerifyDataDirPassesASoundDirAndNamesDamage) {
  const v1::Job a = Submit(), b = Submit();
  const std::string w = Register();
  auto t = c_->LeaseTask(w, 0);
  ASSERT_TRUE(t.ok() && t->has_value());
  v1::CompleteTaskRequest done;
  done.set_lease_id((*t)->lease_id());
  done.set_artifact_digest(model_);
  ASSERT_TRUE(c_->CompleteTask(done)->accepted());
  c_.reset();  // offline, as the tool expects
  auto r = VerifyDataDir(dir_.string());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ok()) << r->Summary();
  EXPECT_EQ(r->jobs, 2);
  EXPECT_EQ(r->events, 4);  // a: submitted, leased, succeeded; b: submitted
  EXPECT_EQ(r->manifests, 1);
  // A gap in a job's events and a missing artifact manifest are both named.
  {
    auto db = SqliteDb::Open((dir_ / "jobs.db").string());
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("DELETE FROM events WHERE seq = 2 AND job_id = '" + a.job_id() + "'").ok());
  }
  fs::remove(dir_ / "objects" / "blobs" / model_.substr(0, 2) / model_);
  r = VerifyDataDir(dir_.string());
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok());
  const std::string text = r->Summary();
  EXPECT_NE(text.find("job " + a.job_id() + ": event 2 has seq 3"), std::string::npos) << text;
  // b's events are intact (its model, shared with a's artifact, is gone too).
  EXPECT_EQ(text.find("job " + b.job_id() + ": event"), std::string::npos) << text;
  EXPECT_EQ(text.find("job " + b.job_id() + ": last_seq"), std::string::npos) << text;
  EXPECT_NE(text.find("job " + b.job_id() + ": model " + model_ + " is not in the object store"), std::string::npos)
      << text;
  EXPECT_NE(text.find("artifact " + model_ + " is not in the object store"), std::string::npos) << text;
  EXPECT_EQ(VerifyDataDir((dir_ / "nothing").string()).status().code(), absl::StatusCode::kNotFound);
}

// The in-memory tables hold live things only: after many jobs were watched,
// run and finished, no last_seq / watcher / stage entry is left (before the
// fix last_seq_ kept one entry per job ever touched).
TEST_F(CoordinatorFaultTest, InMemoryTablesHoldOnlyLiveJobs) {
  const std::string w = Register();
  constexpr int kJobs = 40;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) ids.push_back(Submit().job_id());
  for (int i = 0; i < kJobs; ++i) {
    auto batch = c_->WaitEvents(ids[i], 0, 0);  // a watcher came and went
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_EQ(batch->events.size(), 1u);
  }
  for (int i = 0; i < kJobs / 2; ++i) {
    auto t = c_->LeaseTask(w, 0);
    ASSERT_TRUE(t.ok() && t->has_value());
    v1::HeartbeatRequest hb;
    hb.set_lease_id((*t)->lease_id());
    v1::Progress* p = hb.add_progress();
    p->set_stage("s");
    p->set_current(1);
    p->set_total(4);
    ASSERT_TRUE(c_->Heartbeat(hb).ok());
    v1::CompleteTaskRequest done;
    done.set_lease_id((*t)->lease_id());
    done.set_artifact_digest(model_);
    ASSERT_TRUE(c_->CompleteTask(done)->accepted());
  }
  auto s = c_->Stats();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->cached_last_seq, 0);
  EXPECT_EQ(s->cached_watchers, 0);
  EXPECT_EQ(s->cached_stage_starts, 0);
  EXPECT_EQ(s->registered_workers, 1);
  EXPECT_GT(s->sqlite_bytes, 0);
  // A watcher that waits sees the events that arrive meanwhile (the cache is
  // filled on demand and kept up to date while it waits).
  std::thread watcher([&] {
    auto batch = c_->WaitEvents(ids.back(), 1, 20'000);
    ASSERT_TRUE(batch.ok()) << batch.status();
    ASSERT_FALSE(batch->events.empty());
    EXPECT_EQ(batch->events[0].seq(), 2);
  });
  while (c_->Stats()->cached_watchers == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(c_->Cancel(ids.back()).ok());
  watcher.join();
  EXPECT_EQ(c_->Stats()->cached_last_seq, 0);
}

// Churned workers are forgotten once idle for forget_worker_ms (10 min by
// default); one that heartbeats its lease is kept however long it runs, and a
// forgotten one is told to register again.
TEST_F(CoordinatorFaultTest, IdleWorkersAreForgottenBusyOnesKept) {
  Submit();
  const std::string idle = Register(), busy = Register();
  auto t = c_->LeaseTask(busy, 0);
  ASSERT_TRUE(t.ok() && t->has_value());
  v1::HeartbeatRequest hb;
  hb.set_lease_id((*t)->lease_id());
  for (int i = 0; i < 30; ++i) {  // a minute of heartbeats (the TTL here is 2 s)
    clock_.Advance(2000);
    ASSERT_TRUE(c_->Heartbeat(hb)->lease_valid());
    EXPECT_EQ(*c_->ExpireLeases(), 0);
  }
  EXPECT_EQ(c_->Stats()->registered_workers, 2);  // 1 minute idle: not yet
  for (int i = 0; i < 600; ++i) {
    clock_.Advance(1000);
    ASSERT_TRUE(c_->Heartbeat(hb)->lease_valid());
    ASSERT_EQ(*c_->ExpireLeases(), 0);
  }
  auto s = c_->Stats();
  EXPECT_EQ(s->registered_workers, 1);
  EXPECT_EQ(s->workers_busy, 1);
  EXPECT_EQ(c_->LeaseTask(idle, 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c_->GetJob((*t)->job_id())->state(), v1::RUNNING);
}

// name -> sha256 of every file under `dir` except SQLite's shared-memory
// index (jobs.db-shm: every reader, even a read-only one, sets its read marks
// there by design; it holds no data and is rebuilt from the WAL).
std::map<std::string, std::string> HashTree(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().filename() == "jobs.db-shm") continue;
    absl::StatusOr<std::string> h = store::Sha256File(e.path().string());
    out[e.path().lexically_relative(dir).string()] = h.ok() ? *h : h.status().ToString();
  }
  return out;
}

TEST_F(CoordinatorFaultTest, VerifyBesideALiveCoordinatorChangesNothing) {
  const v1::Job a = Submit();
  Submit();
  const std::string w = Register();
  auto t = c_->LeaseTask(w, 0);
  ASSERT_TRUE(t.ok() && t->has_value());
  v1::CompleteTaskRequest done;
  done.set_lease_id((*t)->lease_id());
  done.set_artifact_digest(model_);
  ASSERT_TRUE(c_->CompleteTask(done)->accepted());
  // An upload in progress on the live coordinator: its bytes sit in objects/tmp.
  auto writer = c_->objects().NewBlob();
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Append("half of an upload").ok());
  ASSERT_EQ(FilesUnder(dir_ / "objects" / "tmp"), 1u);
  const auto before = HashTree(dir_);
  ASSERT_TRUE(before.count("jobs.db")) << "the test needs the database";
  auto r = VerifyDataDir(dir_.string());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ok()) << r->Summary();
  EXPECT_EQ(r->jobs, 2);
  EXPECT_EQ(HashTree(dir_), before);  // not one byte of jobs.db, its WAL or the objects changed
  EXPECT_EQ(FilesUnder(dir_ / "objects" / "tmp"), 1u);
  // The upload goes on and commits; the coordinator keeps working.
  ASSERT_TRUE((*writer)->Append(" and the rest").ok());
  auto digest = (*writer)->Commit("");
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*c_->objects().Get(*digest), "half of an upload and the rest");
  EXPECT_EQ(c_->GetJob(a.job_id())->state(), v1::SUCCEEDED);
  Submit();
}

TEST_F(CoordinatorFaultTest, VerifyNeverMigratesAnOlderDatabase) {
  Submit();
  c_.reset();
  {
    auto db = SqliteDb::Open((dir_ / "jobs.db").string());
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA user_version = 3").ok());
  }
  auto r = VerifyDataDir(dir_.string());
  ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_NE(std::string(r.status().message()).find("schema version 3"), std::string::npos) << r.status();
  auto db = SqliteDb::Open((dir_ / "jobs.db").string());
  ASSERT_TRUE(db.ok());
  auto q = (*db)->Prepare("PRAGMA user_version");
  ASSERT_TRUE(q.ok() && *q->Step());
  EXPECT_EQ(q->Int(0), 3);  // left as it was
}

}  // namespace
}  // namespace squeeze::server
