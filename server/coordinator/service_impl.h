// gRPC front-ends for the Coordinator: CompressionService and WorkerService
// (synchronous API; the server's thread pool bounds concurrency).
#pragma once

#include "server/coordinator/coordinator.h"
#include "squeeze/v1/service.grpc.pb.h"
#include "squeeze/v1/worker.grpc.pb.h"

namespace squeeze::server {

grpc::Status ToGrpc(const absl::Status& s);

class CompressionServiceImpl final : public v1::CompressionService::Service {
 public:
  explicit CompressionServiceImpl(Coordinator* c) : c_(c) {}
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
  Coordinator* c_;
};

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Coordinator* c) : c_(c) {}
  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest*,
                              v1::RegisterWorkerResponse*) override;
  grpc::Status LeaseTask(grpc::ServerContext*, const v1::LeaseTaskRequest*, v1::LeaseTaskResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*, v1::HeartbeatResponse*) override;
  grpc::Status CompleteTask(grpc::ServerContext*, const v1::CompleteTaskRequest*, v1::TaskAck*) override;
  grpc::Status FailTask(grpc::ServerContext*, const v1::FailTaskRequest*, v1::TaskAck*) override;
  grpc::Status ReleaseTask(grpc::ServerContext*, const v1::ReleaseTaskRequest*, v1::TaskAck*) override;

 private:
  Coordinator* c_;
};

}  // namespace squeeze::server
