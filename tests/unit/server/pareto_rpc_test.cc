// Coordinator::GetPareto and GetReport's scores.pareto.store, driven directly:
// jobs of two models complete with hand-made reports; the front holds exactly
// the SUCCEEDED jobs of the asked model, anchored as asked, and bad requests
// are refused naming the field.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/objectstore/local_object_store.h"
#include "server/objectstore/manifest.h"
#include "tests/common/manual_clock.h"
#include "tests/common/test_coordinator.h"
#include "tests/common/temp_dirs.h"

namespace squeeze::server {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

std::string Report(double bytes, double score) {
  json r;
  r["cost"]["dense"] = {{"bytes_in_memory", 1000}, {"flops_per_token", 200}};
  r["cost"]["compressed"] = {{"bytes_in_memory", bytes}, {"flops_per_token", 200}};
  r["scores"]["task_scores"]["dense"] = {{"piqa", 50}};
  r["scores"]["task_scores"]["compressed"] = {{"piqa", score}};
  r["scores"]["pareto"]["bytes"] = json::array({"dense"});
  r["quality"]["tasks"]["piqa"] = {{"format", "multiple_choice"}, {"n", 20}, {"examples", nullptr}};
  return r.dump();
}

class ParetoRpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test_inputs::EmptyPerTestDir("pareto_");
    CoordinatorOptions o = test_inputs::TestCoordinatorOptions(dir_, &clock_);
    auto c = test_inputs::OpenTestCoordinator(o);
    ASSERT_TRUE(c.ok()) << c.status();
    c_ = *std::move(c);
    for (const char* name : {"model A", "model B"}) {
      store::Manifest m;
      auto blob = c_->objects().Put(name);
      ASSERT_TRUE(blob.ok());
      m.files.push_back({"model.safetensors", *blob, 7});
      auto d = c_->objects().Put(m.ToJson());
      ASSERT_TRUE(d.ok());
      models_.push_back(*d);
    }
    v1::Capabilities caps;
    caps.set_cpu_cores(2);
    caps.set_ram_bytes(8ll << 30);
    worker_ = c_->RegisterWorker(caps)->worker_id();
  }
  void TearDown() override {
    c_.reset();
    fs::remove_all(dir_);
  }
  // Submits a job of `model`, leases it and completes it with `report`.
  std::string Done(const std::string& model, const std::string& report) {
    v1::SubmitJobRequest r;
    r.set_recipe_yaml("stage:\n  m_modifiers:\n    X: {}\n");
    r.set_model_digest(model);
    auto j = c_->Submit(r);
    EXPECT_TRUE(j.ok()) << j.status();
    auto t = c_->LeaseTask(worker_, 0);
    EXPECT_TRUE(t.ok() && t->has_value());
    v1::CompleteTaskRequest done;
    done.set_lease_id((*t)->lease_id());
    done.set_artifact_digest(model);
    done.set_report_json(report);
    EXPECT_TRUE(c_->CompleteTask(done)->accepted());
    return j->job_id();
  }

  fs::path dir_;
  test_inputs::ManualClock clock_;
  std::unique_ptr<Coordinator> c_;
  std::vector<std::string> models_;
  std::string worker_;
};

TEST_F(ParetoRpcTest, FrontOfOneModelByJobOrDigest) {
  const std::string a1 = Done(models_[0], Report(250, 48));
  const std::string a2 = Done(models_[0], Report(1000, 40));
  Done(models_[1], Report(100, 49));  // another model: not in A's front
  v1::GetParetoRequest by_job;
  by_job.set_job_id(a1);
  auto r = c_->GetPareto(by_job);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model_digest(), models_[0]);
  EXPECT_EQ(r->jobs(), 2);
  json f = json::parse(r->pareto_json());
  EXPECT_EQ(f["anchor_job"], a1);
  ASSERT_EQ(f["variants"].size(), 3u);
  EXPECT_EQ(f["fronts"]["bytes"]["optimal"], json::array({a1, "dense"}));
  EXPECT_EQ(f["fronts"]["bytes"]["dominated"], json::array({a2}));
  // By digest ("sha256:" accepted): the newest job is the anchor.
  v1::GetParetoRequest by_digest;
  by_digest.set_model_digest("sha256:" + models_[0]);
  r = c_->GetPareto(by_digest);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(json::parse(r->pareto_json())["anchor_job"], a2);
  // GetReport carries the same front and keeps the job's own figures.
  auto rep = c_->GetReport(a2);
  ASSERT_TRUE(rep.ok());
  json j = json::parse(rep->report_json());
  EXPECT_EQ(j["scores"]["pareto"]["bytes"], json::array({"dense"}));
  EXPECT_EQ(j["scores"]["pareto"]["store"]["variants"].size(), 3u);
  EXPECT_EQ(j["scores"]["pareto"]["store"]["anchor_job"], a2);
  ASSERT_TRUE(j["scores"]["elue"]["store"].is_object());
  EXPECT_EQ(j["scores"]["elue"]["store"]["references"], json::array({"dense", a1}));
}

TEST_F(ParetoRpcTest, BadRequestsNameTheField) {
  v1::GetParetoRequest none;
  auto r = c_->GetPareto(none);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  v1::GetParetoRequest bad;
  bad.set_model_digest("xyz");
  r = c_->GetPareto(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("model_digest"), std::string::npos) << r.status();
  v1::GetParetoRequest unknown;
  unknown.set_model_digest(models_[1]);
  EXPECT_EQ(c_->GetPareto(unknown).status().code(), absl::StatusCode::kNotFound);
  v1::GetParetoRequest missing_job;
  missing_job.set_job_id("job-nope");
  EXPECT_EQ(c_->GetPareto(missing_job).status().code(), absl::StatusCode::kNotFound);
  // A job that has not succeeded cannot anchor a front.
  v1::SubmitJobRequest s;
  s.set_recipe_yaml("stage:\n  m_modifiers:\n    X: {}\n");
  s.set_model_digest(models_[0]);
  auto queued = c_->Submit(s);
  ASSERT_TRUE(queued.ok());
  v1::GetParetoRequest q;
  q.set_job_id(queued->job_id());
  EXPECT_EQ(c_->GetPareto(q).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace squeeze::server
