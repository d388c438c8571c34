// TrainableLinear: a linear layer y = x W^T + b that can also run backward.
//
// Kinds (one file each):
//   DenseTrainable     W and b trained; with a mask it is the masked sparse
//                      kind (pruned weights get no gradient, stay exactly 0)
//   LowRankTrainable   W = U V, U [out, r] and V [r, in] trained
//   LoraTrainable      y = base(x) + (alpha / r) x A^T B^T: the base is any
//                      frozen LinearLayer (dense, packed int, ...), only A
//                      [r, in] and B [out, r] are trained (B starts at 0)
//   (fake-quantized QAT weights live in workers/methods/distill/qat_linear.h:
//    they need the quantization grid of workers/methods/quant.)
//
// Contract of Backward: given the layer input x [n, in] (the same rows given
// to Forward) and dy = dLoss/dy [n, out], it ADDS dLoss/dparam into every
// trainable Param's grad and, when dx is not null, OVERWRITES dx [n, in] with
// dLoss/dx. All buffers are row-major fp32. Results do not depend on the pool
// size (work is split in chunks derived from the shapes only).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/linear.h"
#include "workers/engine/train/param.h"

namespace squeeze::train {

class TrainableLinear {
 public:
  virtual ~TrainableLinear() = default;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  virtual void Forward(const float* x, int64_t n, float* y, ThreadPool& pool) const = 0;
  virtual void Backward(const float* x, const float* dy, int64_t n, float* dx, ThreadPool& pool) = 0;
  // Trainable parameters with names relative to the module ("weight", "lora_a").
  virtual std::vector<std::pair<std::string, Param*>> Params() = 0;
  // The inference layer holding the current weights (for SaveModel / eval).
  virtual std::unique_ptr<LinearLayer> ToInference() const = 0;
  virtual std::string kind() const = 0;
};

// --- GEMM helpers shared by the kinds (fixed column chunks => deterministic) ---

// y [n, m] = x [n, k] * w^T (w [m, k]).
void MatMulNT(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, ThreadPool& pool);
// dx [n, k] = dy [n, m] * w (w [m, k]); overwrites dx.
void MatMulNN(const float* dy, int64_t n, int64_t m, const float* w, int64_t k, float* dx, ThreadPool& pool);
// dw [m, k] += dy^T [m, n] * x [n, k].
void AccumulateTN(const float* dy, int64_t n, int64_t m, const float* x, int64_t k, float* dw, ThreadPool& pool);
// db [m] += column sums of dy [n, m] (rows summed in order).
void AccumulateColumnSums(const float* dy, int64_t n, int64_t m, float* db);

// --- constructors ---

// Dense fp32 weight [out, in] (+ bias). With `keep_zeros_as_mask`, entries that
// are exactly 0 become a mask (the masked sparse kind).
std::unique_ptr<TrainableLinear> MakeDenseTrainable(const MatrixRM& w, std::vector<float> bias,
                                                    bool keep_zeros_as_mask);
// From any inference layer's DenseWeight() / bias().
std::unique_ptr<TrainableLinear> DenseTrainableFrom(const LinearLayer& layer, bool keep_zeros_as_mask);
// U [out, r], V [r, in].
std::unique_ptr<TrainableLinear> MakeLowRankTrainable(const MatrixRM& u, const MatrixRM& v,
                                                      std::vector<float> bias);
// LoRA on a frozen `base` (kept alive by the layer). A [r, in] is drawn from
// N(0, 1/in) with `seed`, B [out, r] starts at 0 (so the layer starts equal to
// the base); scaling alpha / r. ToInference() returns a dense fp32 layer of
// base + scaled B A (the merged weight).
std::unique_ptr<TrainableLinear> MakeLoraTrainable(std::shared_ptr<const LinearLayer> base, int rank,
                                                   float alpha, uint64_t seed);

}  // namespace squeeze::train
