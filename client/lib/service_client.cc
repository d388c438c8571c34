#include "client/lib/service_client.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "proto/limits.h"
#include "server/objectstore/manifest.h"
#include "server/objectstore/sha256.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze::client {
namespace fs = std::filesystem;

std::string DefaultServerAddress() {
  const char* env = std::getenv("SQUEEZE_SERVER");
  return env && *env ? env : "localhost:50051";
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

bool IsUnreachable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kDeadlineExceeded;
}

ServiceClient::ServiceClient(const std::string& address) : ServiceClient(address, ChannelSecurity::FromEnv()) {}

ServiceClient::ServiceClient(const std::string& address, const ChannelSecurity& security) : address_(address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(api::kMaxMessageBytes);
  args.SetMaxSendMessageSize(api::kMaxMessageBytes);
  // Reconnect quickly after a coordinator restart (default backoff grows to 120 s).
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  // gRPC also uses this as the minimum connect timeout (TCP + TLS handshake +
  // SETTINGS): 100 ms is too short for a TLS handshake on a loaded host, where
  // every attempt then times out. Retry spacing stays the initial 100 ms.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, security.tls() ? 10'000 : 100);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = CreateSecureChannel(address, security, args);
  if (channel.ok()) {
    channel_ = *std::move(channel);
  } else {
    // Unusable TLS files or a token refused without TLS: a TLS channel
    // without roots or token fails every call (UNAVAILABLE) rather than
    // falling back to plaintext.
    std::fprintf(stderr, "squeeze: %s\n", std::string(channel.status().message()).c_str());
    channel_ = grpc::CreateCustomChannel(address, grpc::SslCredentials(grpc::SslCredentialsOptions()), args);
  }
  api_ = v1::CompressionService::NewStub(channel_);
  workers_ = v1::WorkerService::NewStub(channel_);
}

absl::Status ServiceClient::RetryUnreachable(const std::function<absl::Status()>& attempt) {
  const auto start = std::chrono::steady_clock::now();
  const auto budget = std::chrono::milliseconds(std::max<int64_t>(retry_budget_ms_, 0));
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  int64_t step_ms = 100;
  for (int tries = 1;; ++tries) {
    absl::Status s = attempt();
    if (s.ok() || !IsUnreachable(s)) return s;
    const auto left = budget - (std::chrono::steady_clock::now() - start);
    if (left <= std::chrono::milliseconds(0)) {
      if (tries == 1) return s;
      return absl::Status(s.code(), absl::StrCat(s.message(), " (", tries, " attempts over ",
                                                 std::chrono::duration_cast<std::chrono::milliseconds>(
                                                     std::chrono::steady_clock::now() - start)
                                                         .count(),
                                                 " ms)"));
    }
    if (tries == 1 && announce_retry_) {
      std::fprintf(stderr, "squeeze: the coordinator at %s is unreachable (%s); retrying for up to %lld s\n",
                   address_.c_str(), std::string(s.message()).c_str(),
                   static_cast<long long>((retry_budget_ms_ + 999) / 1000));
    }
    const auto wait = std::min<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(step_ms) * jitter(rng))), left);
    std::this_thread::sleep_for(wait);
    step_ms = std::min<int64_t>(step_ms * 2, 2000);
  }
}

std::unique_ptr<grpc::ClientContext> ServiceClient::UnaryContext() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(api::kUnaryDeadlineMs));
  return ctx;
}

