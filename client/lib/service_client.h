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
#include "client/lib/channel_security.h"
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
  // Security from the environment (ChannelSecurity::FromEnv).
  explicit ServiceClient(const std::string& address);
  // With explicit TLS files / token. Files that cannot be used leave a client
  // whose every call fails: check ChannelSecurity::Credentials() first to
  // report the reason (the CLI and the worker do).
  ServiceClient(const std::string& address, const ChannelSecurity& security);

  const std::string& address() const { return address_; }

  // Calls safe to repeat (GetJob, ListJobs, Cancel, GetReport, GetPareto,
  // UploadPath and FetchBlob: content-addressed, and Submit when the request
  // carries an idempotency key) are retried while the coordinator is
  // unreachable (IsUnreachable) for up to `ms` in all, with jittered
  // exponential backoff: waits of 100 ms doubling to 2 s, each drawn from
  // [0.5, 1.5) of its step and cut to the budget left. 0 (the default) = one
  // attempt. `announce` prints one line on stderr at the first retry.
  void set_retry_budget_ms(int64_t ms, bool announce = false) {
    retry_budget_ms_ = ms;
    announce_retry_ = announce;
  }
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
  absl::StatusOr<v1::UploadModelResponse> UploadPathOnce(const std::string& path);
  absl::StatusOr<std::string> FetchBlobOnce(const std::string& digest);
  // Runs `attempt` until it succeeds, fails otherwise than unreachable, or the
  // retry budget is spent; returns its last status.
  absl::Status RetryUnreachable(const std::function<absl::Status()>& attempt);

  std::string address_;
  int64_t retry_budget_ms_ = 0;
  bool announce_retry_ = false;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CompressionService::Stub> api_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
};

}  // namespace squeeze::client
