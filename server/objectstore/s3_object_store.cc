#include "server/objectstore/s3_object_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/objectstore/s3_xml.h"
#include "server/objectstore/sha256.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze::store {
namespace {

constexpr int64_t kMaxParts = 10000;  // S3's limit per multipart upload

absl::Status BadDigest(const std::string& digest) {
  return absl::InvalidArgumentError(absl::StrCat("\"", digest, "\" is not a sha256 digest (64 hex chars)"));
}

bool Ok(long status) { return status >= 200 && status < 300; }

absl::StatusOr<std::string> PreadAll(int fd, int64_t offset, int64_t n);

// At most this many bytes of one open writer stay in memory; the rest goes to
// its spool file. An upload keeps one writer per file open until it finishes,
// so a model of many files must not sit in the coordinator's RAM.
constexpr int64_t kWriterMemoryCap = int64_t{4} << 20;

// Streams a blob into memory, then (past kWriterMemoryCap or the multipart
// threshold, whichever is smaller) into an unnamed spool file, hashing as it
// goes. Blobs up to the multipart threshold go up in one PUT, read back from
// the spool at commit when they were spooled.
class S3BlobWriter : public BlobWriter {
 public:
  explicit S3BlobWriter(const S3ObjectStore* store) : store_(store) {}
  ~S3BlobWriter() override {
    if (spool_fd_ >= 0) ::close(spool_fd_);
  }

  absl::Status Append(absl::string_view bytes) override {
    if (closed_) return absl::FailedPreconditionError("blob writer is closed");
    hash_.Update(bytes);
    written_ += static_cast<int64_t>(bytes.size());
    const S3Options& o = store_->client().options();
    const int64_t memory_cap = std::min<int64_t>(kWriterMemoryCap, o.multipart_threshold_bytes);
    if (spool_fd_ < 0 && static_cast<int64_t>(memory_.size() + bytes.size()) > memory_cap) {
      SQ_RETURN_IF_ERROR(OpenSpool(o));
      SQ_RETURN_IF_ERROR(WriteSpool(memory_));
      std::string().swap(memory_);
    }
    if (spool_fd_ >= 0) return WriteSpool(bytes);
    memory_.append(bytes.data(), bytes.size());
    return absl::OkStatus();
  }

  int64_t bytes_written() const override { return written_; }

  absl::StatusOr<std::string> Commit(const std::string& expected_digest) override {
    if (closed_) return absl::FailedPreconditionError("blob writer is closed");
    closed_ = true;
    const std::string digest = hash_.FinalHex();
    if (!expected_digest.empty() && expected_digest != digest) {
      return absl::DataLossError(
          absl::StrCat("content sha256 ", digest, " does not match the declared ", expected_digest));
    }
    // Dedup: an object of this digest and size is this blob.
    if (absl::StatusOr<int64_t> have = store_->Size(digest); have.ok() && *have == written_) return digest;
    if (spool_fd_ < 0) {
      SQ_RETURN_IF_ERROR(store_->PutSmall(digest, memory_));
    } else if (written_ <= store_->client().options().multipart_threshold_bytes) {
      SQ_ASSIGN_OR_RETURN(std::string bytes, PreadAll(spool_fd_, 0, written_));
      SQ_RETURN_IF_ERROR(store_->PutSmall(digest, bytes));
    } else {
      SQ_RETURN_IF_ERROR(store_->PutMultipart(digest, spool_fd_, written_));
    }
    return digest;
  }

