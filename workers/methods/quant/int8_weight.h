// Int8Weight: an int8 weight matrix with one fp32 scale per output row (the
// "vector-wise" / per-channel symmetric weight quantization of SmoothQuant's
// W8A8 and LLM.int8()), held by the activation-quantizing linear kinds.
//
// Storage (compressed-tensors' "int-quantized" names):
//   weight        I8  [out, in]   codes q in [-128, 127] (RTN gives [-127, 127])
//   weight_scale  F32 [out, 1]    s_w > 0; dequantized w = q * s_w
//   bias          F32 [out]       (when the layer has one)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"

namespace squeeze {

struct Int8Weight {
  int64_t out = 0, in = 0;
  std::vector<int8_t> q;      // [out, in]
  std::vector<float> scale;   // [out]
  std::vector<float> bias;    // [out] or empty

  // From codes (row-major [out, in], each in [-128, 127]) and per-row scales.
  // InvalidArgument on sizes, ranges, non-positive / non-finite scales, or
  // in > kInt8MaxInFeatures (int32 accumulation could overflow).
  static absl::StatusOr<Int8Weight> FromCodes(int64_t out, int64_t in, const std::vector<int32_t>& codes,
                                              std::vector<float> scales, std::vector<float> bias);
  // Per-row symmetric RTN of a dense weight: s_w = max|w_row| / 127.
  static absl::StatusOr<Int8Weight> Quantize(const MatrixRM& w, std::vector<float> bias);
  // From the tensors ToStored() wrote; errors name `module`.
  static absl::StatusOr<Int8Weight> FromStored(const std::string& module,
                                               const std::map<std::string, TensorView>& tensors);

  MatrixRM Dequantize() const;  // q * s_w, fp32
  int64_t StorageBytes() const;
  // "weight", "weight_scale", ["bias"]; views alias this object.
  void AppendStored(std::vector<std::pair<std::string, TensorView>>* out) const;
};

}  // namespace squeeze
