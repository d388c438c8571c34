#include "server/objectstore/local_object_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "server/objectstore/sha256.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze::store {
namespace {

namespace fs = std::filesystem;

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(path, ": ", what, ": ", std::strerror(errno)));
}

// Streams a blob into <root>/tmp, hashing as it goes; Commit names it by its
// sha256 (AtomicFileWriter: fsync, rename, directory fsync), read-only.
class LocalBlobWriter : public BlobWriter {
 public:
  LocalBlobWriter(const LocalObjectStore* store, AtomicFileWriter file,
                  std::shared_ptr<LocalObjectStore::UsageCounters> usage = nullptr)
      : store_(store), file_(std::move(file)), usage_(std::move(usage)) {}

  absl::Status Append(absl::string_view bytes) override {
    if (closed_) return absl::FailedPreconditionError("blob writer is closed");
    hash_.Update(bytes);
    return file_.Append(bytes);
  }

  int64_t bytes_written() const override { return static_cast<int64_t>(file_.bytes_written()); }

  absl::StatusOr<std::string> Commit(const std::string& expected_digest) override {
    if (closed_) return absl::FailedPreconditionError("blob writer is closed");
    closed_ = true;
    const std::string digest = hash_.FinalHex();
    if (!expected_digest.empty() && expected_digest != digest) {
      return absl::DataLossError(
          absl::StrCat("content sha256 ", digest, " does not match the declared ", expected_digest));
    }
    const std::string final_path = store_->BlobPath(digest);
    SQ_RETURN_IF_ERROR(MakeDirs(fs::path(final_path).parent_path().string()));
    if (store_->Contains(digest)) return digest;  // dedup: the writer's destructor drops tmp
    SQ_RETURN_IF_ERROR(file_.CommitAs(final_path));
    if (usage_) {
      usage_->blobs.fetch_add(1);
      usage_->bytes.fetch_add(bytes_written());
    }
    return digest;
  }

 private:
  const LocalObjectStore* store_;
  AtomicFileWriter file_;
  Sha256 hash_;
  bool closed_ = false;
  std::shared_ptr<LocalObjectStore::UsageCounters> usage_;  // null: not counted
};

}  // namespace

absl::StatusOr<std::unique_ptr<LocalObjectStore>> LocalObjectStore::Open(const std::string& root) {
  SQ_RETURN_IF_ERROR(MakeDirs(root + "/blobs"));
  std::error_code ec;
  fs::remove_all(root + "/tmp", ec);
  SQ_RETURN_IF_ERROR(MakeDirs(root + "/tmp"));
  std::unique_ptr<LocalObjectStore> store(new LocalObjectStore(root));
  // Usage: one scan now; commits add to it afterwards.
  ec.clear();
  for (auto it = fs::recursive_directory_iterator(root + "/blobs", ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    store->usage_->blobs.fetch_add(1);
    store->usage_->bytes.fetch_add(static_cast<int64_t>(it->file_size(ec)));
  }
  if (ec) return absl::InternalError(absl::StrCat(root, "/blobs: cannot scan: ", ec.message()));
  return store;
}

std::string LocalObjectStore::BlobPath(const std::string& digest) const {
  return absl::StrCat(root_, "/blobs/", digest.substr(0, 2), "/", digest);
}

absl::StatusOr<std::unique_ptr<BlobWriter>> LocalObjectStore::NewBlob() {
  SQ_ASSIGN_OR_RETURN(AtomicFileWriter file, AtomicFileWriter::CreateUnnamed(root_ + "/tmp", 0444));
  return std::unique_ptr<BlobWriter>(std::make_unique<LocalBlobWriter>(this, std::move(file), usage_));
}

absl::StatusOr<StoreUsage> LocalObjectStore::Usage() const {
  StoreUsage u;
  u.blobs = usage_->blobs.load();
  u.bytes = usage_->bytes.load();
  return u;
}

bool LocalObjectStore::Contains(const std::string& digest) const {
  if (!IsSha256Hex(digest)) return false;
  struct stat st;
  return ::stat(BlobPath(digest).c_str(), &st) == 0;
}

absl::StatusOr<int64_t> LocalObjectStore::Size(const std::string& digest) const {
  if (!IsSha256Hex(digest)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", digest, "\" is not a sha256 digest (64 hex chars)"));
  }
  struct stat st;
  if (::stat(BlobPath(digest).c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("object ", digest, " not found"));
  }
  return static_cast<int64_t>(st.st_size);
}

absl::StatusOr<std::string> LocalObjectStore::ReadRange(const std::string& digest, int64_t offset,
                                                        int64_t max_bytes) const {
  SQ_ASSIGN_OR_RETURN(int64_t size, Size(digest));
  if (offset < 0 || max_bytes < 0) return absl::InvalidArgumentError("negative offset or length");
  if (offset >= size) return std::string();
  const int64_t n = std::min(max_bytes, size - offset);
  const std::string path = BlobPath(digest);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  std::string out(static_cast<size_t>(n), '\0');
  int64_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, out.data() + got, static_cast<size_t>(n - got), offset + got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      ::close(fd);
      return Errno("read", path);
    }
    got += r;
  }
  ::close(fd);
  return out;
}

}  // namespace squeeze::store
