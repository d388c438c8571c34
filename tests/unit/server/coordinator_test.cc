// The coordinator's state machine driven directly (no network), with a manual
// clock so lease expiry is exact and no test waits on wall time.
#include "server/coordinator/coordinator.h"

#include <filesystem>
#include <limits>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "server/objectstore/local_object_store.h"
#include "server/objectstore/manifest.h"
#include "tests/common/manual_clock.h"
#include "tests/common/test_coordinator.h"
#include "tests/common/temp_dirs.h"

namespace squeeze::server {
namespace {
namespace fs = std::filesystem;

using test_inputs::ManualClock;

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test_inputs::EmptyPerTestDir("coord_");
    Reopen();
    store::Manifest m;
    auto blob = c_->objects().Put("model bytes");
    ASSERT_TRUE(blob.ok());
    m.files.push_back({"model.safetensors", *blob, 11});
    auto d = c_->objects().Put(m.ToJson());
    ASSERT_TRUE(d.ok());
    model_ = *d;
  }
  void TearDown() override {
    c_.reset();
    fs::remove_all(dir_);
  }
  void Reopen() {
    c_.reset();
    CoordinatorOptions o = test_inputs::TestCoordinatorOptions(dir_, &clock_);
    o.lease_ttl_ms = 2000;
    o.default_max_attempts = 2;
    o.validate_recipe = [](const std::string& y) {
      return y.find("Bogus") == std::string::npos ? absl::OkStatus()
                                                 : absl::InvalidArgumentError("stage.Bogus: unknown modifier");
    };
    auto c = test_inputs::OpenTestCoordinator(o);
    ASSERT_TRUE(c.ok()) << c.status();
    c_ = *std::move(c);
  }
  v1::Job Submit(int priority = 0, const std::string& key = "", bool gpu = false) {
    v1::SubmitJobRequest r;
    r.set_recipe_yaml("stage:\n  m_modifiers:\n    X: {}\n");
    r.set_model_digest(model_);
    r.set_priority(priority);
    r.set_idempotency_key(key);
    r.set_requires_gpu(gpu);
    auto j = c_->Submit(r);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? *j : v1::Job();
  }
  std::string Register(int64_t ram = 8ll << 30, int gpus = 0) {
    v1::Capabilities caps;
    caps.set_cpu_cores(2);
    caps.set_ram_bytes(ram);
    for (int i = 0; i < gpus; ++i) caps.add_gpus()->set_memory_bytes(80ll << 30);
    auto r = c_->RegisterWorker(caps);
    EXPECT_TRUE(r.ok());
    return r->worker_id();
  }
  std::optional<v1::Task> Lease(const std::string& worker) {
    auto t = c_->LeaseTask(worker, 0);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : std::nullopt;
  }
  std::vector<v1::JobEvent> Events(const std::string& job, int64_t after = 0) {
    auto b = c_->WaitEvents(job, after, 0);
    EXPECT_TRUE(b.ok());
    return b->events;
  }

  fs::path dir_;
  ManualClock clock_;
  std::unique_ptr<Coordinator> c_;
  std::string model_;
};

