#include "server/objectstore/object_store.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze::store {

absl::StatusOr<std::string> ObjectStore::Put(absl::string_view bytes) {
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> w, NewBlob());
  SQ_RETURN_IF_ERROR(w->Append(bytes));
  return w->Commit();
}

absl::StatusOr<std::string> ObjectStore::Get(const std::string& digest) const {
  SQ_ASSIGN_OR_RETURN(int64_t size, Size(digest));
  return ReadRange(digest, 0, size);
}

absl::StatusOr<std::string> ObjectStore::PutFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> w, NewBlob());
  std::string buf(1 << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n > 0) SQ_RETURN_IF_ERROR(w->Append(absl::string_view(buf.data(), static_cast<size_t>(n))));
  }
  if (in.bad()) return absl::InternalError(absl::StrCat(path, ": read failed"));
  return w->Commit();
}

absl::Status ObjectStore::CopyToFile(const std::string& digest, const std::string& path) const {
  SQ_ASSIGN_OR_RETURN(int64_t size, Size(digest));
  SQ_ASSIGN_OR_RETURN(AtomicFileWriter out, AtomicFileWriter::Create(path));
  constexpr int64_t kStep = 1 << 20;
  for (int64_t off = 0; off < size; off += kStep) {
    SQ_ASSIGN_OR_RETURN(std::string part, ReadRange(digest, off, kStep));
    SQ_RETURN_IF_ERROR(out.Append(part));
  }
  return out.Commit();
}

}  // namespace squeeze::store
