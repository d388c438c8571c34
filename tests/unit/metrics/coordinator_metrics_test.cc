// The coordinator's metrics through a real Coordinator (SQLite job store,
// local object store) with a manual clock; values are read back from the
// rendered exposition text, as Prometheus would see them.
#include "server/coordinator/coordinator_metrics.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/objectstore/local_object_store.h"
#include "server/objectstore/manifest.h"
#include "tests/common/manual_clock.h"
#include "tests/common/test_coordinator.h"
#include "tests/common/metrics_text.h"
#include "tests/common/temp_dirs.h"

namespace squeeze::server {
namespace {
namespace fs = std::filesystem;

using test_inputs::ManualClock;
using test_inputs::Sample;

class CoordinatorMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test_inputs::EmptyPerTestDir("coord_metrics_");
    Reopen();
    store::Manifest m;
    auto blob = c_->objects().Put("model bytes");
    ASSERT_TRUE(blob.ok());
    m.files.push_back({"model.safetensors", *blob, 11});
    manifest_json_ = m.ToJson();
    auto d = c_->objects().Put(manifest_json_);
    ASSERT_TRUE(d.ok());
    model_ = *d;
  }
  void TearDown() override {
    c_.reset();
    fs::remove_all(dir_);
  }
  void Reopen() {
    c_.reset();
    registry_ = std::make_unique<metrics::Registry>();
    CoordinatorOptions o = test_inputs::TestCoordinatorOptions(dir_, &clock_);
    o.lease_ttl_ms = 2000;
    o.max_lease_wait_ms = 5000;
    o.default_max_attempts = 3;
    o.metrics = registry_.get();
    auto c = test_inputs::OpenTestCoordinator(o);
    ASSERT_TRUE(c.ok()) << c.status();
    c_ = *std::move(c);
  }
  std::string Submit(bool gpu) {
    v1::SubmitJobRequest r;
    r.set_recipe_yaml("stage:\n  m_modifiers:\n    X: {}\n");
    r.set_model_digest(model_);
    r.set_requires_gpu(gpu);
    auto j = c_->Submit(r);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? j->job_id() : "";
  }
  std::string Register() {
    v1::Capabilities caps;
    caps.set_cpu_cores(2);
    caps.set_ram_bytes(8ll << 30);
    auto r = c_->RegisterWorker(caps);
    EXPECT_TRUE(r.ok());
    return r->worker_id();
  }
  std::optional<v1::Task> Lease(const std::string& w) {
    auto t = c_->LeaseTask(w, 0);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : std::nullopt;
  }
  double Value(const std::string& series) { return Sample(registry_->Render(), series); }

  fs::path dir_;
  ManualClock clock_;
  std::unique_ptr<metrics::Registry> registry_;
  std::unique_ptr<Coordinator> c_;
  std::string model_, manifest_json_;
};

// The memory gauges (issue 11: explain the coordinator's RSS) are real
// figures: glibc's heap and SQLite's own heap are positive, and the table
// entries follow what is live (a worker registered, no job watched).
TEST_F(CoordinatorMetricsTest, MemoryGaugesAndTableEntries) {
  Submit(false);
  Register();
  EXPECT_GT(Value("squeeze_coordinator_memory_bytes{kind=\"heap_in_use\"}"), 0);
  EXPECT_GE(Value("squeeze_coordinator_memory_bytes{kind=\"heap_free\"}"), 0);
  EXPECT_GT(Value("squeeze_coordinator_memory_bytes{kind=\"sqlite\"}"), 0);
  EXPECT_EQ(Value("squeeze_coordinator_table_entries{table=\"workers\"}"), 1);
  EXPECT_EQ(Value("squeeze_coordinator_table_entries{table=\"last_seq\"}"), 0);
  EXPECT_EQ(Value("squeeze_coordinator_table_entries{table=\"watchers\"}"), 0);
  EXPECT_EQ(Value("squeeze_coordinator_table_entries{table=\"stage_starts\"}"), 0);
}

