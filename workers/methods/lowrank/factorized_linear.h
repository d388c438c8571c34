// FactorizedLinear: a low-rank linear layer W ~= U V, the output of the
// low-rank methods (lowrank.h: SVD, ASVD).
//
//   U  fp32 [out, r], V fp32 [r, in], optional bias [out]; 1 <= r.
//   Forward: t = x V^T ([n, r]), then y = t U^T + b: two GEMMs costing
//   n*r*(in + out) multiply-adds instead of n*in*out, so FLOPs and parameters
//   really drop when r*(in + out) < in*out. Both run through our fp32 GEMM
//   (kernels::GemmF32NT: AVX-512 / AVX2 with runtime dispatch; for n <= 32
//   it streams U and V once, as decode needs), each splitting its output
//   columns in fixed chunks, so the result does not depend on the pool size.
//   t is a small scratch buffer (n * r floats); no dense weight is built.
//   bench_sparse times it against the dense GEMM of the same shape. Reference path: x * DenseWeight()^T + b with
//   DenseWeight() = U V (fp32 product).
//
// Storage (relative tensor names): "weight_u" F32 [out, r], "weight_v" F32
// [r, in], "bias" F32 [out] when present. kind() = "lowrank_r<r>", e.g.
// "lowrank_r16"; the loader (RegisterMethodLinearLoaders, stored_linear.h)
// is registered for the prefix "lowrank_r".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/linear.h"

namespace squeeze {

class FactorizedLinear final : public LinearLayer {
 public:
  // u [out, r], v [r, in] with the same r >= 1; bias empty or out values.
  // InvalidArgument on mismatched shapes.
  static absl::StatusOr<std::unique_ptr<FactorizedLinear>> Create(MatrixRM u, MatrixRM v,
                                                                  std::vector<float> bias = {});

  // Rebuilds the layer from "weight_u", "weight_v" (F32/F16/BF16, 2-D) and an
  // optional "bias". Every shape is checked; errors name `module`.
  static absl::StatusOr<std::unique_ptr<FactorizedLinear>> FromStored(
      const std::string& module, const std::map<std::string, TensorView>& tensors);

  int64_t in_features() const override { return v_.cols(); }
  int64_t out_features() const override { return u_.rows(); }
  int64_t rank() const { return u_.cols(); }
  void Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const override;
  // U V, [out, in].
  MatrixRM DenseWeight() const override;
  absl::Span<const float> bias() const override { return bias_; }
  std::string kind() const override { return "lowrank_r" + std::to_string(rank()); }
  int64_t StorageBytes() const override;
  std::vector<std::pair<std::string, TensorView>> StoredTensors() const override;
  // The weights really stored and multiplied: r * (in + out) (eval/cost.h
  // counts a factorized layer's parameters and MACs by it).
  int64_t NonZeroWeights() const override { return rank() * (in_features() + out_features()); }

  const MatrixRM& u() const { return u_; }
  const MatrixRM& v() const { return v_; }

 private:
  FactorizedLinear(MatrixRM u, MatrixRM v, std::vector<float> bias)
      : u_(std::move(u)), v_(std::move(v)), bias_(std::move(bias)) {}

  MatrixRM u_;  // [out, r]
  MatrixRM v_;  // [r, in]
  std::vector<float> bias_;
};

// The prefix of every FactorizedLinear kind ("lowrank_r16").
inline constexpr char kLowRankKindPrefix[] = "lowrank_r";

}  // namespace squeeze
