// gRPC front-ends for the Coordinator: CompressionService and WorkerService
// (synchronous API; the server's thread pool bounds concurrency).
#pragma once

#include "server/auth/grpc_auth.h"
#include "server/coordinator/coordinator.h"
#include "squeeze/v1/service.grpc.pb.h"
#include "squeeze/v1/worker.grpc.pb.h"

namespace squeeze::server {

grpc::Status ToGrpc(const absl::Status& s);

// Security (server/auth/grpc_auth.h): with `security` null or without an
// Authenticator every caller is the implicit tenant and sees everything. With
// one, each call authenticates (bearer token -> tenant, rate limit) and a
// tenant sees only its own jobs and blobs: another tenant's job id or blob
// digest answers NOT_FOUND with the same message as a missing one.
class CompressionServiceImpl final : public v1::CompressionService::Service {
 public:
  explicit CompressionServiceImpl(Coordinator* c, const auth::ServerSecurity* security = nullptr)
      : c_(c), security_(security) {}
  grpc::Status SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest*, v1::Job*) override;
  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest*, v1::Job*) override;
  grpc::Status ListJobs(grpc::ServerContext*, const v1::ListJobsRequest*, v1::ListJobsResponse*) override;
  grpc::Status CancelJob(grpc::ServerContext*, const v1::CancelJobRequest*, v1::Job*) override;
  grpc::Status WatchJob(grpc::ServerContext*, const v1::WatchJobRequest*,
                        grpc::ServerWriter<v1::JobEvent>*) override;
  grpc::Status UploadModel(grpc::ServerContext*, grpc::ServerReader<v1::UploadChunk>*,
                           v1::UploadModelResponse*) override;
  grpc::Status DownloadArtifact(grpc::ServerContext*, const v1::DownloadArtifactRequest*,
                                grpc::ServerWriter<v1::DataChunk>*) override;
  grpc::Status GetReport(grpc::ServerContext*, const v1::GetReportRequest*, v1::GetReportResponse*) override;
  grpc::Status GetPareto(grpc::ServerContext*, const v1::GetParetoRequest*, v1::GetParetoResponse*) override;

 private:
  // Authenticates; a worker principal is refused unless `worker_ok`.
  grpc::Status Caller(grpc::ServerContext* ctx, bool worker_ok, auth::Principal* out) const;
  // NOT_FOUND ("job X not found") when a scoped caller asks for another tenant's job.
  grpc::Status CheckJobVisible(const auth::Principal& p, const std::string& job_id) const;
  // NOT_FOUND ("object D not found") when a scoped caller may not read blob D.
  grpc::Status CheckBlobVisible(const auth::Principal& p, const std::string& digest) const;

  Coordinator* c_;
  const auth::ServerSecurity* security_;
};

// With security->require_worker_cert every call needs a peer holding a client
// certificate verified against --tls-client-ca (UNAUTHENTICATED otherwise).
class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Coordinator* c, const auth::ServerSecurity* security = nullptr)
      : c_(c), security_(security) {}
  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest*,
                              v1::RegisterWorkerResponse*) override;
  grpc::Status LeaseTask(grpc::ServerContext*, const v1::LeaseTaskRequest*, v1::LeaseTaskResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*, v1::HeartbeatResponse*) override;
  grpc::Status CompleteTask(grpc::ServerContext*, const v1::CompleteTaskRequest*, v1::TaskAck*) override;
  grpc::Status FailTask(grpc::ServerContext*, const v1::FailTaskRequest*, v1::TaskAck*) override;
  grpc::Status ReleaseTask(grpc::ServerContext*, const v1::ReleaseTaskRequest*, v1::TaskAck*) override;

 private:
  Coordinator* c_;
  const auth::ServerSecurity* security_;
};

}  // namespace squeeze::server
