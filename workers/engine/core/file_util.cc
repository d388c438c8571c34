#include "workers/engine/core/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze {
namespace {

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  const int err = errno;
  const std::string msg = absl::StrCat(path, ": ", what, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

absl::Status FsyncDirOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open directory", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoError("fsync directory", dir);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    errno = ENOENT;
    if (std::filesystem::exists(path)) errno = EACCES;
    return ErrnoError("cannot open", path);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::InternalError(absl::StrCat(path, ": read failed"));
  return std::move(ss).str();
}

namespace {
absl::StatusOr<int> CreateTemp(const std::string& tmp, int mode) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) return ErrnoError("create", tmp);
  return fd;
}
std::string UniqueSuffix() {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(::getpid(), ".", counter.fetch_add(1));
}
}  // namespace

absl::StatusOr<AtomicFileWriter> AtomicFileWriter::Create(const std::string& path, int mode) {
  const std::string tmp = absl::StrCat(path, ".tmp.", UniqueSuffix());
  SQ_ASSIGN_OR_RETURN(int fd, CreateTemp(tmp, mode));
  return AtomicFileWriter(path, tmp, fd);
}

absl::StatusOr<AtomicFileWriter> AtomicFileWriter::CreateUnnamed(const std::string& tmp_dir, int mode) {
  const std::string tmp = absl::StrCat(tmp_dir, "/unnamed.tmp.", UniqueSuffix());
  SQ_ASSIGN_OR_RETURN(int fd, CreateTemp(tmp, mode));
  return AtomicFileWriter("", tmp, fd);
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      tmp_path_(std::move(other.tmp_path_)),
      fd_(other.fd_),
      bytes_written_(other.bytes_written_),
      committed_(other.committed_) {
  other.fd_ = -1;
  other.committed_ = true;  // the moved-from writer owns nothing to clean up
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

absl::Status AtomicFileWriter::Append(absl::string_view bytes) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(tmp_path_, ": writer closed"));
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", tmp_path_);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  bytes_written_ += bytes.size();
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (path_.empty()) return absl::FailedPreconditionError(absl::StrCat(tmp_path_, ": no destination: use CommitAs"));
  return CommitAs(path_);
}

absl::Status AtomicFileWriter::CommitAs(const std::string& path) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path, ": writer closed"));
  if (::fsync(fd_) != 0) return ErrnoError("fsync", tmp_path_);
  if (::close(fd_) != 0) {
    fd_ = -1;
    return ErrnoError("close", tmp_path_);
  }
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), path.c_str()) != 0) return ErrnoError("rename", path);
  committed_ = true;
  return FsyncDirOf(path);
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents) {
  SQ_ASSIGN_OR_RETURN(AtomicFileWriter writer, AtomicFileWriter::Create(path));
  SQ_RETURN_IF_ERROR(writer.Append(contents));
  return writer.Commit();
}

absl::Status MakeDirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return absl::InternalError(absl::StrCat(path, ": mkdir: ", ec.message()));
  return absl::OkStatus();
}

}  // namespace squeeze
