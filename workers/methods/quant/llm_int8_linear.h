// LLMInt8Linear: LLM.int8() (Dettmers et al. 2022, "LLM.int8(): 8-bit Matrix
// Multiplication for Transformers at Scale"): vector-wise int8 quantization
// with mixed-precision decomposition of outlier feature dimensions.
//
// Weights: int8 codes with one scale per output row (Int8Weight, the paper's
// row-wise weight constants c_w). Forward of a batch X [n, in]:
//   1. outlier columns O = { c : |X[r, c]| >= threshold for some row r of
//      this batch } (decided at run time per Forward call, as the paper and
//      bitsandbytes do: "any row", threshold 6.0 by default);
//   2. the other columns: each row quantized to int8 per token with its
//      absmax taken over the non-outlier columns only (outlier columns get
//      code 0), int8 x int8 -> int32, scaled by s_x * s_w[o];
//   3. the outlier columns in fp32: X[:, O] times the weight columns W[:, O]
//      dequantized from int8 (q_w * s_w), added to the result.
// As in bitsandbytes' inference path, the weight is stored once in int8 and
// its outlier columns are dequantized for the fp part (the paper keeps an
// fp16 copy of the weights; the gain it measures comes from not rounding the
// outlier activations, which is kept exactly). Consequence of (1): a token's
// output depends on which other tokens share its batch (as in the paper).
// This is the plain reference loop; ForwardReference computes the same in
// double and is what tests compare it with.
//
// Storage: Int8Weight's tensors (int8_weight.h) plus
//   llm_int8_threshold  F32 [1]   (> 0)
// kind(): "llm_int8".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/linear.h"
#include "workers/methods/quant/int8_weight.h"

namespace squeeze {

inline constexpr char kLlmInt8Kind[] = "llm_int8";

class LLMInt8Linear final : public LinearLayer {
 public:
  // InvalidArgument unless threshold > 0 (inf allowed: no outliers, = W8A8).
  static absl::StatusOr<std::unique_ptr<LLMInt8Linear>> Create(Int8Weight w, float threshold);
  static absl::StatusOr<std::unique_ptr<LLMInt8Linear>> FromStored(const std::string& module,
                                                                   const std::map<std::string, TensorView>& tensors);

  int64_t in_features() const override { return w_.in; }
  int64_t out_features() const override { return w_.out; }
  void Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const override;
  MatrixRM DenseWeight() const override { return w_.Dequantize(); }
  absl::Span<const float> bias() const override { return w_.bias; }
  std::string kind() const override { return kLlmInt8Kind; }
  int64_t StorageBytes() const override { return w_.StorageBytes() + static_cast<int64_t>(sizeof(float)); }
  std::vector<std::pair<std::string, TensorView>> StoredTensors() const override;

  float threshold() const { return threshold_[0]; }
  const Int8Weight& weight() const { return w_; }
  // Step 1 above: flag[c] = 1 for the outlier columns of x [n_rows, in].
  static std::vector<uint8_t> OutlierColumns(const float* x, int64_t n_rows, int64_t in, float threshold);
  // The same computation in double (dequantized non-outlier activations,
  // exact outlier activations, dequantized weights), rounded to fp32.
  MatrixRM ForwardReference(const MatrixRM& x) const;

 private:
  LLMInt8Linear(Int8Weight w, float threshold) : w_(std::move(w)) { threshold_[0] = threshold; }
  Int8Weight w_;
  float threshold_[1] = {6.0f};
};

}  // namespace squeeze
