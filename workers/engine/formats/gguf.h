// GGUF files (llama.cpp / ggml), version 3: read (zero copy, memory-mapped,
// every field validated) and write (deterministic bytes, atomic).
//
// Layout (all little-endian; ggml's docs/gguf.md):
//   uint32 magic "GGUF" (bytes 47 47 55 46), uint32 version (3),
//   uint64 tensor_count, uint64 metadata_kv_count,
//   metadata_kv_count x { string key, uint32 value_type, value },
//   tensor_count x { string name, uint32 n_dims, uint64 ne[n_dims],
//                    uint32 ggml_type, uint64 offset },
//   zero padding to a multiple of `alignment`, then the data section.
// A string is uint64 length + that many bytes (no terminator). An array value
// is uint32 element type, uint64 count, the elements. ne[0] is the fastest
// (contiguous) dimension: a row-major [rows, cols] matrix has ne = {cols, rows}.
// `offset` is relative to the data section and a multiple of `alignment`
// ("general.alignment", uint32, a power of two >= 8; 32 when absent).
//
// Reader invariants (violations are InvalidArgument naming the file and the
// key / tensor): magic and version (2 or 3; 1 used 32-bit counts and is
// refused); every length fits in the remaining bytes (no allocation is sized
// by an unchecked count); keys and tensor names unique and non-empty; tensor
// names at most 64 bytes; value types known; nested arrays refused;
// general.alignment a power of two >= 8 (kGgufMinAlignment) of type uint32; 1..4 dims, each
// >= 1, element count without int64 overflow; ne[0] a multiple of the type's
// block size; ggml type one of ggml_blocks.h (others are named in the
// error); offsets aligned; each tensor's bytes inside the data section and no
// two tensors overlapping.
//
// Writer: metadata in the order given, tensors in the order given, each at
// the next multiple of the alignment, zero padding; the file appears
// atomically (AtomicFileWriter).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/formats/ggml_blocks.h"

namespace squeeze {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian uint32
inline constexpr uint32_t kGgufVersion = 3;
inline constexpr uint64_t kGgufDefaultAlignment = 32;
// Smallest general.alignment accepted (the specification: a multiple of 8),
// so tensor data is 8-byte aligned in a mapping.
inline constexpr uint64_t kGgufMinAlignment = 8;
inline constexpr size_t kGgufMaxTensorName = 64;

enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
absl::string_view GgufTypeName(GgufType type);  // "uint32", "array", ...

// One metadata value: a scalar or a (flat) array. Integers of every width
// and bools live in `ints` (uint64 values above INT64_MAX are refused by the
// reader), float32 / float64 in `floats`, strings in `strings`; a scalar
// holds exactly one element.
struct GgufValue {
  GgufType type = GgufType::kUint32;
  GgufType elem_type = GgufType::kUint8;  // element type when type == kArray
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;

  static GgufValue Int(GgufType type, int64_t v);  // any integer type or kBool
  static GgufValue U32(uint32_t v) { return Int(GgufType::kUint32, v); }
  static GgufValue I32(int32_t v) { return Int(GgufType::kInt32, v); }
  static GgufValue Bool(bool v) { return Int(GgufType::kBool, v ? 1 : 0); }
  static GgufValue F32(float v);
  static GgufValue F64(double v);
  static GgufValue Str(std::string v);
  static GgufValue IntArray(GgufType elem_type, std::vector<int64_t> v);
  static GgufValue F32Array(std::vector<float> v);
  static GgufValue StrArray(std::vector<std::string> v);

  bool is_array() const { return type == GgufType::kArray; }
  // The type of the elements (the value's own type for scalars).
  GgufType element_type() const { return is_array() ? elem_type : type; }
  int64_t size() const;  // number of elements (1 for a scalar)
};

// A key / value pair, in file order.
struct GgufKV {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] contiguous
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;      // relative to the data section
  const uint8_t* data = nullptr;  // reader: points into the mapping
  uint64_t nbytes = 0;

  int64_t numel() const;
  // Row-major shape (ne reversed): {rows, cols} for a matrix.
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
};

struct GgufFile {
  std::string path;
  uint32_t version = kGgufVersion;
  uint64_t alignment = kGgufDefaultAlignment;
  std::vector<GgufKV> metadata;
  std::vector<GgufTensorInfo> tensors;
  std::shared_ptr<const void> owner;  // keeps `data` pointers valid

  const GgufValue* Find(absl::string_view key) const;
  const GgufTensorInfo* FindTensor(absl::string_view name) const;

  // Typed getters; errors name the file, the key and the found type.
  absl::StatusOr<int64_t> GetInt(absl::string_view key) const;   // any integer type
  absl::StatusOr<double> GetFloat(absl::string_view key) const;  // float32 / float64
  absl::StatusOr<std::string> GetString(absl::string_view key) const;
  absl::StatusOr<bool> GetBool(absl::string_view key) const;
  // Scalar or default when the key is absent (wrong type is still an error).
  absl::StatusOr<int64_t> GetIntOr(absl::string_view key, int64_t dflt) const;
  absl::StatusOr<double> GetFloatOr(absl::string_view key, double dflt) const;
};

// Maps and parses `path`.
absl::StatusOr<GgufFile> ReadGguf(const std::string& path);
// Parses bytes already in memory (`data` must outlive `owner`'s users).
absl::StatusOr<GgufFile> ParseGguf(const std::string& name, const uint8_t* data, size_t size,
                                   std::shared_ptr<const void> owner);

// One tensor to write: `bytes` must be exactly the type's size for `ne`.
struct GgufTensorData {
  std::string name;
  std::vector<int64_t> ne;  // ggml order
  GgmlType type = GgmlType::kF32;
  std::string bytes;
};

// The complete file image (used by WriteGguf; exposed for tests).
// general.alignment, when present in `metadata`, sets the alignment.
absl::StatusOr<std::string> SerializeGguf(const std::vector<GgufKV>& metadata,
                                          const std::vector<GgufTensorData>& tensors);
// Writes the file atomically.
absl::Status WriteGguf(const std::string& path, const std::vector<GgufKV>& metadata,
                       const std::vector<GgufTensorData>& tensors);

}  // namespace squeeze
