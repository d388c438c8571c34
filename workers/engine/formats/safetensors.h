// safetensors: read (zero copy, memory-mapped) and write (streamed, atomic).
//
// File layout (https://huggingface.co/docs/safetensors): an unsigned 64-bit
// little-endian header length N, N bytes of UTF-8 JSON, then the data buffer.
// The JSON maps tensor name -> {"dtype", "shape", "data_offsets": [begin, end]}
// (byte offsets relative to the start of the data buffer) plus an optional
// "__metadata__" object of string -> string.
//
// Reader invariants (every violation is an InvalidArgument naming the file and,
// where there is one, the tensor): N <= file size - 8 and N <= 100 MB; the
// header is a JSON object; dtypes are known; shapes are non-negative integers
// whose element count does not overflow; end - begin == numel * dtype size;
// the tensors' byte ranges tile the data buffer exactly (no overlap, no gap,
// nothing past the end, nothing left over).
//
// Writer invariants (deterministic bytes): tensors are laid out sorted by name,
// the header lists "__metadata__" first then tensors by name, and is padded with
// spaces so that the data buffer starts at a multiple of 8 bytes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/core/mapped_file.h"
#include "workers/engine/core/tensor.h"

namespace squeeze {

// Largest header the reader accepts (the reference implementation's limit).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct SafetensorsFile {
  std::string path;
  // Views point into the mapping; each view's owner keeps the mapping alive,
  // so they outlive this struct safely.
  std::map<std::string, TensorView> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__", may be empty
};

// Maps and parses `path`.
absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path);

// Parses safetensors bytes already in memory: `data` must stay valid while
// `owner` lives (views take `owner`). `name` is used in error messages.
absl::StatusOr<SafetensorsFile> ParseSafetensors(const std::string& name, const uint8_t* data, size_t size,
                                                 std::shared_ptr<const void> owner);

// One tensor to write. The bytes of `view` are stored as `dtype`; when it
// differs from view.dtype both must be float types (F32/F16/BF16) and the
// values are converted while streaming (round to nearest even).
struct SafetensorsEntry {
  std::string name;
  TensorView view;
  DType dtype = DType::kF32;
};

// Convenience: an entry stored in the view's own dtype.
SafetensorsEntry StoredAs(std::string name, TensorView view);
SafetensorsEntry StoredAs(std::string name, TensorView view, DType dtype);

// Total bytes the entry occupies in the data buffer.
int64_t StoredBytes(const SafetensorsEntry& entry);

// Writes a safetensors file atomically (temp file + rename). Tensor bytes are
// streamed from the views (converted chunk by chunk when needed): no full copy
// of the model is held. Errors name `path` and the offending tensor.
absl::Status WriteSafetensors(const std::string& path, std::vector<SafetensorsEntry> entries,
                              const std::map<std::string, std::string>& metadata = {});

// Convenience for views written in their own dtype.
absl::Status WriteSafetensorsMap(const std::string& path, const std::map<std::string, TensorView>& tensors,
                                 const std::map<std::string, std::string>& metadata = {});

}  // namespace squeeze