// A worker long-polls LeaseTask for up to max_lease_wait_ms and is seen
// again within a lease TTL after that: forgetting it sooner would drop a live
// worker, so Open refuses such a forget_worker_ms, naming both values.
TEST(CoordinatorOptionsTest, ForgetWorkerBelowLongPollPlusTtlIsRefused) {
  const fs::path dir = test_inputs::EmptyPerTestDir("coord_opts_");
  CoordinatorOptions o;
  o.data_dir = dir.string();
  o.start_reaper = false;
  o.lease_ttl_ms = 2000;
  o.max_lease_wait_ms = 30'000;
  o.forget_worker_ms = 31'999;
  auto objects = store::LocalObjectStore::Open((dir / "objects").string());
  ASSERT_TRUE(objects.ok());
  auto refused = Coordinator::Open(o, *std::move(objects));
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  for (const char* part : {"--forget-worker-ms", "31999", "max_lease_wait_ms 30000", "--lease-ttl-ms", "2000",
                           "32000"}) {
    EXPECT_NE(refused.status().message().find(part), absl::string_view::npos) << part << ": " << refused.status();
  }
  EXPECT_FALSE(fs::exists(dir / "jobs.db"));  // refused before anything was written
  EXPECT_EQ(CheckCoordinatorOptions(o).code(), absl::StatusCode::kInvalidArgument);
  // Huge values saturate instead of overflowing the sum.
  CoordinatorOptions huge = o;
  huge.lease_ttl_ms = std::numeric_limits<int64_t>::max();
  huge.forget_worker_ms = std::numeric_limits<int64_t>::max() - 1;
  EXPECT_EQ(CheckCoordinatorOptions(huge).code(), absl::StatusCode::kInvalidArgument);

  o.forget_worker_ms = 32'000;  // exactly the bound: accepted
  EXPECT_TRUE(CheckCoordinatorOptions(o).ok());
  objects = store::LocalObjectStore::Open((dir / "objects").string());
  ASSERT_TRUE(objects.ok());
  auto opened = Coordinator::Open(o, *std::move(objects));
  EXPECT_TRUE(opened.ok()) << opened.status();
  if (opened.ok()) opened->reset();
  fs::remove_all(dir);
}

TEST_F(CoordinatorTest, SubmitValidatesInputsBeforeQueueing) {
  v1::SubmitJobRequest r;
  r.set_recipe_yaml("stage: {}");
  r.set_model_digest(std::string(64, 'a'));
  EXPECT_EQ(c_->Submit(r).status().code(), absl::StatusCode::kNotFound);
  r.set_model_digest("not-a-digest");
  EXPECT_EQ(c_->Submit(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.set_model_digest(model_);
  r.set_recipe_yaml("stage: Bogus");
  auto s = c_->Submit(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("stage.Bogus"), absl::string_view::npos) << s;
  auto list = c_->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->jobs_size(), 0);
}

TEST_F(CoordinatorTest, IdempotencyKeyNeverMakesTwoJobs) {
  const v1::Job a = Submit(0, "key-1");
  const v1::Job b = Submit(0, "key-1");
  const v1::Job c = Submit(0, "key-2");
  EXPECT_EQ(a.job_id(), b.job_id());
  EXPECT_NE(a.job_id(), c.job_id());
  EXPECT_EQ(c_->ListJobs(v1::ListJobsRequest())->jobs_size(), 2);
}

TEST_F(CoordinatorTest, IdempotencyKeyWithDifferentRequestIsRefused) {
  const v1::Job first = Submit(0, "key-x");
  ASSERT_FALSE(first.job_id().empty());
  v1::SubmitJobRequest r;
  r.set_recipe_yaml("stage:\n  m_modifiers:\n    X: {}\n");
  r.set_model_digest(model_);
  r.set_idempotency_key("key-x");
  // Same request (as Submit builds it) -> the first job.
  auto same = c_->Submit(r);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->job_id(), first.job_id());
  // Each differing field -> ALREADY_EXISTS naming the key, and no new job.
  std::vector<v1::SubmitJobRequest> variants(4, r);
  variants[0].set_priority(5);
  variants[1].set_recipe_yaml("stage:\n  m_modifiers:\n    Y: {}\n");
  (*variants[2].mutable_labels())["team"] = "a";
  variants[3].set_seed(42);
  for (const auto& v : variants) {
    auto s = c_->Submit(v).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
    EXPECT_NE(s.message().find("key-x"), absl::string_view::npos) << s;
  }
  EXPECT_EQ(c_->ListJobs(v1::ListJobsRequest())->jobs_size(), 1);
}

