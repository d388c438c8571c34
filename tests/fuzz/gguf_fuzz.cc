// libFuzzer target: the GGUF reader (ParseGguf, in memory; links only gguf.cc,
// ggml_blocks.cc and the core). Every tensor it accepts is dequantized row by
// row (F32, F16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K blocks), so its bytes must lie
// inside the input (ASan) at addresses aligned for its blocks (UBSan); the
// typed metadata getters run on every key.
#include <cstdint>
#include <vector>

#include "workers/engine/formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace squeeze;
  // libFuzzer's buffer is a malloc'ed copy of exactly `size` bytes (16-byte
  // aligned, like a page-aligned mapping for every ggml type once the reader
  // has checked general.alignment and the offsets).
  absl::StatusOr<GgufFile> file = ParseGguf("fuzz.gguf", data, size, nullptr);
  if (!file.ok()) return 0;
  for (const GgufKV& kv : file->metadata) {
    (void)file->GetInt(kv.key);
    (void)file->GetFloat(kv.key);
    (void)file->GetString(kv.key);
    (void)file->GetBool(kv.key);
  }
  std::vector<float> row;
  for (const GgufTensorInfo& t : file->tensors) {
    if (t.data < data || t.nbytes > size || static_cast<uint64_t>(t.data - data) > size - t.nbytes) __builtin_trap();
    const int64_t cols = t.ne[0], rows = t.numel() / cols;
    const int64_t row_bytes = GgmlRowBytes(t.type, cols).value();
    if (static_cast<uint64_t>(row_bytes * rows) != t.nbytes) __builtin_trap();
    row.resize(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) DequantizeRow(t.type, t.data + r * row_bytes, cols, row.data());
  }
  return 0;
}
