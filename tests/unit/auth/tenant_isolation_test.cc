// Tenant isolation through the real CompressionService (bearer tokens ->
// tenants) on an in-process grpc::Server over a real Coordinator, SQLite
// and object store: another tenant's jobs and blobs answer NOT_FOUND with
// the message of a missing one, uploads are per-tenant (limits, dedup), and
// idempotency keys do not cross tenants.
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "server/auth/authenticator.h"
#include "server/auth/grpc_auth.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/service_impl.h"
#include "server/coordinator/sqlite_db.h"
#include "server/objectstore/local_object_store.h"
#include "server/objectstore/manifest.h"
#include "server/objectstore/sha256.h"
#include "tests/common/manual_clock.h"
#include "tests/common/test_coordinator.h"
#include "tests/common/temp_dirs.h"

namespace squeeze::server {
namespace {

constexpr char kRecipe[] = "stage:\n  m_modifiers:\n    X: {}\n";

class TenantIsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test_inputs::EmptyPerTestDir("tenants_");
    CoordinatorOptions o = test_inputs::TestCoordinatorOptions(dir_, &clock_);
    auto c = test_inputs::OpenTestCoordinator(o);
    ASSERT_TRUE(c.ok()) << c.status();
    c_ = *std::move(c);
    auth::AuthConfig config;
    auth::TenantConfig a{"team-a", {store::Sha256Hex("tok-a")}, 0, 0, 0};
    auth::TenantConfig b{"team-b", {store::Sha256Hex("tok-b")}, /*max_upload_bytes=*/100, 0, 0};
    config.tenants = {a, b};
    authenticator_ = std::make_unique<auth::Authenticator>(config, [this] { return clock_.MonotonicMs(); });
    security_.authenticator = authenticator_.get();
    api_ = std::make_unique<CompressionServiceImpl>(c_.get(), &security_);
    grpc::ServerBuilder builder;
    builder.RegisterService(api_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::CompressionService::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }
  void TearDown() override {
    server_->Shutdown();
    server_.reset();
    c_.reset();
    std::filesystem::remove_all(dir_);
  }

  static std::unique_ptr<grpc::ClientContext> As(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }

  // Uploads one file; returns the status and fills *out.
  grpc::Status Upload(const std::string& token, const std::string& bytes, v1::UploadModelResponse* out) {
    auto ctx = As(token);
    auto w = stub_->UploadModel(ctx.get(), out);
    v1::UploadChunk h;
    h.mutable_file()->set_path("model.safetensors");
    h.mutable_file()->set_size(static_cast<int64_t>(bytes.size()));
    h.mutable_file()->set_sha256(store::Sha256Hex(bytes));
    v1::UploadChunk d;
    d.set_data(bytes);
    v1::UploadChunk f;
    f.mutable_finish()->set_file_count(1);
    w->Write(h) && w->Write(d) && w->Write(f);
    w->WritesDone();
    return w->Finish();
  }

  grpc::Status Submit(const std::string& token, const std::string& model, v1::Job* out, const std::string& key = "") {
    v1::SubmitJobRequest r;
    r.set_recipe_yaml(kRecipe);
    r.set_model_digest(model);
    r.set_idempotency_key(key);
    return stub_->SubmitJob(As(token).get(), r, out);
  }

  grpc::Status Get(const std::string& token, const std::string& job_id) {
    v1::GetJobRequest r;
    r.set_job_id(job_id);
    v1::Job j;
    return stub_->GetJob(As(token).get(), r, &j);
  }

  grpc::Status Download(const std::string& token, const std::string& job_id, const std::string& digest,
                        std::string* bytes) {
    v1::DownloadArtifactRequest r;
    r.set_job_id(job_id);
    r.set_digest(digest);
    auto ctx = As(token);
    auto reader = stub_->DownloadArtifact(ctx.get(), r);
    v1::DataChunk chunk;
    while (reader->Read(&chunk)) bytes->append(chunk.data());
    return reader->Finish();
  }

  std::filesystem::path dir_;
  test_inputs::ManualClock clock_;
  std::unique_ptr<Coordinator> c_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  auth::ServerSecurity security_;
  std::unique_ptr<CompressionServiceImpl> api_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::CompressionService::Stub> stub_;
};

TEST_F(TenantIsolationTest, AnotherTenantsJobLooksMissing) {
  v1::UploadModelResponse model;
  ASSERT_TRUE(Upload("tok-a", "weights of a", &model).ok());
  v1::Job job;
  ASSERT_TRUE(Submit("tok-a", model.digest(), &job).ok());
  EXPECT_EQ(job.tenant(), "team-a");
  ASSERT_TRUE(Get("tok-a", job.job_id()).ok());

  const grpc::Status missing = Get("tok-b", "job-does-not-exist");
  const grpc::Status hidden = Get("tok-b", job.job_id());
  EXPECT_EQ(hidden.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(hidden.error_message(), "job " + job.job_id() + " not found");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.error_message(), "job job-does-not-exist not found");

  v1::ListJobsRequest list;
  v1::ListJobsResponse la, lb;
  ASSERT_TRUE(stub_->ListJobs(As("tok-a").get(), list, &la).ok());
  ASSERT_TRUE(stub_->ListJobs(As("tok-b").get(), list, &lb).ok());
  EXPECT_EQ(la.jobs_size(), 1);
  EXPECT_EQ(lb.jobs_size(), 0);

  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.job_id());
  v1::Job cancelled;
  EXPECT_EQ(stub_->CancelJob(As("tok-b").get(), cancel, &cancelled).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(c_->GetJob(job.job_id())->state(), v1::QUEUED);  // untouched

  v1::WatchJobRequest watch;
  watch.set_job_id(job.job_id());
  auto wctx = As("tok-b");
  auto reader = stub_->WatchJob(wctx.get(), watch);
  v1::JobEvent e;
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);