TEST_F(CoordinatorMetricsTest, GaugesFollowTheJobsWorkersAndStore) {
  const std::string text0 = registry_->Render();
  EXPECT_EQ(Sample(text0, "squeeze_coordinator_jobs{state=\"queued\"}"), 0);
  EXPECT_EQ(Sample(text0, "squeeze_objectstore_blobs"), 2);  // model file + its manifest
  EXPECT_EQ(Sample(text0, "squeeze_objectstore_stored_bytes"), 11 + manifest_json_.size());
  EXPECT_EQ(Sample(text0, "squeeze_coordinator_lease_expiries_total"), 0);  // present before any expiry

  Submit(/*gpu=*/false);
  Submit(/*gpu=*/true);
  Submit(/*gpu=*/false);
  std::string text = registry_->Render();
  EXPECT_EQ(Sample(text, "squeeze_coordinator_jobs{state=\"queued\"}"), 3);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_queue_depth{capability=\"cpu\"}"), 2);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_queue_depth{capability=\"gpu\"}"), 1);

  const std::string w = Register();
  clock_.Advance(1500);
  ASSERT_TRUE(Lease(w).has_value());
  text = registry_->Render();
  EXPECT_EQ(Sample(text, "squeeze_coordinator_jobs{state=\"queued\"}"), 2);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_jobs{state=\"running\"}"), 1);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_queue_depth{capability=\"cpu\"}"), 1);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_workers{state=\"busy\"}"), 1);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_workers{state=\"idle\"}"), 0);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_active_leases"), 1);
  // Queue wait: submitted at t=1000, leased at t=2500 (manual clock).
  EXPECT_EQ(Sample(text, "squeeze_coordinator_queue_wait_seconds_count"), 1);
  EXPECT_DOUBLE_EQ(Sample(text, "squeeze_coordinator_queue_wait_seconds_sum"), 1.5);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_queue_wait_seconds_bucket{le=\"1.024\"}"), 0);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_queue_wait_seconds_bucket{le=\"2.048\"}"), 1);

  // A second worker that registers and is then never seen again: idle, then lost.
  Register();
  EXPECT_EQ(Value("squeeze_coordinator_workers{state=\"idle\"}"), 1);
  clock_.Advance(5000 + 2000 + 1);  // past max_lease_wait + TTL
  text = registry_->Render();
  // (the first worker's lease also expired by now but the reaper has not run)
  EXPECT_EQ(Sample(text, "squeeze_coordinator_workers{state=\"lost\"}"), 1);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_workers{state=\"busy\"}"), 1);
}

TEST_F(CoordinatorMetricsTest, ExpiriesRetriesAndDurations) {
  const std::string a = Submit(false);
  const std::string w = Register();
  auto t1 = Lease(w);
  ASSERT_TRUE(t1.has_value());
  clock_.Advance(2001);
  auto n = c_->ExpireLeases();
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, 1);
  EXPECT_EQ(Value("squeeze_coordinator_lease_expiries_total"), 1);
  EXPECT_EQ(Value("squeeze_coordinator_job_retries_total{reason=\"lease_expired\"}"), 1);

  // A retryable worker error requeues: a retry with reason worker_error.
  auto t2 = Lease(w);
  ASSERT_TRUE(t2.has_value());
  v1::FailTaskRequest f;
  f.set_lease_id(t2->lease_id());
  f.set_error("disk full");
  f.set_retryable(true);
  ASSERT_TRUE(c_->FailTask(f).ok());
  EXPECT_EQ(Value("squeeze_coordinator_job_retries_total{reason=\"worker_error\"}"), 1);

  // A release requeues without charging an attempt.
  auto t3 = Lease(w);
  ASSERT_TRUE(t3.has_value());
  v1::ReleaseTaskRequest rel;
  rel.set_lease_id(t3->lease_id());
  rel.set_reason("SIGTERM");
  ASSERT_TRUE(c_->ReleaseTask(rel).ok());
  EXPECT_EQ(Value("squeeze_coordinator_job_retries_total{reason=\"released\"}"), 1);

  // Completion: the job's duration (first lease to end) lands in the histogram.
  auto t4 = Lease(w);
  ASSERT_TRUE(t4.has_value());
  clock_.Advance(3000);
  v1::CompleteTaskRequest done;
  done.set_lease_id(t4->lease_id());
  done.set_artifact_digest(model_);  // any stored manifest whose files exist
  auto ack = c_->CompleteTask(done);
  ASSERT_TRUE(ack.ok()) << ack.status();
  ASSERT_TRUE(ack->accepted());
  std::string text = registry_->Render();
  EXPECT_EQ(Sample(text, "squeeze_coordinator_job_duration_seconds_count{state=\"succeeded\"}"), 1);
  EXPECT_DOUBLE_EQ(Sample(text, "squeeze_coordinator_job_duration_seconds_sum{state=\"succeeded\"}"), 5.001);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_jobs{state=\"succeeded\"}"), 1);
  // The queue wait counts first leases only.
  EXPECT_EQ(Sample(text, "squeeze_coordinator_queue_wait_seconds_count"), 1);

  // Cancelled while queued: a terminal state with no run time.
  const std::string b = Submit(false);
  ASSERT_TRUE(c_->Cancel(b).ok());
  text = registry_->Render();
  EXPECT_EQ(Sample(text, "squeeze_coordinator_job_duration_seconds_count{state=\"cancelled\"}"), 1);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_job_duration_seconds_sum{state=\"cancelled\"}"), 0);

  // After a restart the gauges come from the database again; counters restart at 0.
  Reopen();
  text = registry_->Render();
  EXPECT_EQ(Sample(text, "squeeze_coordinator_jobs{state=\"succeeded\"}"), 1);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_jobs{state=\"cancelled\"}"), 1);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_jobs{state=\"queued\"}"), 0);
  EXPECT_EQ(Sample(text, "squeeze_coordinator_lease_expiries_total"), 0);
  EXPECT_EQ(Sample(text, "squeeze_objectstore_blobs"), 2);  // rescanned at Open
}

}  // namespace
}  // namespace squeeze::server
