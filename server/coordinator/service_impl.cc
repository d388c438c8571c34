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
#define SQ_RETURN_IF_GRPC_ERROR(expr)          \
  do {                                         \
    if (grpc::Status _s = (expr); !_s.ok()) return _s; \
  } while (0)
}  // namespace

grpc::Status CompressionServiceImpl::Caller(grpc::ServerContext* ctx, bool worker_ok, auth::Principal* out) const {
  SQ_RETURN_IF_GRPC_ERROR(auth::AuthenticateCaller(ctx, security_, out));
  if (out->kind == auth::Principal::Kind::kWorker && !worker_ok) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "a worker certificate may only upload and download blobs; users authenticate with a "
                        "bearer token");
  }
  return grpc::Status::OK;
}

grpc::Status CompressionServiceImpl::CheckJobVisible(const auth::Principal& p, const std::string& job_id) const {
  if (!p.scoped()) return grpc::Status::OK;
  absl::StatusOr<v1::Job> job = c_->GetJob(job_id);
  if (!job.ok()) return ToGrpc(job.status());
  if (job->tenant() != p.tenant) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("job ", job_id, " not found"));
  }
  return grpc::Status::OK;
}

grpc::Status CompressionServiceImpl::CheckBlobVisible(const auth::Principal& p, const std::string& digest) const {
  if (!p.scoped()) return grpc::Status::OK;
  absl::StatusOr<bool> owned = c_->TenantHasBlob(p.tenant, digest);
  if (!owned.ok()) return ToGrpc(owned.status());
  if (!*owned) return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("object ", digest, " not found"));
  return grpc::Status::OK;
}

grpc::Status CompressionServiceImpl::SubmitJob(grpc::ServerContext* ctx, const v1::SubmitJobRequest* r,
                                              v1::Job* out) {
  auth::Principal p;
  SQ_RETURN_IF_GRPC_ERROR(Caller(ctx, false, &p));
  if (p.scoped()) {
    // Inputs must be the tenant's own uploads (same answer as a missing blob).
    const std::pair<const char*, const std::string*> refs[] = {
        {"model_digest", &r->model_digest()}, {"calib_digest", &r->calib_digest()}, {"eval_digest", &r->eval_digest()}};
    for (const auto& [field, digest] : refs) {
      if (digest->empty() || !store::IsSha256Hex(*digest)) continue;  // Submit explains these
      absl::StatusOr<bool> owned = c_->TenantHasBlob(p.tenant, *digest);
      if (!owned.ok()) return ToGrpc(owned.status());
      if (!*owned) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND,
                            absl::StrCat(field, ": ", *digest, " is not in the object store (upload it first)"));
      }
    }
  }
  const auto start = std::chrono::steady_clock::now();
  grpc::Status s = Assign(c_->Submit(*r, p.tenant), out);
  if (CoordinatorMetrics* m = c_->metrics()) {
    m->Submitted(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), s.error_code());
  }
  return s;
}

grpc::Status CompressionServiceImpl::GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* r, v1::Job* out) {
  auth::Principal p;
  SQ_RETURN_IF_GRPC_ERROR(Caller(ctx, false, &p));
  SQ_RETURN_IF_GRPC_ERROR(CheckJobVisible(p, r->job_id()));
  return Assign(c_->GetJob(r->job_id()), out);
}

grpc::Status CompressionServiceImpl::ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* r,
                                              v1::ListJobsResponse* out) {
  auth::Principal p;
  SQ_RETURN_IF_GRPC_ERROR(Caller(ctx, false, &p));
  return Assign(c_->ListJobs(*r, p.scoped() ? &p.tenant : nullptr), out);
}

grpc::Status CompressionServiceImpl::CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* r,
                                              v1::Job* out) {
  auth::Principal p;
  SQ_RETURN_IF_GRPC_ERROR(Caller(ctx, false, &p));
  SQ_RETURN_IF_GRPC_ERROR(CheckJobVisible(p, r->job_id()));
  return Assign(c_->Cancel(r->job_id()), out);
}