  v1::GetReportRequest report;
  report.set_job_id(job.job_id());
  v1::GetReportResponse rr;
  EXPECT_EQ(stub_->GetReport(As("tok-b").get(), report, &rr).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::GetParetoRequest pareto;
  pareto.set_job_id(job.job_id());
  v1::GetParetoResponse pr;
  EXPECT_EQ(stub_->GetPareto(As("tok-b").get(), pareto, &pr).error_code(), grpc::StatusCode::NOT_FOUND);

  // Another tenant's model digest cannot be read or used.
  std::string bytes;
  const grpc::Status dl = Download("tok-b", "", model.digest(), &bytes);
  EXPECT_EQ(dl.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(dl.error_message(), "object " + model.digest() + " not found");
  EXPECT_TRUE(bytes.empty());
  v1::Job stolen;
  EXPECT_EQ(Submit("tok-b", model.digest(), &stolen).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Download("tok-a", "", model.digest(), &bytes).ok());
  EXPECT_NE(bytes.find("model.safetensors"), std::string::npos);  // the manifest
}

TEST_F(TenantIsolationTest, ArtifactsBelongToTheJobsTenant) {
  v1::UploadModelResponse model;
  ASSERT_TRUE(Upload("tok-a", "weights", &model).ok());
  v1::Job job;
  ASSERT_TRUE(Submit("tok-a", model.digest(), &job).ok());
  // A worker runs it (directly on the coordinator) and stores an artifact.
  auto file = c_->objects().Put("compressed weights");
  ASSERT_TRUE(file.ok());
  store::Manifest m;
  m.files.push_back({"model.safetensors", *file, 18});
  auto artifact = c_->objects().Put(m.ToJson());
  ASSERT_TRUE(artifact.ok());
  v1::Capabilities caps;
  caps.set_cpu_cores(2);
  caps.set_ram_bytes(8ll << 30);
  const std::string worker = c_->RegisterWorker(caps)->worker_id();
  auto t = c_->LeaseTask(worker, 0);
  ASSERT_TRUE(t.ok() && t->has_value());
  v1::CompleteTaskRequest done;
  done.set_lease_id((*t)->lease_id());
  done.set_artifact_digest(*artifact);
  done.set_report_json("{}");
  ASSERT_TRUE(c_->CompleteTask(done)->accepted());

  std::string a_bytes, a_file, b_bytes;
  ASSERT_TRUE(Download("tok-a", job.job_id(), "", &a_bytes).ok());
  EXPECT_EQ(a_bytes, m.ToJson());
  ASSERT_TRUE(Download("tok-a", "", *file, &a_file).ok());  // the files too, by digest
  EXPECT_EQ(a_file, "compressed weights");
  EXPECT_EQ(Download("tok-b", job.job_id(), "", &b_bytes).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Download("tok-b", "", *artifact, &b_bytes).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Download("tok-b", "", *file, &b_bytes).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(b_bytes.empty());
}

// An upload's grants (its files, then its manifest) are one transaction: when
// the last one fails, the tenant is granted none of them. A trigger made on a
// second connection to jobs.db aborts the manifest's grant.
TEST_F(TenantIsolationTest, AFailedUploadGrantLeavesNoPartialGrant) {
  const std::string bytes = "weights of a";
  const std::string file = store::Sha256Hex(bytes);
  store::Manifest m;
  m.files.push_back({"model.safetensors", file, static_cast<int64_t>(bytes.size())});
  const std::string manifest = store::Sha256Hex(m.ToJson());
  auto side = SqliteDb::Open((dir_ / "jobs.db").string());
  ASSERT_TRUE(side.ok()) << side.status();
  ASSERT_TRUE((*side)
                  ->Exec("CREATE TRIGGER refuse_grant BEFORE INSERT ON tenant_blobs WHEN NEW.digest = '" + manifest +
                         "' BEGIN SELECT RAISE(ABORT, 'injected grant failure'); END")
                  .ok());
  v1::UploadModelResponse out;
  const grpc::Status failed = Upload("tok-a", bytes, &out);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error_message().find("injected grant failure"), std::string::npos) << failed.error_message();
  // The file's grant (written before the manifest's) was rolled back too.
  auto rows = (*side)->Prepare("SELECT COUNT(*) FROM tenant_blobs");
  ASSERT_TRUE(rows.ok() && *rows->Step());
  EXPECT_EQ(rows->Int(0), 0);
  std::string got;
  EXPECT_EQ(Download("tok-a", "", file, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(got.empty());
  // Once grants work again the same upload succeeds and grants both.
  ASSERT_TRUE((*side)->Exec("DROP TRIGGER refuse_grant").ok());
  ASSERT_TRUE(Upload("tok-a", bytes, &out).ok());
  EXPECT_EQ(out.digest(), manifest);
  EXPECT_FALSE(out.deduplicated());  // never owned by team-a before
  ASSERT_TRUE(Download("tok-a", "", file, &got).ok());
  EXPECT_EQ(got, bytes);
}

TEST_F(TenantIsolationTest, UploadsAreLimitedAndDeduplicatedPerTenant) {
  v1::UploadModelResponse a1, a2, b1, big;
  ASSERT_TRUE(Upload("tok-a", "same bytes", &a1).ok());
  EXPECT_FALSE(a1.deduplicated());
  ASSERT_TRUE(Upload("tok-a", "same bytes", &a2).ok());
  EXPECT_TRUE(a2.deduplicated());
  // b uploads identical content: the store has it, but b had not: no leak.
  ASSERT_TRUE(Upload("tok-b", "same bytes", &b1).ok());
  EXPECT_FALSE(b1.deduplicated());
  EXPECT_EQ(b1.digest(), a1.digest());
  v1::Job job;
  EXPECT_TRUE(Submit("tok-b", b1.digest(), &job).ok());  // now b's too

  const grpc::Status s = Upload("tok-b", std::string(101, 'x'), &big);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("the tenant's max_upload_bytes 100"), std::string::npos) << s.error_message();
  EXPECT_TRUE(Upload("tok-a", std::string(101, 'x'), &big).ok());  // a has no tenant cap
}

TEST_F(TenantIsolationTest, IdempotencyKeysArePerTenantAndTokensAreRequired) {
  v1::UploadModelResponse ma, mb;
  ASSERT_TRUE(Upload("tok-a", "a", &ma).ok());
  ASSERT_TRUE(Upload("tok-b", "b", &mb).ok());
  v1::Job ja, ja2, jb;
  ASSERT_TRUE(Submit("tok-a", ma.digest(), &ja, "key-1").ok());
  ASSERT_TRUE(Submit("tok-a", ma.digest(), &ja2, "key-1").ok());
  EXPECT_EQ(ja2.job_id(), ja.job_id());
  ASSERT_TRUE(Submit("tok-b", mb.digest(), &jb, "key-1").ok());
  EXPECT_NE(jb.job_id(), ja.job_id());
  EXPECT_EQ(jb.tenant(), "team-b");

  const grpc::Status none = Get("", ja.job_id());
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(none.error_message().find("missing bearer token"), std::string::npos);
  EXPECT_EQ(Get("wrong", ja.job_id()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::UploadModelResponse r;
  EXPECT_EQ(Upload("", "x", &r).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // The tenant survives a restart (SQLite column + Job record).
  server_->Shutdown();
  server_.reset();
  c_.reset();
  CoordinatorOptions o = test_inputs::TestCoordinatorOptions(dir_, &clock_);
  auto c = test_inputs::OpenTestCoordinator(o);
  ASSERT_TRUE(c.ok()) << c.status();
  c_ = *std::move(c);
  EXPECT_EQ(c_->GetJob(jb.job_id())->tenant(), "team-b");
  const std::string tenant = "team-b";
  auto list = c_->ListJobs(v1::ListJobsRequest(), &tenant);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->jobs_size(), 1);
  EXPECT_EQ(list->jobs(0).job_id(), jb.job_id());
  EXPECT_TRUE(*c_->TenantHasBlob("team-b", mb.digest()));
  EXPECT_FALSE(*c_->TenantHasBlob("team-b", ma.digest()));
  grpc::ServerBuilder builder;
  api_ = std::make_unique<CompressionServiceImpl>(c_.get(), &security_);
  builder.RegisterService(api_.get());
  server_ = builder.BuildAndStart();
}

TEST_F(TenantIsolationTest, RateLimitAnswersResourceExhaustedWithRetryAfter) {
  auth::AuthConfig config;
  config.tenants = {auth::TenantConfig{"slow", {store::Sha256Hex("tok-s")}, 0, /*rps=*/1, /*burst=*/1}};
  authenticator_ = std::make_unique<auth::Authenticator>(config, [this] { return clock_.MonotonicMs(); });
  security_.authenticator = authenticator_.get();
  v1::ListJobsResponse out;
  EXPECT_TRUE(stub_->ListJobs(As("tok-s").get(), v1::ListJobsRequest(), &out).ok());
  auto ctx = As("tok-s");
  const grpc::Status s = stub_->ListJobs(ctx.get(), v1::ListJobsRequest(), &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  auto it = ctx->GetServerTrailingMetadata().find("retry-after-ms");
  ASSERT_NE(it, ctx->GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), "1000");
  clock_.Advance(1000);
  EXPECT_TRUE(stub_->ListJobs(As("tok-s").get(), v1::ListJobsRequest(), &out).ok());
}

}  // namespace
}  // namespace squeeze::server
