// W8A8Linear: int8 weights (one scale per output row) times int8 activations
// quantized per token on the fly (dynamic, symmetric): the W8A8 scheme of
// SmoothQuant (Xiao et al. 2022) and llm-compressor's `scheme: W8A8`
// (weights int8 channel symmetric; input_activations int8 token dynamic).
//
// Forward, for each input row x (int8_matmul.h):
//   s_x = max|x| / 127,  q_x = round(x / s_x)
//   y[o] = (sum_c q_x[c] q_w[o, c]) * s_x * s_w[o] + b[o]   (int32 sum)
// This is the plain reference loop (the fast int8 kernel comes with the
// kernels issue); ForwardFakeQuantReference computes the same in double from
// dequantized values and is what tests compare it with.
// DenseWeight() is the dequantized weight q_w * s_w (what weight-reading
// methods see); Forward differs from x DenseWeight()^T by the activation
// rounding.
//
// Storage: Int8Weight's tensors (int8_weight.h) plus
//   input_qparams  I32 [3] = {num_bits 8, symmetric 1, dynamic per-token 1}
// which makes the layer self-describing. kind(): "w8a8_int8_channel_token".
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/linear.h"
#include "workers/methods/quant/int8_weight.h"
#include "workers/methods/quant/packed_int_linear.h"

namespace squeeze {

inline constexpr char kW8A8Kind[] = "w8a8_int8_channel_token";

class W8A8Linear final : public LinearLayer {
 public:
  explicit W8A8Linear(Int8Weight w) : w_(std::move(w)) {}
  // Per-row RTN of `w` to int8 (Int8Weight::Quantize).
  static absl::StatusOr<std::unique_ptr<W8A8Linear>> FromDense(const MatrixRM& w, std::vector<float> bias = {});
  // The same codes and scales as `packed`, which must be 8 bit symmetric
  // per channel without g_idx (what RTN / GPTQ produce for scheme W8A8).
  static absl::StatusOr<std::unique_ptr<W8A8Linear>> FromPacked(const PackedIntLinear& packed);
  static absl::StatusOr<std::unique_ptr<W8A8Linear>> FromStored(const std::string& module,
                                                                const std::map<std::string, TensorView>& tensors);

  int64_t in_features() const override { return w_.in; }
  int64_t out_features() const override { return w_.out; }
  void Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const override;
  MatrixRM DenseWeight() const override { return w_.Dequantize(); }
  absl::Span<const float> bias() const override { return w_.bias; }
  std::string kind() const override { return kW8A8Kind; }
  int64_t StorageBytes() const override { return w_.StorageBytes(); }
  std::vector<std::pair<std::string, TensorView>> StoredTensors() const override;

  const Int8Weight& weight() const { return w_; }
  // y = dequant(quant(x)) dequant(W)^T + b computed in double, then rounded
  // to fp32: the fake-quant reference of Forward.
  MatrixRM ForwardFakeQuantReference(const MatrixRM& x) const;

 private:
  Int8Weight w_;
  int32_t input_qparams_[3] = {8, 1, 1};
};

}  // namespace squeeze
