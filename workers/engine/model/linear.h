// LinearLayer: y = x W^T + b, the one interface every weight kind implements.
//
// Dense F32/F16/BF16 weights come first (dense_linear.h); the compression
// issues add packed-int (RTN/GPTQ/AWQ), sparse (2:4, unstructured) and
// factorized (low-rank) kinds behind the same interface, so the model's forward
// pass, calibration and evaluation never know which kind they run.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/core/thread_pool.h"

namespace squeeze {

class LinearLayer {
 public:
  virtual ~LinearLayer() = default;

  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;

  // y[r, :] = x[r, :] W^T + b for r in [0, n_rows).
  // x: n_rows x in_features, row-major fp32. y: n_rows x out_features,
  // row-major fp32, overwritten. x and y do not alias. Deterministic: the
  // result does not depend on pool size.
  virtual void Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const = 0;

  // The effective weight W as dense fp32 [out_features, in_features]: what
  // Forward multiplies by, dequantized / densified. Methods read it; the
  // plain reference path of every kernel is a matmul with it.
  virtual MatrixRM DenseWeight() const = 0;

  // The bias b (out_features values), or empty when the layer has none.
  virtual absl::Span<const float> bias() const = 0;

  // Short name of the storage kind: "dense_f32", "dense_bf16", "int4_g128", ...
  virtual std::string kind() const = 0;

  // Bytes the weights (and scales, indices, bias) occupy in memory.
  virtual int64_t StorageBytes() const = 0;

  // The tensors this layer is saved as, named relative to its module
  // ("weight", "bias"; packed kinds add e.g. "weight_packed", "weight_scale").
  // Views alias the layer's memory and stay valid while the layer lives.
  virtual std::vector<std::pair<std::string, TensorView>> StoredTensors() const = 0;

  // Number of weights that are not structurally zero (== in*out when dense).
  virtual int64_t NonZeroWeights() const { return in_features() * out_features(); }
};

}  // namespace squeeze