 private:
  absl::Status OpenSpool(const S3Options& o) {
    std::string dir = o.spool_dir;
    if (dir.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      dir = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
    }
    spool_fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (spool_fd_ < 0) {  // file systems without O_TMPFILE: create and unlink
      std::string path = dir + "/squeeze-s3-spool.XXXXXX";
      spool_fd_ = ::mkostemp(path.data(), O_CLOEXEC);
      if (spool_fd_ >= 0) ::unlink(path.c_str());
    }
    if (spool_fd_ < 0) {
      return absl::InternalError(absl::StrCat(dir, ": cannot create an S3 upload spool file: ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }

  absl::Status WriteSpool(absl::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(spool_fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::InternalError(absl::StrCat("S3 upload spool: write failed: ", std::strerror(errno)));
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  const S3ObjectStore* store_;
  Sha256 hash_;
  std::string memory_;
  int spool_fd_ = -1;
  int64_t written_ = 0;
  bool closed_ = false;
};

absl::StatusOr<std::string> PreadAll(int fd, int64_t offset, int64_t n) {
  std::string out(static_cast<size_t>(n), '\0');
  int64_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, out.data() + got, static_cast<size_t>(n - got), offset + got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return absl::InternalError(absl::StrCat("S3 upload spool: read failed: ", std::strerror(errno)));
    got += r;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<S3ObjectStore>> S3ObjectStore::Open(S3Options options) {
  SQ_RETURN_IF_ERROR(ValidateS3Options(options));
  std::unique_ptr<S3ObjectStore> store(new S3ObjectStore(std::move(options)));
  SQ_RETURN_IF_ERROR(store->CheckBucket());
  return store;
}

absl::Status S3ObjectStore::CheckBucket() const {
  S3Request req;
  req.query = S3Query({{"list-type", "2"}, {"max-keys", "1"}, {"prefix", client_.options().key_prefix}});
  SQ_ASSIGN_OR_RETURN(S3Response resp, client_.Send(req));
  if (!Ok(resp.status)) return client_.ErrorFor(req, resp);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BlobWriter>> S3ObjectStore::NewBlob() {
  return std::unique_ptr<BlobWriter>(std::make_unique<S3BlobWriter>(this));
}

bool S3ObjectStore::Contains(const std::string& digest) const { return Size(digest).ok(); }

absl::StatusOr<int64_t> S3ObjectStore::Size(const std::string& digest) const {
  if (!IsSha256Hex(digest)) return BadDigest(digest);
  S3Request req;
  req.method = "HEAD";
  req.key = KeyFor(digest);
  SQ_ASSIGN_OR_RETURN(S3Response resp, client_.Send(req));
  if (resp.status == 404) return absl::NotFoundError(absl::StrCat("object ", digest, " not found (", client_.Describe(req.key), ")"));
  if (!Ok(resp.status)) return client_.ErrorFor(req, resp);
  int64_t size = -1;
  if (!absl::SimpleAtoi(resp.headers["content-length"], &size) || size < 0) {
    return absl::DataLossError(absl::StrCat(client_.Describe(req.key), ": HEAD gave no valid Content-Length"));
  }
  return size;
}

absl::StatusOr<std::string> S3ObjectStore::ReadRange(const std::string& digest, int64_t offset,
                                                     int64_t max_bytes) const {
  if (!IsSha256Hex(digest)) return BadDigest(digest);
  if (offset < 0 || max_bytes < 0) return absl::InvalidArgumentError("negative offset or length");
  if (max_bytes == 0) {
    SQ_RETURN_IF_ERROR(Size(digest).status());
    return std::string();
  }
  S3Request req;
  req.key = KeyFor(digest);
  req.headers.push_back(absl::StrCat("Range: bytes=", offset, "-", offset + max_bytes - 1));
  SQ_ASSIGN_OR_RETURN(S3Response resp, client_.Send(req));
  if (resp.status == 416) {  // offset at or past the end
    SQ_RETURN_IF_ERROR(Size(digest).status());
    return std::string();
  }
  if (resp.status == 404) return absl::NotFoundError(absl::StrCat("object ", digest, " not found (", client_.Describe(req.key), ")"));
  if (!Ok(resp.status)) return client_.ErrorFor(req, resp);
  const auto bad = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat(client_.Describe(req.key), ": ", why));
  };
  // The object's total size: Content-Range "bytes a-b/total" (206), or the body (200).
  int64_t total = static_cast<int64_t>(resp.body.size());
  if (resp.status == 206) {
    const std::string& cr = resp.headers["content-range"];
    const size_t slash = cr.rfind('/');
    if (slash == std::string::npos || !absl::SimpleAtoi(cr.substr(slash + 1), &total)) {
      return bad(absl::StrCat("unreadable Content-Range \"", cr, "\""));
    }
  } else if (offset > 0) {
    return bad("the server ignored the Range header");
  }
  const int64_t expect = std::max<int64_t>(0, std::min(max_bytes, total - offset));
  std::string body = std::move(resp.body);
  if (resp.status == 200) body = body.substr(0, static_cast<size_t>(expect));
  if (static_cast<int64_t>(body.size()) != expect) {
    return bad(absl::StrCat("read ", body.size(), " bytes at offset ", offset, ", expected ", expect));
  }
  if (auto meta = resp.headers.find("x-amz-meta-sha256"); meta != resp.headers.end() && meta->second != digest) {
    return bad(absl::StrCat("object metadata names sha256 ", meta->second));
  }
  if (offset == 0 && expect == total) {  // the whole blob: its content must hash to its name
    const std::string got = Sha256Hex(body);
    if (got != digest) return bad(absl::StrCat("content hashes to ", got, ", not to its name"));
  }
  return body;
}

absl::Status S3ObjectStore::PutSmall(const std::string& digest, absl::string_view bytes) const {
  S3Request req;
  req.method = "PUT";
  req.key = KeyFor(digest);
  req.body = bytes;
  req.headers = {"Content-Type: application/octet-stream", absl::StrCat("x-amz-meta-sha256: ", digest)};
  SQ_ASSIGN_OR_RETURN(S3Response resp, client_.Send(req));
  if (!Ok(resp.status)) return client_.ErrorFor(req, resp);
  return absl::OkStatus();
}

absl::Status S3ObjectStore::PutMultipart(const std::string& digest, int spool_fd, int64_t size) const {
  const S3Options& o = client_.options();
  const std::string key = KeyFor(digest);
  // Part size: the configured one, grown (in MiB steps) to stay within 10000 parts.
  int64_t part_size = o.part_size_bytes;
  if ((size + part_size - 1) / part_size > kMaxParts) {
    const int64_t mib = int64_t{1} << 20;
    part_size = ((size + kMaxParts - 1) / kMaxParts + mib - 1) / mib * mib;
  }
  const int parts = static_cast<int>(std::max<int64_t>(1, (size + part_size - 1) / part_size));

  S3Request create;
  create.method = "POST";
  create.key = key;
  create.query = "uploads=";
  create.headers = {"Content-Type: application/octet-stream", absl::StrCat("x-amz-meta-sha256: ", digest)};
  SQ_ASSIGN_OR_RETURN(S3Response created, client_.Send(create));
  if (!Ok(created.status)) return client_.ErrorFor(create, created);
  const std::string upload_id = S3XmlValue(created.body, "UploadId");
  if (upload_id.empty()) {
    return absl::DataLossError(absl::StrCat(client_.Describe(key), ": CreateMultipartUpload returned no UploadId"));
  }
  const auto abort_with = [&](absl::Status why, int part) {
    S3Request abort;
    abort.method = "DELETE";
    abort.key = key;
    abort.query = S3Query({{"uploadId", upload_id}});
    absl::StatusOr<S3Response> aborted = client_.Send(abort);
    const bool clean = aborted.ok() && Ok(aborted->status);
    return absl::Status(why.code(), absl::StrCat("multipart upload of ", size, " bytes failed at part ", part, "/", parts,
                                                 (clean ? " (upload aborted, nothing stored)"
                                                        : " (abort failed too; no object is visible, the parts are "
                                                          "left for the bucket's lifecycle rule)"),
                                                 ": ", why.message()));
  };

  std::string complete = "<CompleteMultipartUpload>";
  for (int part = 1; part <= parts; ++part) {
    const int64_t offset = (part - 1) * part_size;
    absl::StatusOr<std::string> bytes = PreadAll(spool_fd, offset, std::min(part_size, size - offset));
    if (!bytes.ok()) return abort_with(bytes.status(), part);
    S3Request put;
    put.method = "PUT";
    put.key = key;
    put.query = S3Query({{"partNumber", absl::StrCat(part)}, {"uploadId", upload_id}});
    put.body = *bytes;
    absl::StatusOr<S3Response> resp = client_.Send(put);
    if (!resp.ok()) return abort_with(resp.status(), part);
    if (!Ok(resp->status)) return abort_with(client_.ErrorFor(put, *resp), part);
    const std::string etag = resp->headers["etag"];
    if (etag.empty()) return abort_with(absl::DataLossError("UploadPart returned no ETag"), part);
    absl::StrAppend(&complete, "<Part><PartNumber>", part, "</PartNumber><ETag>", S3XmlEscape(etag), "</ETag></Part>");
    if (o.after_part_uploaded) o.after_part_uploaded(part, parts);
  }
  absl::StrAppend(&complete, "</CompleteMultipartUpload>");

  S3Request finish;
  finish.method = "POST";
  finish.key = key;
  finish.query = S3Query({{"uploadId", upload_id}});
  finish.body = complete;
  finish.headers = {"Content-Type: application/xml"};
  absl::StatusOr<S3Response> done = client_.Send(finish);
  if (!done.ok()) return abort_with(done.status(), parts);
  // S3 may answer 200 with an <Error> document when completion fails late.
  if (!Ok(done->status) || done->body.find("<Error>") != std::string::npos) {
    // A retried Complete whose first try succeeded finds no upload: the object decides.
    if (absl::StatusOr<int64_t> have = Size(digest); have.ok() && *have == size) return absl::OkStatus();
    return abort_with(client_.ErrorFor(finish, *done), parts);
  }
  SQ_ASSIGN_OR_RETURN(int64_t stored, Size(digest));
  if (stored != size) {
    return absl::DataLossError(absl::StrCat(client_.Describe(key), ": multipart upload stored ", stored,
                                            " bytes, expected ", size));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> S3ObjectStore::ListDigests() const {
  std::vector<std::string> out;
  const std::string& prefix = client_.options().key_prefix;
  std::string token;
  while (true) {
    S3Request req;
    std::vector<std::pair<std::string, std::string>> q = {{"list-type", "2"}, {"prefix", prefix}};
    if (!token.empty()) q.emplace_back("continuation-token", token);
    req.query = S3Query(q);
    SQ_ASSIGN_OR_RETURN(S3Response resp, client_.Send(req));
    if (!Ok(resp.status)) return client_.ErrorFor(req, resp);
    for (const std::string& key : S3XmlValues(resp.body, "Key")) {
      if (key.size() > prefix.size() && IsSha256Hex(absl::string_view(key).substr(prefix.size()))) {
        out.push_back(key.substr(prefix.size()));
      }
    }
    if (S3XmlValue(resp.body, "IsTruncated") != "true") break;
    token = S3XmlValue(resp.body, "NextContinuationToken");
    if (token.empty()) return absl::DataLossError(absl::StrCat(client_.Describe(""), ": truncated listing without a continuation token"));
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status S3ObjectStore::Delete(const std::string& digest) {
  if (!IsSha256Hex(digest)) return BadDigest(digest);
  S3Request req;
  req.method = "DELETE";
  req.key = KeyFor(digest);
  SQ_ASSIGN_OR_RETURN(S3Response resp, client_.Send(req));
  if (!Ok(resp.status) && resp.status != 404) return client_.ErrorFor(req, resp);
  return absl::OkStatus();
}

}  // namespace squeeze::store