TEST_F(CoordinatorTest, FullLifecycleWithGaplessEvents) {
  const v1::Job job = Submit();
  EXPECT_EQ(job.state(), v1::QUEUED);
  const std::string w = Register();
  auto task = Lease(w);
  ASSERT_TRUE(task);
  EXPECT_EQ(task->job_id(), job.job_id());
  v1::HeartbeatRequest hb;
  hb.set_lease_id(task->lease_id());
  for (int i = 1; i <= 3; ++i) {
    auto* p = hb.add_progress();
    p->set_stage("s");
    p->set_unit("layer");
    p->set_current(i);
    p->set_total(5);
  }
  clock_.Advance(100);
  auto reply = c_->Heartbeat(hb);
  ASSERT_TRUE(reply.ok());
  EXPECT_TRUE(reply->lease_valid());
  EXPECT_FALSE(reply->cancel());
  v1::CompleteTaskRequest done;
  done.set_lease_id(task->lease_id());
  done.set_artifact_digest(model_);  // any stored manifest
  done.set_report_json("{\"ok\":true}");
  auto ack = c_->CompleteTask(done);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_TRUE(ack->accepted());
  auto events = Events(job.job_id());
  ASSERT_EQ(events.size(), 6u);  // QUEUED, RUNNING, 3 progress, SUCCEEDED
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
  EXPECT_EQ(events.back().state(), v1::SUCCEEDED);
  // Resume after seq 4: exactly the rest.
  auto rest = Events(job.job_id(), 4);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].seq(), 5);
  EXPECT_EQ(c_->GetReport(job.job_id())->report_json(), "{\"ok\":true}");
  // A second completion with the same lease is refused.
  EXPECT_FALSE(c_->CompleteTask(done)->accepted());
}

TEST_F(CoordinatorTest, EachJobIsLeasedOnceAndByPriorityThenFifo) {
  const v1::Job low1 = Submit(0);
  const v1::Job low2 = Submit(0);
  const v1::Job high = Submit(5);
  const std::string w1 = Register(), w2 = Register();
  std::vector<std::string> order;
  std::set<std::string> leased;
  for (int i = 0; i < 3; ++i) {
    auto t = Lease(i % 2 ? w2 : w1);
    ASSERT_TRUE(t);
    order.push_back(t->job_id());
    EXPECT_TRUE(leased.insert(t->job_id()).second);
  }
  EXPECT_FALSE(Lease(w1));
  EXPECT_EQ(order, (std::vector<std::string>{high.job_id(), low1.job_id(), low2.job_id()}));
}

TEST_F(CoordinatorTest, GpuAndMemoryRequirementsAreHonoured) {
  const v1::Job gpu_job = Submit(0, "", /*gpu=*/true);
  const std::string cpu = Register();
  EXPECT_FALSE(Lease(cpu));
  const std::string tiny = Register(/*ram=*/1 << 20, /*gpus=*/1);
  EXPECT_FALSE(Lease(tiny));  // memory estimate > 1 MiB
  const std::string gpu = Register(8ll << 30, 1);
  auto t = Lease(gpu);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->job_id(), gpu_job.job_id());
}

TEST_F(CoordinatorTest, ExpiredLeasesRequeueThenFailAfterMaxAttempts) {
  const v1::Job job = Submit();
  const std::string w = Register();
  auto t1 = Lease(w);
  ASSERT_TRUE(t1);
  clock_.Advance(1999);
  EXPECT_EQ(*c_->ExpireLeases(), 0);
  clock_.Advance(1);
  EXPECT_EQ(*c_->ExpireLeases(), 1);
  EXPECT_EQ(c_->GetJob(job.job_id())->state(), v1::QUEUED);
  // The old lease is dead: its heartbeat says so and its result is refused.
  v1::HeartbeatRequest hb;
  hb.set_lease_id(t1->lease_id());
  EXPECT_FALSE(c_->Heartbeat(hb)->lease_valid());
  auto t2 = Lease(w);
  ASSERT_TRUE(t2);
  EXPECT_EQ(t2->attempt(), 2);
  v1::CompleteTaskRequest stale;
  stale.set_lease_id(t1->lease_id());
  stale.set_artifact_digest(model_);
  EXPECT_FALSE(c_->CompleteTask(stale)->accepted());
  clock_.Advance(2000);
  EXPECT_EQ(*c_->ExpireLeases(), 1);
  const v1::Job failed = *c_->GetJob(job.job_id());
  EXPECT_EQ(failed.state(), v1::FAILED);
  EXPECT_NE(failed.error().find("lease expired"), std::string::npos) << failed.error();
}