absl::StatusOr<v1::UploadModelResponse> ServiceClient::UploadPath(const std::string& path) {
  // Content-addressed (the server dedups by digest): safe to repeat whole.
  absl::StatusOr<v1::UploadModelResponse> out;
  absl::Status s = RetryUnreachable([&] {
    out = UploadPathOnce(path);
    return out.status();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::UploadModelResponse> ServiceClient::UploadPathOnce(const std::string& path) {
  SQ_ASSIGN_OR_RETURN(store::Manifest manifest, store::ManifestForPath(path));
  const bool single = fs::is_regular_file(path);
  grpc::ClientContext ctx;
  v1::UploadModelResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::UploadChunk>> writer = api_->UploadModel(&ctx, &response);
  std::string buf(static_cast<size_t>(api::kChunkBytes), '\0');
  bool broken = false;
  for (const store::ManifestEntry& f : manifest.files) {
    v1::UploadChunk header;
    header.mutable_file()->set_path(f.path);
    header.mutable_file()->set_size(f.size);
    header.mutable_file()->set_sha256(f.sha256);
    if (!writer->Write(header)) {
      broken = true;
      break;
    }
    const std::string file = single ? path : (fs::path(path) / f.path).string();
    std::ifstream in(file, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat(file, ": cannot open"));
    while (in && !broken) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const std::streamsize n = in.gcount();
      if (n <= 0) break;
      v1::UploadChunk data;
      data.set_data(buf.data(), static_cast<size_t>(n));
      if (!writer->Write(data)) broken = true;
    }
    if (broken) break;
  }
  if (!broken) {
    v1::UploadChunk finish;
    finish.mutable_finish()->set_file_count(static_cast<int>(manifest.files.size()));
    writer->Write(finish);
  }
  writer->WritesDone();
  SQ_RETURN_IF_ERROR(FromGrpc(writer->Finish()));
  if (response.digest() != store::Sha256Hex(manifest.ToJson())) {
    return absl::DataLossError(absl::StrCat("server stored manifest ", response.digest(), " but the local tree is ",
                                            store::Sha256Hex(manifest.ToJson())));
  }
  return response;
}

absl::StatusOr<v1::Job> ServiceClient::Submit(const v1::SubmitJobRequest& request) {
  v1::Job out;
  auto once = [&] {
    auto ctx = UnaryContext();
    return FromGrpc(api_->SubmitJob(ctx.get(), request, &out));
  };
  // Without an idempotency key a repeat could make a second job: one attempt.
  SQ_RETURN_IF_ERROR(request.idempotency_key().empty() ? once() : RetryUnreachable(once));
  return out;
}

absl::StatusOr<v1::Job> ServiceClient::GetJob(const std::string& job_id) {
  v1::GetJobRequest r;
  r.set_job_id(job_id);
  v1::Job out;
  SQ_RETURN_IF_ERROR(RetryUnreachable([&] {
    auto ctx = UnaryContext();
    return FromGrpc(api_->GetJob(ctx.get(), r, &out));
  }));
  return out;
}

absl::StatusOr<v1::ListJobsResponse> ServiceClient::ListJobs(const v1::ListJobsRequest& request) {
  v1::ListJobsResponse out;
  SQ_RETURN_IF_ERROR(RetryUnreachable([&] {
    auto ctx = UnaryContext();
    return FromGrpc(api_->ListJobs(ctx.get(), request, &out));
  }));
  return out;
}

absl::StatusOr<v1::Job> ServiceClient::Cancel(const std::string& job_id) {
  v1::CancelJobRequest r;
  r.set_job_id(job_id);
  v1::Job out;
  SQ_RETURN_IF_ERROR(RetryUnreachable([&] {  // cancelling twice is cancelling once
    auto ctx = UnaryContext();
    return FromGrpc(api_->CancelJob(ctx.get(), r, &out));
  }));
  return out;
}

absl::StatusOr<v1::GetReportResponse> ServiceClient::GetReport(const std::string& job_id) {
  v1::GetReportRequest r;
  r.set_job_id(job_id);
  v1::GetReportResponse out;
  SQ_RETURN_IF_ERROR(RetryUnreachable([&] {
    auto ctx = UnaryContext();
    return FromGrpc(api_->GetReport(ctx.get(), r, &out));
  }));
  return out;
}

absl::StatusOr<v1::GetParetoResponse> ServiceClient::GetPareto(const std::string& ref) {
  v1::GetParetoRequest r;
  std::string digest = ref;
  if (digest.rfind("sha256:", 0) == 0) digest = digest.substr(7);
  bool hex = digest.size() == 64;
  for (char c : digest) hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (hex) {
    r.set_model_digest(digest);
  } else {
    r.set_job_id(ref);
  }
  v1::GetParetoResponse out;
  SQ_RETURN_IF_ERROR(RetryUnreachable([&] {
    auto ctx = UnaryContext();
    return FromGrpc(api_->GetPareto(ctx.get(), r, &out));
  }));
  return out;
}

absl::Status ServiceClient::Watch(const std::string& job_id, int64_t after_seq,
                                  const std::function<bool(const v1::JobEvent&)>& on_event,
                                  int64_t reconnect_budget_ms) {
  auto last_contact = std::chrono::steady_clock::now();
  while (true) {
    grpc::ClientContext ctx;
    v1::WatchJobRequest r;
    r.set_job_id(job_id);
    r.set_after_seq(after_seq);
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader = api_->WatchJob(&ctx, r);
    v1::JobEvent e;
    while (reader->Read(&e)) {
      last_contact = std::chrono::steady_clock::now();
      if (e.seq() <= after_seq) continue;  // never deliver twice
      after_seq = e.seq();
      if (!on_event(e)) {
        ctx.TryCancel();
        reader->Finish();
        return absl::OkStatus();
      }
    }
    absl::Status s = FromGrpc(reader->Finish());
    if (s.ok()) return s;  // the job is terminal and everything was delivered
    if (!IsUnreachable(s)) return s;
    const auto since = std::chrono::steady_clock::now() - last_contact;
    if (since > std::chrono::milliseconds(reconnect_budget_ms)) {
      return absl::UnavailableError(absl::StrCat("lost the coordinator at ", address_, ": ", s.message()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

absl::StatusOr<std::string> ServiceClient::FetchBlob(const std::string& digest) {
  absl::StatusOr<std::string> out;
  absl::Status s = RetryUnreachable([&] {
    out = FetchBlobOnce(digest);
    return out.status();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> ServiceClient::FetchBlobOnce(const std::string& digest) {
  grpc::ClientContext ctx;
  v1::DownloadArtifactRequest r;
  r.set_digest(digest);
  std::unique_ptr<grpc::ClientReader<v1::DataChunk>> reader = api_->DownloadArtifact(&ctx, r);
  std::string out;
  v1::DataChunk c;
  while (reader->Read(&c)) out += c.data();
  SQ_RETURN_IF_ERROR(FromGrpc(reader->Finish()));
  if (store::Sha256Hex(out) != digest) return absl::DataLossError(absl::StrCat("blob ", digest, ": sha256 mismatch"));
  return out;
}

absl::Status ServiceClient::DownloadBlob(const std::string& digest, const std::string& path) {
  const std::string partial = path + ".partial";
  SQ_RETURN_IF_ERROR(MakeDirs(fs::path(path).parent_path().string()));
  for (int attempt = 0;; ++attempt) {
    std::error_code ec;
    int64_t offset = fs::exists(partial, ec) ? static_cast<int64_t>(fs::file_size(partial, ec)) : 0;
    grpc::ClientContext ctx;
    v1::DownloadArtifactRequest r;
    r.set_digest(digest);
    r.set_offset(offset);
    std::unique_ptr<grpc::ClientReader<v1::DataChunk>> reader = api_->DownloadArtifact(&ctx, r);
    {
      std::ofstream out(partial, std::ios::binary | std::ios::app);
      if (!out) return absl::InternalError(absl::StrCat(partial, ": cannot open for writing"));
      v1::DataChunk c;
      while (reader->Read(&c)) {
        if (c.offset() != offset) return absl::DataLossError(absl::StrCat(digest, ": out-of-order chunk"));
        out.write(c.data().data(), static_cast<std::streamsize>(c.data().size()));
        offset += static_cast<int64_t>(c.data().size());
      }
      out.flush();
      if (!out) return absl::InternalError(absl::StrCat(partial, ": write failed"));
    }
    absl::Status s = FromGrpc(reader->Finish());
    if (s.code() == absl::StatusCode::kOutOfRange) {
      fs::remove(partial, ec);  // a stale partial longer than the blob
      continue;
    }
    if (IsUnreachable(s) && attempt < 20) {  // resume from what arrived
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      continue;
    }
    SQ_RETURN_IF_ERROR(s);
    SQ_ASSIGN_OR_RETURN(std::string got, store::Sha256File(partial));
    if (got != digest) {
      fs::remove(partial, ec);
      return absl::DataLossError(absl::StrCat(path, ": downloaded bytes hash to ", got, ", expected ", digest));
    }
    fs::rename(partial, path, ec);
    if (ec) return absl::InternalError(absl::StrCat(path, ": rename: ", ec.message()));
    return absl::OkStatus();
  }
}

absl::Status ServiceClient::DownloadTree(const std::string& manifest_digest, const std::string& out_dir) {
  SQ_ASSIGN_OR_RETURN(std::string json, FetchBlob(manifest_digest));
  SQ_ASSIGN_OR_RETURN(store::Manifest manifest, store::Manifest::FromJson(json));
  for (const store::ManifestEntry& f : manifest.files) {
    const std::string target = (fs::path(out_dir) / f.path).string();
    std::error_code ec;
    if (fs::exists(target, ec) && fs::file_size(target, ec) == static_cast<uintmax_t>(f.size)) {
      absl::StatusOr<std::string> have = store::Sha256File(target);
      if (have.ok() && *have == f.sha256) continue;  // already here (resumed download)
    }
    SQ_RETURN_IF_ERROR(DownloadBlob(f.sha256, target));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ServiceClient::DownloadJobArtifact(const std::string& job_id, const std::string& out_dir) {
  SQ_ASSIGN_OR_RETURN(v1::Job job, GetJob(job_id));
  if (job.state() != v1::SUCCEEDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " is ", v1::JobState_Name(job.state()), "; only SUCCEEDED jobs have artifacts"));
  }
  SQ_RETURN_IF_ERROR(DownloadTree(job.artifact_digest(), out_dir));
  return job.artifact_digest();
}

}  // namespace squeeze::client
