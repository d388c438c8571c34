#include "server/coordinator/service_impl.h"

#include <chrono>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proto/limits.h"
#include "server/objectstore/manifest.h"
#include "server/objectstore/sha256.h"

namespace squeeze::server {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

namespace {
template <typename T>
grpc::Status Assign(absl::StatusOr<T> v, T* out) {
  if (!v.ok()) return ToGrpc(v.status());
  *out = *std::move(v);
  return grpc::Status::OK;
}
grpc::Status Invalid(const std::string& msg) { return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, msg); }
}  // namespace

grpc::Status CompressionServiceImpl::SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest* r, v1::Job* out) {
  const auto start = std::chrono::steady_clock::now();
  grpc::Status s = Assign(c_->Submit(*r), out);
  if (CoordinatorMetrics* m = c_->metrics()) {
    m->Submitted(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), s.error_code());
  }
  return s;
}

grpc::Status CompressionServiceImpl::GetJob(grpc::ServerContext*, const v1::GetJobRequest* r, v1::Job* out) {
  return Assign(c_->GetJob(r->job_id()), out);
}

grpc::Status CompressionServiceImpl::ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* r,
                                              v1::ListJobsResponse* out) {
  return Assign(c_->ListJobs(*r), out);
}

grpc::Status CompressionServiceImpl::CancelJob(grpc::ServerContext*, const v1::CancelJobRequest* r, v1::Job* out) {
  return Assign(c_->Cancel(r->job_id()), out);
}

grpc::Status CompressionServiceImpl::WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* r,
                                              grpc::ServerWriter<v1::JobEvent>* writer) {
  if (r->after_seq() < 0) return Invalid("after_seq: must be >= 0");
  int64_t after = r->after_seq();
  while (!ctx->IsCancelled()) {
    absl::StatusOr<WatchBatch> batch = c_->WaitEvents(r->job_id(), after, api::kWatchPollMs);
    if (!batch.ok()) return ToGrpc(batch.status());
    for (const v1::JobEvent& e : batch->events) {
      if (!writer->Write(e)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      after = e.seq();
    }
    if (batch->done) return grpc::Status::OK;
    if (batch->shutting_down) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator shutting down; reconnect with after_seq");
    }
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled");
}

grpc::Status CompressionServiceImpl::UploadModel(grpc::ServerContext*, grpc::ServerReader<v1::UploadChunk>* reader,
                                                 v1::UploadModelResponse* out) {
  // Every file goes to an uncommitted blob writer; nothing becomes visible until
  // the Finish message has arrived and every size and digest checks out.
  struct Pending {
    store::ManifestEntry entry;
    std::string declared_sha;
    std::unique_ptr<store::BlobWriter> writer;
  };
  std::vector<Pending> files;
  v1::UploadChunk chunk;
  bool finished = false;
  int declared_count = -1;
  int64_t declared_total = 0;  // sum of declared file sizes so far (bytes)
  auto check_current = [&]() -> grpc::Status {
    if (files.empty()) return grpc::Status::OK;
    const Pending& p = files.back();
    if (p.writer->bytes_written() != p.entry.size) {
      return Invalid(absl::StrCat("file ", p.entry.path, ": got ", p.writer->bytes_written(), " bytes, declared ",
                                  p.entry.size, " (truncated upload; nothing stored)"));
    }
    return grpc::Status::OK;
  };
  while (reader->Read(&chunk)) {
    if (finished) return Invalid("upload: data after Finish");
    switch (chunk.part_case()) {
      case v1::UploadChunk::kFile: {
        if (grpc::Status s = check_current(); !s.ok()) return s;
        const auto& h = chunk.file();
        if (absl::Status s = store::ValidateRelativePath(h.path()); !s.ok()) {
          return Invalid(absl::StrCat("file.path: ", s.message()));
        }
        if (h.size() < 0) return Invalid(absl::StrCat("file ", h.path(), ": negative size"));
        // Data chunks never exceed a file's declared size, so capping the
        // declared total bounds what this upload can write.
        if (h.size() > c_->max_upload_bytes() - declared_total) {
          return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              absl::StrCat("file ", h.path(), ": upload exceeds --max-upload-bytes ",
                                           c_->max_upload_bytes(), " (", declared_total, " + ", h.size(),
                                           " bytes declared); nothing stored"));
        }
        declared_total += h.size();
        if (!h.sha256().empty() && !store::IsSha256Hex(h.sha256())) {
          return Invalid(absl::StrCat("file ", h.path(), ": sha256 is not 64 hex chars"));
        }
        for (const Pending& p : files) {
          if (p.entry.path == h.path()) return Invalid(absl::StrCat("file ", h.path(), ": sent twice"));
        }
        absl::StatusOr<std::unique_ptr<store::BlobWriter>> w = c_->objects().NewBlob();
        if (!w.ok()) return ToGrpc(w.status());
        files.push_back(Pending{{h.path(), "", h.size()}, h.sha256(), *std::move(w)});
        break;
      }
      case v1::UploadChunk::kData: {
        if (files.empty()) return Invalid("upload: data before any file header");
        Pending& p = files.back();
        if (static_cast<int64_t>(chunk.data().size()) > api::kChunkBytes) {
          return Invalid(absl::StrCat("upload: chunk of ", chunk.data().size(), " bytes exceeds 1 MiB"));
        }
        if (p.writer->bytes_written() + static_cast<int64_t>(chunk.data().size()) > p.entry.size) {
          return Invalid(absl::StrCat("file ", p.entry.path, ": more bytes than the declared ", p.entry.size));
        }
        if (absl::Status s = p.writer->Append(chunk.data()); !s.ok()) {
          return ToGrpc(absl::Status(s.code(), absl::StrCat("file ", p.entry.path, ": ", s.message())));
        }
        break;
      }
      case v1::UploadChunk::kFinish:
        if (grpc::Status s = check_current(); !s.ok()) return s;
        finished = true;
        declared_count = chunk.finish().file_count();
        break;
      default:
        return Invalid("upload: empty message");
    }
  }
  if (!finished) return Invalid("upload truncated: the stream ended before Finish; nothing stored");
  if (files.empty()) return Invalid("upload: no files");
  if (declared_count != static_cast<int>(files.size())) {
    return Invalid(absl::StrCat("upload: Finish says ", declared_count, " files, got ", files.size()));
  }
  store::Manifest manifest;
  for (Pending& p : files) {
    absl::StatusOr<std::string> digest = p.writer->Commit(p.declared_sha);
    if (!digest.ok()) {
      const std::string msg = absl::StrCat("file ", p.entry.path, ": ", digest.status().message());
      // A wrong digest is the caller's fault; a full or failing disk is not.
      if (digest.status().code() == absl::StatusCode::kDataLoss) return Invalid(msg);
      return ToGrpc(absl::Status(digest.status().code(), msg));
    }
    p.entry.sha256 = *digest;
    manifest.files.push_back(p.entry);
  }
  const std::string json = manifest.ToJson();
  const std::string manifest_digest = store::Sha256Hex(json);
  out->set_deduplicated(c_->objects().Contains(manifest_digest));
  absl::StatusOr<std::string> stored = c_->objects().Put(json);
  if (!stored.ok()) return ToGrpc(stored.status());
  out->set_digest(*stored);
  out->set_total_bytes(manifest.TotalBytes());
  out->set_file_count(static_cast<int>(manifest.files.size()));
  return grpc::Status::OK;
}