TEST_F(CoordinatorTest, HeartbeatsKeepTheLease) {
  Submit();
  const std::string w = Register();
  auto t = Lease(w);
  ASSERT_TRUE(t);
  v1::HeartbeatRequest hb;
  hb.set_lease_id(t->lease_id());
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(1500);
    EXPECT_TRUE(c_->Heartbeat(hb)->lease_valid());
    EXPECT_EQ(*c_->ExpireLeases(), 0);
  }
}

TEST_F(CoordinatorTest, CancelQueuedAndRunning) {
  const v1::Job a = Submit();
  EXPECT_EQ(c_->Cancel(a.job_id())->state(), v1::CANCELLED);
  const v1::Job b = Submit();
  const std::string w = Register();
  auto t = Lease(w);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->job_id(), b.job_id());
  EXPECT_EQ(c_->Cancel(b.job_id())->state(), v1::RUNNING);
  v1::HeartbeatRequest hb;
  hb.set_lease_id(t->lease_id());
  EXPECT_TRUE(c_->Heartbeat(hb)->cancel());
  v1::FailTaskRequest f;
  f.set_lease_id(t->lease_id());
  f.set_cancelled(true);
  ASSERT_TRUE(c_->FailTask(f)->accepted());
  EXPECT_EQ(c_->GetJob(b.job_id())->state(), v1::CANCELLED);
  EXPECT_FALSE(Lease(w));
}

TEST_F(CoordinatorTest, ReleaseRequeuesWithoutChargingAnAttempt) {
  const v1::Job job = Submit();
  const std::string w = Register();
  for (int i = 0; i < 4; ++i) {  // more releases than max_attempts (2)
    auto t = Lease(w);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->attempt(), 1);
    v1::ReleaseTaskRequest r;
    r.set_lease_id(t->lease_id());
    r.set_reason("SIGTERM");
    ASSERT_TRUE(c_->ReleaseTask(r)->accepted());
    EXPECT_EQ(c_->GetJob(job.job_id())->state(), v1::QUEUED);
  }
}

