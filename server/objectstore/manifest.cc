#include "server/objectstore/manifest.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "server/objectstore/sha256.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze::store {
namespace fs = std::filesystem;

int64_t Manifest::TotalBytes() const {
  int64_t t = 0;
  for (const auto& f : files) t += f.size;
  return t;
}

std::string Manifest::ToJson() const {
  std::vector<ManifestEntry> sorted = files;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& f : sorted) arr.push_back({{"path", f.path}, {"sha256", f.sha256}, {"size", f.size}});
  nlohmann::json j = {{"version", 1}, {"files", arr}};
  return j.dump();
}

absl::Status ValidateRelativePath(absl::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("empty file path");
  if (path.front() == '/') return absl::InvalidArgumentError(absl::StrCat("path \"", path, "\" is absolute"));
  if (path.find('\\') != absl::string_view::npos || path.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("path \"", path, "\" has a forbidden character"));
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return absl::InvalidArgumentError(absl::StrCat("path \"", path, "\" has an empty, '.' or '..' component"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Manifest> Manifest::FromJson(absl::string_view json) {
  Manifest m;
  try {
    const nlohmann::json j = nlohmann::json::parse(json.begin(), json.end());
    if (!j.is_object() || j.value("version", 0) != 1 || !j.contains("files") || !j["files"].is_array()) {
      return absl::InvalidArgumentError("not a squeeze manifest (want {\"version\":1,\"files\":[...]})");
    }
    for (const auto& f : j["files"]) {
      ManifestEntry e{f.at("path").get<std::string>(), f.at("sha256").get<std::string>(),
                      f.at("size").get<int64_t>()};
      SQ_RETURN_IF_ERROR(ValidateRelativePath(e.path));
      if (!IsSha256Hex(e.sha256)) return absl::InvalidArgumentError(absl::StrCat("manifest: bad sha256 for ", e.path));
      if (e.size < 0) return absl::InvalidArgumentError(absl::StrCat("manifest: negative size for ", e.path));
      m.files.push_back(std::move(e));
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("manifest: ", e.what()));
  }
  return m;
}

absl::StatusOr<Manifest> ManifestForPath(const std::string& path) {
  Manifest m;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    SQ_ASSIGN_OR_RETURN(std::string digest, Sha256File(path));
    m.files.push_back({fs::path(path).filename().string(), digest, static_cast<int64_t>(fs::file_size(path))});
    return m;
  }
  if (!fs::is_directory(path, ec)) return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string rel = fs::relative(it->path(), path).generic_string();
    SQ_ASSIGN_OR_RETURN(std::string digest, Sha256File(it->path().string()));
    m.files.push_back({rel, digest, static_cast<int64_t>(it->file_size())});
  }
  if (ec) return absl::InternalError(absl::StrCat(path, ": ", ec.message()));
  if (m.files.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": directory has no files"));
  std::sort(m.files.begin(), m.files.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  return m;
}

absl::StatusOr<std::string> PutTree(ObjectStore& store, const std::string& path) {
  SQ_ASSIGN_OR_RETURN(Manifest m, ManifestForPath(path));
  const bool single = fs::is_regular_file(path);
  for (const auto& f : m.files) {
    const std::string file = single ? path : (fs::path(path) / f.path).string();
    SQ_ASSIGN_OR_RETURN(std::string digest, store.PutFile(file));
    if (digest != f.sha256) return absl::DataLossError(absl::StrCat(file, ": changed while being stored"));
  }
  return store.Put(m.ToJson());
}

absl::Status MaterializeTree(const ObjectStore& store, const std::string& digest, const std::string& out_dir) {
  SQ_ASSIGN_OR_RETURN(std::string json, store.Get(digest));
  SQ_ASSIGN_OR_RETURN(Manifest m, Manifest::FromJson(json));
  for (const auto& f : m.files) {
    const fs::path target = fs::path(out_dir) / f.path;
    SQ_RETURN_IF_ERROR(MakeDirs(target.parent_path().string()));
    SQ_ASSIGN_OR_RETURN(AtomicFileWriter out, AtomicFileWriter::Create(target.string()));
    Sha256 h;
    constexpr int64_t kStep = 1 << 20;
    for (int64_t off = 0; off < f.size; off += kStep) {
      SQ_ASSIGN_OR_RETURN(std::string part, store.ReadRange(f.sha256, off, kStep));
      h.Update(part);
      SQ_RETURN_IF_ERROR(out.Append(part));
    }
    if (out.bytes_written() != static_cast<uint64_t>(f.size) || h.FinalHex() != f.sha256) {
      return absl::DataLossError(absl::StrCat("blob for ", f.path, " is corrupt (sha256 mismatch)"));
    }
    SQ_RETURN_IF_ERROR(out.Commit());
  }
  return absl::OkStatus();
}

}  // namespace squeeze::store
