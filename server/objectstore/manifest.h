// A Manifest names a directory tree as blobs: an HF-style model or artifact
// directory is stored as one blob per file plus a manifest blob whose digest is
// the directory's name. The manifest JSON is canonical (files sorted by path,
// compact) so the same tree always has the same digest:
//   {"files":[{"path":"config.json","sha256":"…","size":437},…],"version":1}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/objectstore/object_store.h"

namespace squeeze::store {

struct ManifestEntry {
  std::string path;    // relative, '/'-separated; validated by ValidateRelativePath
  std::string sha256;  // blob digest
  int64_t size = 0;    // bytes
};

struct Manifest {
  std::vector<ManifestEntry> files;  // sorted by path, unique

  int64_t TotalBytes() const;
  std::string ToJson() const;  // canonical form
  static absl::StatusOr<Manifest> FromJson(absl::string_view json);
};

// Rejects empty paths, absolute paths, "." / ".." components and backslashes.
absl::Status ValidateRelativePath(absl::string_view path);

// Hashes every regular file under `dir` (recursively). A single regular file is
// a one-entry manifest named by its basename.
absl::StatusOr<Manifest> ManifestForPath(const std::string& path);

// Stores every file under `path` and the manifest; returns the manifest digest.
absl::StatusOr<std::string> PutTree(ObjectStore& store, const std::string& path);

// Writes the files of manifest `digest` under `out_dir` (each atomically) and
// verifies each blob's sha256 while copying.
absl::Status MaterializeTree(const ObjectStore& store, const std::string& digest,
                             const std::string& out_dir);

}  // namespace squeeze::store