grpc::Status CompressionServiceImpl::DownloadArtifact(grpc::ServerContext* ctx, const v1::DownloadArtifactRequest* r,
                                                      grpc::ServerWriter<v1::DataChunk>* writer) {
  std::string digest = r->digest();
  if (digest.empty()) {
    if (r->job_id().empty()) return Invalid("one of job_id or digest is required");
    absl::StatusOr<v1::Job> job = c_->GetJob(r->job_id());
    if (!job.ok()) return ToGrpc(job.status());
    if (job->state() != v1::SUCCEEDED) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("job ", r->job_id(), " is ", v1::JobState_Name(job->state()),
                                       "; artifacts exist for SUCCEEDED jobs"));
    }
    digest = job->artifact_digest();
  }
  absl::StatusOr<int64_t> size = c_->objects().Size(digest);
  if (!size.ok()) return ToGrpc(size.status());
  if (r->offset() < 0 || r->offset() > *size) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                        absl::StrCat("offset ", r->offset(), " is outside [0, ", *size, "]"));
  }
  int64_t off = r->offset();
  do {
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "download cancelled");
    absl::StatusOr<std::string> part = c_->objects().ReadRange(digest, off, api::kChunkBytes);
    if (!part.ok()) return ToGrpc(part.status());
    v1::DataChunk chunk;
    chunk.set_offset(off);
    chunk.set_total_size(*size);
    chunk.set_digest(digest);
    off += static_cast<int64_t>(part->size());
    *chunk.mutable_data() = *std::move(part);
    if (!writer->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  } while (off < *size);
  return grpc::Status::OK;
}

grpc::Status CompressionServiceImpl::GetReport(grpc::ServerContext*, const v1::GetReportRequest* r,
                                               v1::GetReportResponse* out) {
  return Assign(c_->GetReport(r->job_id()), out);
}

grpc::Status CompressionServiceImpl::GetPareto(grpc::ServerContext*, const v1::GetParetoRequest* r,
                                               v1::GetParetoResponse* out) {
  return Assign(c_->GetPareto(*r), out);
}

grpc::Status WorkerServiceImpl::RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest* r,
                                               v1::RegisterWorkerResponse* out) {
  return Assign(c_->RegisterWorker(r->capabilities()), out);
}

grpc::Status WorkerServiceImpl::LeaseTask(grpc::ServerContext* ctx, const v1::LeaseTaskRequest* r,
                                          v1::LeaseTaskResponse* out) {
  absl::StatusOr<std::optional<v1::Task>> t =
      c_->LeaseTask(r->worker_id(), r->wait_ms(), [ctx] { return ctx->IsCancelled(); });
  if (!t.ok()) return ToGrpc(t.status());
  if (*t) {
    out->set_found(true);
    *out->mutable_task() = std::move(**t);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* r,
                                          v1::HeartbeatResponse* out) {
  return Assign(c_->Heartbeat(*r), out);
}
grpc::Status WorkerServiceImpl::CompleteTask(grpc::ServerContext*, const v1::CompleteTaskRequest* r, v1::TaskAck* out) {
  return Assign(c_->CompleteTask(*r), out);
}
grpc::Status WorkerServiceImpl::FailTask(grpc::ServerContext*, const v1::FailTaskRequest* r, v1::TaskAck* out) {
  return Assign(c_->FailTask(*r), out);
}
grpc::Status WorkerServiceImpl::ReleaseTask(grpc::ServerContext*, const v1::ReleaseTaskRequest* r, v1::TaskAck* out) {
  return Assign(c_->ReleaseTask(*r), out);
}

}  // namespace squeeze::server
