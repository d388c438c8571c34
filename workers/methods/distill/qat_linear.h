// QatLinear: a fake-quantized trainable linear layer (quantization-aware
// training, as in LLM-QAT, Liu et al. 2023) on a FIXED integer grid.
//
// Latent fp32 weights W [out, in] are trained; the forward multiplies by
//   Wq = (clamp(round(W / s) + z, qmin, qmax) - z) * s
// with the per-(row, group) scale s and zero point z of the grid it was built
// with (quant_grid.h arithmetic, so the codes match RTN's bit for bit).
// Backward: the straight-through estimator. dL/dx is exact (x Wq^T is
// linear in x); dL/dW = dL/dWq on entries whose unclamped code
// round(W / s) + z lies in [qmin, qmax], and 0 where the clamp is active
// (clipped STE). Keeping the grid fixed is what "grids kept" means for a
// quantized student; ToInference() packs the current codes with the same
// scales and zero points into a PackedIntLinear.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "workers/engine/train/trainable_linear.h"
#include "workers/methods/quant/packed_int_linear.h"

namespace squeeze {

// From a packed layer: latent weights start at its dequantized values, the
// grid (scales, zero points, g_idx) is copied.
absl::StatusOr<std::unique_ptr<train::TrainableLinear>> MakeQatFromPacked(const PackedIntLinear& packed);

// From dense weights: the grid is computed once with ComputeAllQuantGroupParams.
absl::StatusOr<std::unique_ptr<train::TrainableLinear>> MakeQat(const MatrixRM& w, std::vector<float> bias,
                                                                const WeightQuantArgs& args);

}  // namespace squeeze
