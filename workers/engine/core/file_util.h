// Small file helpers. Writers never leave a half-written file visible: they
// write a temporary sibling, fsync it, rename it over the target and fsync the
// directory.
#pragma once

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace squeeze {

// Reads a whole file. NotFound if it does not exist.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Atomically replaces `path` with `contents` (temp + fsync + rename + dir fsync).
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// Streams into "<path>.tmp.<pid>.<n>"; Commit() fsyncs and renames onto `path`.
// Destroying an uncommitted writer removes the temporary file.
class AtomicFileWriter {
 public:
  // The file appears with permission bits `mode` (before umask).
  static absl::StatusOr<AtomicFileWriter> Create(const std::string& path, int mode = 0644);
  // For content-addressed stores, where the name is known only at the end: the
  // temporary file lives in `tmp_dir` (same filesystem as the destination) and
  // CommitAs() names the destination.
  static absl::StatusOr<AtomicFileWriter> CreateUnnamed(const std::string& tmp_dir, int mode = 0644);
  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  ~AtomicFileWriter();

  absl::Status Append(absl::string_view bytes);
  absl::Status Commit();  // == CommitAs(the path given to Create)
  // fsync, close, rename onto `path`, fsync its directory. Errors: NotFound,
  // ResourceExhausted (ENOSPC / EDQUOT), Internal; each names the path.
  absl::Status CommitAs(const std::string& path);
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  AtomicFileWriter(std::string path, std::string tmp_path, int fd)
      : path_(std::move(path)), tmp_path_(std::move(tmp_path)), fd_(fd) {}
  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
  uint64_t bytes_written_ = 0;
  bool committed_ = false;
};

// Creates a directory and its parents (like mkdir -p).
absl::Status MakeDirs(const std::string& path);

}  // namespace squeeze
