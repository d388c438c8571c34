#include "server/objectstore/local_object_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "server/objectstore/manifest.h"
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
// Appended bytes are reserved against the store's quota until the writer
// commits or is destroyed.
class LocalBlobWriter : public BlobWriter {
 public:
  LocalBlobWriter(const LocalObjectStore* store, AtomicFileWriter file,
                  std::shared_ptr<LocalObjectStore::Shared> shared)
      : store_(store), file_(std::move(file)), shared_(std::move(shared)) {}
  ~LocalBlobWriter() override { Unreserve(); }

  absl::Status Append(absl::string_view bytes) override {
    if (closed_) return absl::FailedPreconditionError("blob writer is closed");
    if (shared_->max_bytes > 0) {
      const int64_t n = static_cast<int64_t>(bytes.size());
      std::lock_guard<std::mutex> lk(shared_->mu);
      const int64_t used = shared_->bytes.load() + shared_->reserved;
      if (n > shared_->max_bytes - used) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "object store full: ", n, " more bytes would exceed --store-max-bytes ", shared_->max_bytes, " (",
            shared_->bytes.load(), " bytes stored, ", shared_->reserved,
            " held by uploads in progress); nothing stored"));
      }
      shared_->reserved += n;
      reserved_ += n;
    }
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
    // One committer per digest: a second writer of the same bytes waits for
    // the first and then deduplicates, so the blob is counted once and is
    // visible when either Commit returns.
    {
      std::unique_lock<std::mutex> lk(shared_->mu);
      shared_->committed_cv.wait(lk, [&] { return shared_->committing.count(digest) == 0; });
      if (store_->Contains(digest)) return digest;  // dedup: the writer's destructor drops tmp
      shared_->committing.insert(digest);
    }
    absl::Status s = file_.CommitAs(final_path);
    {
      std::lock_guard<std::mutex> lk(shared_->mu);
      shared_->committing.erase(digest);
      if (s.ok()) {
        shared_->blobs.fetch_add(1);
        shared_->bytes.fetch_add(bytes_written());
      }
    }
    shared_->committed_cv.notify_all();
    Unreserve();
    SQ_RETURN_IF_ERROR(s);
    return digest;
  }

 private:
  void Unreserve() {
    if (reserved_ == 0) return;
    std::lock_guard<std::mutex> lk(shared_->mu);
    shared_->reserved -= reserved_;
    reserved_ = 0;
  }

  const LocalObjectStore* store_;
  AtomicFileWriter file_;
  Sha256 hash_;
  bool closed_ = false;
  std::shared_ptr<LocalObjectStore::Shared> shared_;
  int64_t reserved_ = 0;  // bytes of this writer counted in shared_->reserved
};

}  // namespace

absl::StatusOr<std::unique_ptr<LocalObjectStore>> LocalObjectStore::Open(const std::string& root,
                                                                         LocalStoreOptions options) {
  if (options.max_bytes < 0) return absl::InvalidArgumentError("store max_bytes: must be >= 0 (0 = no quota)");
  std::error_code ec;
  if (options.read_only) {
    if (!fs::is_directory(root + "/blobs", ec)) {
      return absl::NotFoundError(absl::StrCat(root, "/blobs: no such directory (read-only open creates nothing)"));
    }
  } else {
    SQ_RETURN_IF_ERROR(MakeDirs(root + "/blobs"));
    fs::remove_all(root + "/tmp", ec);
    SQ_RETURN_IF_ERROR(MakeDirs(root + "/tmp"));
  }
  std::unique_ptr<LocalObjectStore> store(new LocalObjectStore(root));
  store->read_only_ = options.read_only;
  store->shared_->max_bytes = options.max_bytes;
  // Usage: one scan now; commits add to it afterwards.
  ec.clear();
  for (auto it = fs::recursive_directory_iterator(root + "/blobs", ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    store->shared_->blobs.fetch_add(1);
    store->shared_->bytes.fetch_add(static_cast<int64_t>(it->file_size(ec)));
  }
  if (ec) return absl::InternalError(absl::StrCat(root, "/blobs: cannot scan: ", ec.message()));
  return store;
}

absl::StatusOr<StoreVerifyReport> LocalObjectStore::Verify() const {
  StoreVerifyReport r;
  std::error_code ec;
  std::vector<std::string> digests;
  for (auto it = fs::recursive_directory_iterator(root_ + "/blobs", ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_directory(ec)) continue;
    const std::string name = it->path().filename().string();
    const std::string rel = it->path().lexically_relative(root_).string();
    if (!it->is_regular_file(ec)) {
      r.problems.push_back(absl::StrCat(rel, ": not a regular file"));
      continue;
    }
    if (!IsSha256Hex(name) || it->path().parent_path().filename().string() != name.substr(0, 2)) {
      r.problems.push_back(absl::StrCat(rel, ": not named blobs/<first two hex digits>/<sha256>"));
      continue;
    }
    ++r.blobs;
    r.bytes += static_cast<int64_t>(it->file_size(ec));
    absl::StatusOr<std::string> got = Sha256File(it->path().string());
    if (!got.ok()) {
      r.problems.push_back(absl::StrCat(rel, ": cannot read: ", got.status().message()));
    } else if (*got != name) {
      r.problems.push_back(absl::StrCat(rel, ": content hashes to ", *got));
    } else {
      digests.push_back(name);
    }
  }
  if (ec) return absl::InternalError(absl::StrCat(root_, "/blobs: cannot scan: ", ec.message()));
  for (const std::string& d : digests) {
    // Manifests are small JSON objects; skip anything else without reading it all.
    absl::StatusOr<std::string> head = ReadRange(d, 0, 16);
    if (!head.ok() || head->rfind("{\"files\":", 0) != 0) continue;
    absl::StatusOr<std::string> json = Get(d);
    if (!json.ok()) continue;
    absl::StatusOr<Manifest> m = Manifest::FromJson(*json);
    if (!m.ok()) continue;  // a blob that merely looks like one
    ++r.manifests;
    for (const ManifestEntry& f : m->files) {
      absl::StatusOr<int64_t> size = Size(f.sha256);
      if (!size.ok()) {
        r.problems.push_back(absl::StrCat("manifest ", d, ": file ", f.path, " (blob ", f.sha256, ") is missing"));
      } else if (*size != f.size) {
        r.problems.push_back(absl::StrCat("manifest ", d, ": file ", f.path, " declares ", f.size, " bytes, blob has ",
                                          *size));
      }
    }
  }
  return r;
}

std::string LocalObjectStore::BlobPath(const std::string& digest) const {
  return absl::StrCat(root_, "/blobs/", digest.substr(0, 2), "/", digest);
}

absl::StatusOr<std::unique_ptr<BlobWriter>> LocalObjectStore::NewBlob() {
  if (read_only_) return absl::FailedPreconditionError(absl::StrCat(root_, ": object store opened read-only"));
  SQ_ASSIGN_OR_RETURN(AtomicFileWriter file, AtomicFileWriter::CreateUnnamed(root_ + "/tmp", 0444));
  return std::unique_ptr<BlobWriter>(std::make_unique<LocalBlobWriter>(this, std::move(file), shared_));
}

absl::StatusOr<StoreUsage> LocalObjectStore::Usage() const {
  StoreUsage u;
  u.blobs = shared_->blobs.load();
  u.bytes = shared_->bytes.load();
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
