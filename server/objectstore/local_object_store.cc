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

absl::Status FsyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open directory", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("fsync directory", dir);
  return absl::OkStatus();
}

class LocalBlobWriter : public BlobWriter {
 public:
  LocalBlobWriter(const LocalObjectStore* store, std::string tmp, int fd)
      : store_(store), tmp_(std::move(tmp)), fd_(fd) {}
  ~LocalBlobWriter() override {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }

  absl::Status Append(absl::string_view bytes) override {
    if (fd_ < 0) return absl::FailedPreconditionError("blob writer is closed");
    hash_.Update(bytes);
    const char* p = bytes.data();
    size_t left = bytes.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("write", tmp_);
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    written_ += static_cast<int64_t>(bytes.size());
    return absl::OkStatus();
  }

  int64_t bytes_written() const override { return written_; }

  absl::StatusOr<std::string> Commit(const std::string& expected_digest) override {
    if (fd_ < 0) return absl::FailedPreconditionError("blob writer is closed");
    const std::string digest = hash_.FinalHex();
    if (!expected_digest.empty() && expected_digest != digest) {
      return absl::DataLossError(
          absl::StrCat("content sha256 ", digest, " does not match the declared ", expected_digest));
    }
    if (::fsync(fd_) != 0) return Errno("fsync", tmp_);
    ::fchmod(fd_, 0444);
    ::close(fd_);
    fd_ = -1;
    const std::string final_path = store_->BlobPath(digest);
    const std::string dir = fs::path(final_path).parent_path().string();
    SQ_RETURN_IF_ERROR(MakeDirs(dir));
    if (store_->Contains(digest)) return digest;  // dedup: the destructor drops tmp
    if (::rename(tmp_.c_str(), final_path.c_str()) != 0) return Errno("rename", final_path);
    committed_ = true;
    SQ_RETURN_IF_ERROR(FsyncDir(dir));
    return digest;
  }

 private:
  const LocalObjectStore* store_;
  std::string tmp_;
  int fd_;
  Sha256 hash_;
  int64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LocalObjectStore>> LocalObjectStore::Open(const std::string& root) {
  SQ_RETURN_IF_ERROR(MakeDirs(root + "/blobs"));
  std::error_code ec;
  fs::remove_all(root + "/tmp", ec);
  SQ_RETURN_IF_ERROR(MakeDirs(root + "/tmp"));
  return std::unique_ptr<LocalObjectStore>(new LocalObjectStore(root));
}

std::string LocalObjectStore::BlobPath(const std::string& digest) const {
  return absl::StrCat(root_, "/blobs/", digest.substr(0, 2), "/", digest);
}

absl::StatusOr<std::unique_ptr<BlobWriter>> LocalObjectStore::NewBlob() {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = absl::StrCat(root_, "/tmp/blob.", ::getpid(), ".", counter.fetch_add(1));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("create", tmp);
  return std::unique_ptr<BlobWriter>(std::make_unique<LocalBlobWriter>(this, tmp, fd));
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
