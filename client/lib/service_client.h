// ServiceClient: the squeeze.v1 API from C++, with the chores done once:
// chunked sha256-declared uploads, resumable verified downloads, and watches
// that reconnect with after_seq so no event is missed or repeated.
//
// Errors are absl::Status with the gRPC code carried over; Unavailable and
// DeadlineExceeded mean the coordinator could not be reached.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "squeeze/v1/service.grpc.pb.h"
#include "squeeze/v1/worker.grpc.pb.h"

namespace squeeze::client {

// $SQUEEZE_SERVER, else "localhost:50051".
std::string DefaultServerAddress();
absl::Status FromGrpc(const grpc::Status& s);
// True for the codes that mean "could not talk to the server".
bool IsUnreachable(const absl::Status& s);

class ServiceClient {
 public:
  explicit ServiceClient(const std::string& address);

  const std::string& address() const { return address_; }
  v1::CompressionService::Stub& api() { return *api_; }
  v1::WorkerService::Stub& workers() { return *workers_; }
  // A context carrying the unary deadline (api::kUnaryDeadlineMs).
  static std::unique_ptr<grpc::ClientContext> UnaryContext();

  // Uploads a directory (every regular file below it) or a single file.
  absl::StatusOr<v1::UploadModelResponse> UploadPath(const std::string& path);

  absl::StatusOr<v1::Job> Submit(const v1::SubmitJobRequest& request);
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request);
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id);
  absl::StatusOr<v1::GetReportResponse> GetReport(const std::string& job_id);
  // The store-wide Pareto front of a model: `ref` is a job id, or a model's
  // manifest digest (64 hex digits, optionally "sha256:"-prefixed).
  absl::StatusOr<v1::GetParetoResponse> GetPareto(const std::string& ref);

  // Calls on_event for every event after `after_seq` until the job is terminal
  // (returns OK), on_event returns false (returns OK), or the server stays
  // unreachable for `reconnect_budget_ms` (returns Unavailable). Reconnects
  // resume after the last event delivered.
  absl::Status Watch(const std::string& job_id, int64_t after_seq,
                     const std::function<bool(const v1::JobEvent&)>& on_event,
                     int64_t reconnect_budget_ms = 30'000);

  // Downloads one blob into memory (small ones: manifests).
  absl::StatusOr<std::string> FetchBlob(const std::string& digest);
  // Downloads blob `digest` to `path`, resuming "<path>.partial" when present,
  // verifying its sha256, then renaming into place.
  absl::Status DownloadBlob(const std::string& digest, const std::string& path);
  // Downloads every file of manifest `digest` under out_dir.
  absl::Status DownloadTree(const std::string& manifest_digest, const std::string& out_dir);
  // The artifact of a SUCCEEDED job; returns its manifest digest.
  absl::StatusOr<std::string> DownloadJobArtifact(const std::string& job_id, const std::string& out_dir);

 private:
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CompressionService::Stub> api_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
};

}  // namespace squeeze::client