grpc::Status CompressionServiceImpl::WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* r,
                                              grpc::ServerWriter<v1::JobEvent>* writer) {
  auth::Principal p;
  SQ_RETURN_IF_GRPC_ERROR(Caller(ctx, false, &p));
  SQ_RETURN_IF_GRPC_ERROR(CheckJobVisible(p, r->job_id()));
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

grpc::Status CompressionServiceImpl::UploadModel(grpc::ServerContext* ctx,
                                                 grpc::ServerReader<v1::UploadChunk>* reader,
                                                 v1::UploadModelResponse* out) {
  auth::Principal p;
  SQ_RETURN_IF_GRPC_ERROR(Caller(ctx, true, &p));
  // The cap: the server's, or the tenant's when that is lower (bytes).
  int64_t max_upload = c_->max_upload_bytes();
  const char* cap_name = "--max-upload-bytes";
  if (p.scoped() && p.max_upload_bytes > 0 && p.max_upload_bytes < max_upload) {
    max_upload = p.max_upload_bytes;
    cap_name = "the tenant's max_upload_bytes";
  }
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
        if (h.size() > max_upload - declared_total) {
          return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              absl::StrCat("file ", h.path(), ": upload exceeds ", cap_name, " ",
                                           max_upload, " (", declared_total, " + ", h.size(),
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
  if (p.scoped()) {
    // Only the tenant's own earlier uploads count: the store is shared.
    absl::StatusOr<bool> owned = c_->TenantHasBlob(p.tenant, manifest_digest);
    if (!owned.ok()) return ToGrpc(owned.status());
    out->set_deduplicated(*owned);
  } else {
    out->set_deduplicated(c_->objects().Contains(manifest_digest));
  }
  absl::StatusOr<std::string> stored = c_->objects().Put(json);
  if (!stored.ok()) return ToGrpc(stored.status());
  if (p.scoped()) {
    // The files and the manifest in one transaction: a failure grants none.
    std::vector<std::string> digests;
    for (const store::ManifestEntry& e : manifest.files) digests.push_back(e.sha256);
    digests.push_back(*stored);
    if (absl::Status s = c_->GrantBlobs(p.tenant, digests); !s.ok()) return ToGrpc(s);
  }
  out->set_digest(*stored);
  out->set_total_bytes(manifest.TotalBytes());
  out->set_file_count(static_cast<int>(manifest.files.size()));
  return grpc::Status::OK;
}

grpc::Status CompressionServiceImpl::DownloadArtifact(grpc::ServerContext* ctx, const v1::DownloadArtifactRequest* r,
                                                      grpc::ServerWriter<v1::DataChunk>* writer) {
  auth::Principal p;
  SQ_RETURN_IF_GRPC_ERROR(Caller(ctx, true, &p));
  std::string digest = r->digest();
  if (!digest.empty()) SQ_RETURN_IF_GRPC_ERROR(CheckBlobVisible(p, digest));
  if (digest.empty()) {
    if (r->job_id().empty()) return Invalid("one of job_id or digest is required");
    SQ_RETURN_IF_GRPC_ERROR(CheckJobVisible(p, r->job_id()));
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

grpc::Status CompressionServiceImpl::GetReport(grpc::ServerContext* ctx, const v1::GetReportRequest* r,
                                               v1::GetReportResponse* out) {
  auth::Principal p;
  SQ_RETURN_IF_GRPC_ERROR(Caller(ctx, false, &p));
  SQ_RETURN_IF_GRPC_ERROR(CheckJobVisible(p, r->job_id()));
  return Assign(c_->GetReport(r->job_id()), out);
}

grpc::Status CompressionServiceImpl::GetPareto(grpc::ServerContext* ctx, const v1::GetParetoRequest* r,
                                               v1::GetParetoResponse* out) {
  auth::Principal p;
  SQ_RETURN_IF_GRPC_ERROR(Caller(ctx, false, &p));
  if (p.scoped() && !r->job_id().empty()) SQ_RETURN_IF_GRPC_ERROR(CheckJobVisible(p, r->job_id()));
  return Assign(c_->GetPareto(*r, p.scoped() ? &p.tenant : nullptr), out);
}

grpc::Status WorkerServiceImpl::RegisterWorker(grpc::ServerContext* ctx, const v1::RegisterWorkerRequest* r,
                                               v1::RegisterWorkerResponse* out) {
  SQ_RETURN_IF_GRPC_ERROR(auth::CheckWorkerPeer(*ctx, security_));
  return Assign(c_->RegisterWorker(r->capabilities()), out);
}

grpc::Status WorkerServiceImpl::LeaseTask(grpc::ServerContext* ctx, const v1::LeaseTaskRequest* r,
                                          v1::LeaseTaskResponse* out) {
  SQ_RETURN_IF_GRPC_ERROR(auth::CheckWorkerPeer(*ctx, security_));
  absl::StatusOr<std::optional<v1::Task>> t =
      c_->LeaseTask(r->worker_id(), r->wait_ms(), [ctx] { return ctx->IsCancelled(); });
  if (!t.ok()) return ToGrpc(t.status());
  if (*t) {
    out->set_found(true);
    *out->mutable_task() = std::move(**t);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* r,
                                          v1::HeartbeatResponse* out) {
  SQ_RETURN_IF_GRPC_ERROR(auth::CheckWorkerPeer(*ctx, security_));
  return Assign(c_->Heartbeat(*r), out);
}
grpc::Status WorkerServiceImpl::CompleteTask(grpc::ServerContext* ctx, const v1::CompleteTaskRequest* r, v1::TaskAck* out) {
  SQ_RETURN_IF_GRPC_ERROR(auth::CheckWorkerPeer(*ctx, security_));
  return Assign(c_->CompleteTask(*r), out);
}
grpc::Status WorkerServiceImpl::FailTask(grpc::ServerContext* ctx, const v1::FailTaskRequest* r, v1::TaskAck* out) {
  SQ_RETURN_IF_GRPC_ERROR(auth::CheckWorkerPeer(*ctx, security_));
  return Assign(c_->FailTask(*r), out);
}
grpc::Status WorkerServiceImpl::ReleaseTask(grpc::ServerContext* ctx, const v1::ReleaseTaskRequest* r, v1::TaskAck* out) {
  SQ_RETURN_IF_GRPC_ERROR(auth::CheckWorkerPeer(*ctx, security_));
  return Assign(c_->ReleaseTask(*r), out);
}

}  // namespace squeeze::server