TEST_F(CoordinatorTest, RestartKeepsJobsLeasesAndEvents) {
  const v1::Job queued = Submit(0, "k");
  const v1::Job running = Submit(1);
  const std::string w = Register();
  auto t = Lease(w);
  ASSERT_TRUE(t);
  ASSERT_EQ(t->job_id(), running.job_id());
  Reopen();  // as after kill -9: everything comes from SQLite
  EXPECT_EQ(c_->GetJob(queued.job_id())->state(), v1::QUEUED);
  EXPECT_EQ(c_->GetJob(running.job_id())->state(), v1::RUNNING);
  EXPECT_EQ(Submit(0, "k").job_id(), queued.job_id());  // idempotency survives
  // The running job's worker may still be alive: its lease is honoured.
  v1::HeartbeatRequest hb;
  hb.set_lease_id(t->lease_id());
  EXPECT_TRUE(c_->Heartbeat(hb)->lease_valid());
  v1::CompleteTaskRequest done;
  done.set_lease_id(t->lease_id());
  done.set_artifact_digest(model_);
  EXPECT_TRUE(c_->CompleteTask(done)->accepted());
  auto ev = Events(running.job_id());
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back().seq(), static_cast<int64_t>(ev.size()));
  // Workers must register again after a restart.
  EXPECT_EQ(c_->LeaseTask(w, 0).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, WaitingWatcherWakesOnItsJobsEvent) {
  const v1::Job job = Submit();
  const v1::Job other = Submit();
  absl::StatusOr<WatchBatch> got;
  std::thread watcher([&] { got = c_->WaitEvents(job.job_id(), job.last_seq(), 60'000); });
  c_->Cancel(other.job_id()).IgnoreError();  // another job's event does not end the wait
  ASSERT_TRUE(c_->Cancel(job.job_id()).ok());
  watcher.join();
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->events.size(), 1u);
  EXPECT_EQ(got->events[0].state(), v1::CANCELLED);
  EXPECT_TRUE(got->done);
  EXPECT_EQ(c_->WaitEvents("job-nope", 0, 0).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, ListJobsPagesAndFiltersByLabel) {
  for (int i = 0; i < 5; ++i) {
    v1::SubmitJobRequest r;
    r.set_recipe_yaml("s: {}");
    r.set_model_digest(model_);
    (*r.mutable_labels())["team"] = i % 2 ? "a" : "b";
    ASSERT_TRUE(c_->Submit(r).ok());
  }
  v1::ListJobsRequest q;
  q.set_page_size(2);
  std::set<std::string> seen;
  for (int page = 0; page < 5; ++page) {
    auto l = c_->ListJobs(q);
    ASSERT_TRUE(l.ok());
    for (const auto& j : l->jobs()) EXPECT_TRUE(seen.insert(j.job_id()).second);
    if (l->next_page_token().empty()) break;
    q.set_page_token(l->next_page_token());
  }
  EXPECT_EQ(seen.size(), 5u);
  v1::ListJobsRequest f;
  (*f.mutable_label_selector())["team"] = "a";
  EXPECT_EQ(c_->ListJobs(f)->jobs_size(), 2);
}

// A checkpoint as a worker uploads it: two files and their manifest.
std::string PutCheckpoint(store::ObjectStore& objects, const std::string& tag) {
  store::Manifest m;
  const std::string json = "{\"version\":1,\"tag\":\"" + tag + "\"}";
  const std::string tensors = "tensors of " + tag;
  m.files.push_back({"checkpoint.json", *objects.Put(json), static_cast<int64_t>(json.size())});
  m.files.push_back({"checkpoint.safetensors", *objects.Put(tensors), static_cast<int64_t>(tensors.size())});
  return *objects.Put(m.ToJson());
}

std::string StoredCheckpoint(const fs::path& dir, const std::string& job_id) {
  auto store = JobStore::Open((dir / "jobs.db").string());  // a second connection (WAL)
  EXPECT_TRUE(store.ok()) << store.status();
  auto j = (*store)->Get(job_id);
  EXPECT_TRUE(j.ok() && j->has_value());
  return (*j)->checkpoint_digest;
}

TEST_F(CoordinatorTest, ReleasedCheckpointGoesWithTheNextLeaseOnAnyWorkerAndSurvivesRestart) {
  const v1::Job job = Submit();
  const std::string a = Register();
  auto t1 = Lease(a);
  ASSERT_TRUE(t1);
  EXPECT_EQ(t1->checkpoint_digest(), "");  // a fresh job starts from zero
  const std::string ckpt = PutCheckpoint(c_->objects(), "a");
  v1::ReleaseTaskRequest r;
  r.set_lease_id(t1->lease_id());
  r.set_reason("SIGTERM");
  r.set_checkpoint_digest(ckpt);
  ASSERT_TRUE(c_->ReleaseTask(r)->accepted());
  EXPECT_EQ(c_->GetJob(job.job_id())->state(), v1::QUEUED);
  Reopen();  // as after kill -9: the digest is in SQLite, not only in memory
  const std::string b = Register();
  auto t2 = Lease(b);
  ASSERT_TRUE(t2);
  EXPECT_EQ(t2->job_id(), job.job_id());
  EXPECT_EQ(t2->checkpoint_digest(), ckpt);
  EXPECT_EQ(t2->attempt(), 1);  // a release charges no attempt
  bool announced = false;
  for (const auto& e : Events(job.job_id())) {
    announced = announced || e.message().find("resume from checkpoint " + ckpt) != std::string::npos;
  }
  EXPECT_TRUE(announced);
  // A lease that expires (worker killed: no new checkpoint) keeps the old one.
  clock_.Advance(2000);
  EXPECT_EQ(*c_->ExpireLeases(), 1);
  auto t3 = Lease(b);
  ASSERT_TRUE(t3);
  EXPECT_EQ(t3->checkpoint_digest(), ckpt);
  // Success drops the reference.
  v1::CompleteTaskRequest done;
  done.set_lease_id(t3->lease_id());
  done.set_artifact_digest(model_);
  ASSERT_TRUE(c_->CompleteTask(done)->accepted());
  EXPECT_EQ(StoredCheckpoint(dir_, job.job_id()), "");
}

TEST_F(CoordinatorTest, BadCheckpointOnReleaseIsIgnoredAndTheOldOneKept) {
  const v1::Job job = Submit();
  const std::string w = Register();
  const std::string good = PutCheckpoint(c_->objects(), "good");
  auto t = Lease(w);
  ASSERT_TRUE(t);
  v1::ReleaseTaskRequest r;
  r.set_lease_id(t->lease_id());
  r.set_checkpoint_digest(good);
  auto good_ack = c_->ReleaseTask(r);
  ASSERT_TRUE(good_ack.ok() && good_ack->accepted());
  EXPECT_TRUE(good_ack->checkpoint_stored());  // the worker may drop its local copy

  store::Manifest no_json;  // a manifest without checkpoint.json
  no_json.files.push_back({"model.safetensors", *c_->objects().Put("x"), 1});
  store::Manifest missing_file;  // names a blob that was never uploaded
  missing_file.files.push_back({"checkpoint.json", std::string(64, 'e'), 3});
  const std::string bad[] = {"not-a-digest", std::string(64, 'f') /* absent */, *c_->objects().Put("plain blob"),
                             *c_->objects().Put(no_json.ToJson()), *c_->objects().Put(missing_file.ToJson())};
  for (const std::string& digest : bad) {
    auto lease = Lease(w);
    ASSERT_TRUE(lease);
    EXPECT_EQ(lease->checkpoint_digest(), good) << digest;
    v1::ReleaseTaskRequest br;
    br.set_lease_id(lease->lease_id());
    br.set_checkpoint_digest(digest);
    auto ack = c_->ReleaseTask(br);
    ASSERT_TRUE(ack.ok()) << ack.status();
    EXPECT_TRUE(ack->accepted()) << digest;  // a bad checkpoint never refuses the release
    EXPECT_FALSE(ack->checkpoint_stored()) << digest;  // ... but the worker must keep its copy
    EXPECT_EQ(c_->GetJob(job.job_id())->state(), v1::QUEUED);
    const auto events = Events(job.job_id());
    EXPECT_NE(events.back().message().find("checkpoint " + digest + " ignored"), std::string::npos)
        << events.back().message();
  }
  EXPECT_EQ(Lease(w)->checkpoint_digest(), good);
}

TEST_F(CoordinatorTest, CancelAndFailureDropTheCheckpoint) {
  const v1::Job cancelled = Submit();
  const std::string w = Register();
  auto t = Lease(w);
  ASSERT_TRUE(t);
  v1::ReleaseTaskRequest r;
  r.set_lease_id(t->lease_id());
  r.set_checkpoint_digest(PutCheckpoint(c_->objects(), "c"));
  ASSERT_TRUE(c_->ReleaseTask(r)->accepted());
  EXPECT_NE(StoredCheckpoint(dir_, cancelled.job_id()), "");
  ASSERT_TRUE(c_->Cancel(cancelled.job_id()).ok());  // cancelled while queued
  EXPECT_EQ(c_->GetJob(cancelled.job_id())->state(), v1::CANCELLED);
  EXPECT_EQ(StoredCheckpoint(dir_, cancelled.job_id()), "");

  const v1::Job failed = Submit();
  auto t2 = Lease(w);
  ASSERT_TRUE(t2);
  v1::ReleaseTaskRequest r2;
  r2.set_lease_id(t2->lease_id());
  r2.set_checkpoint_digest(PutCheckpoint(c_->objects(), "f"));
  ASSERT_TRUE(c_->ReleaseTask(r2)->accepted());
  auto t3 = Lease(w);
  ASSERT_TRUE(t3);
  v1::FailTaskRequest f;
  f.set_lease_id(t3->lease_id());
  f.set_error("bad input");
  ASSERT_TRUE(c_->FailTask(f)->accepted());
  EXPECT_EQ(c_->GetJob(failed.job_id())->state(), v1::FAILED);
  EXPECT_EQ(StoredCheckpoint(dir_, failed.job_id()), "");
}

// Evaluation options are checked at submit (INVALID_ARGUMENT naming the field),
// stored with the job (durably) and handed to the worker with the lease.
TEST_F(CoordinatorTest, EvalOptionsAreValidatedStoredAndLeased) {
  v1::SubmitJobRequest r;
  r.set_recipe_yaml("stage:\n  m_modifiers:\n    X: {}\n");
  r.set_model_digest(model_);
  const std::pair<std::vector<std::string>, const char*> bad_names[] = {
      {{"copa", ""}, "eval.tasks[1]: empty task name"},
      {{"../etc/passwd"}, "eval.tasks[0]: \"../etc/passwd\" is not a task name"},
      {{"PIQA"}, "eval.tasks[0]"},
      {{"piqa.jsonl"}, "eval.tasks[0]"}};
  for (const auto& [names, want] : bad_names) {
    r.mutable_eval()->clear_tasks();
    for (const std::string& n : names) r.mutable_eval()->add_tasks(n);
    absl::Status s = c_->Submit(r).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << want;
    EXPECT_NE(s.message().find(want), absl::string_view::npos) << s;
  }
  r.mutable_eval()->clear_tasks();
  r.mutable_eval()->add_tasks("copa");
  r.mutable_eval()->add_tasks("tinystories_cloze");
  r.mutable_eval()->set_task_limit(-1);
  absl::Status s = c_->Submit(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("eval.task_limit"), absl::string_view::npos) << s;
  auto list = c_->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->jobs_size(), 0);  // nothing queued by a refused submit

  r.mutable_eval()->set_task_limit(10);
  r.mutable_eval()->set_packed_activations("fp16");
  s = c_->Submit(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("eval.packed_activations: \"fp16\" is not fp32 or int8"), absl::string_view::npos) << s;

  r.mutable_eval()->set_packed_activations("int8");
  r.mutable_eval()->set_task_seed(7);
  r.mutable_eval()->set_no_latency(true);
  auto job = c_->Submit(r);
  ASSERT_TRUE(job.ok()) << job.status();
  Reopen();  // the options come back from SQLite
  const std::string w = Register();
  auto t = Lease(w);
  ASSERT_TRUE(t);
  ASSERT_EQ(t->job_id(), job->job_id());
  EXPECT_EQ(t->eval().tasks().size(), 2);
  EXPECT_EQ(t->eval().tasks(1), "tinystories_cloze");
  EXPECT_EQ(t->eval().task_limit(), 10);
  ASSERT_TRUE(t->eval().has_task_seed());
  EXPECT_EQ(t->eval().task_seed(), 7u);
  EXPECT_TRUE(t->eval().no_latency());
  EXPECT_FALSE(t->eval().no_agreement());
  EXPECT_EQ(t->eval().packed_activations(), "int8");
  EXPECT_EQ(c_->GetJob(job->job_id())->eval().task_limit(), 10);
  // A job without options leases without them (the worker's defaults).
  const v1::Job plain = Submit(0);
  auto t2 = Lease(w);
  ASSERT_TRUE(t2);
  EXPECT_EQ(t2->job_id(), plain.job_id());
  EXPECT_FALSE(t2->has_eval());
}

}  // namespace
}  // namespace squeeze::server
