// Round-to-nearest (RTN) weight quantization: the baseline of every PTQ paper.
//
// For each (row, group) of W [out, in] (the grid of quant_grid.h, shared with GPTQ):
//   symmetric:  s = max|w| / qmax,  z = 0
//   asymmetric: lo = min(min w, 0), hi = max(max w, 0),
//               s = (hi - lo) / (2^bits - 1),  z = clamp(round(qmin - lo / s))
//   q = clamp(round(w / s) + z, qmin, qmax)   (round half away from zero)
// An all-zero group gets s = 1 and codes 0. Error bounds (tested):
// |w - (q - z) s| <= s / 2 when symmetric, <= s when asymmetric (the rounded
// zero point can push the extreme value half a step further).
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/quant_args.h"

namespace squeeze {

// Quantizes `w` and returns the packed layer (bias copied through).
absl::StatusOr<std::unique_ptr<PackedIntLinear>> QuantizeRtn(const MatrixRM& w,
                                                             const WeightQuantArgs& args,
                                                             std::vector<float> bias = {});

// The plain fake-quant reference: the dequantized weight RTN produces,
// computed in fp32 without packing. QuantizeRtn(w)->DenseWeight() equals it
// bit for bit.
MatrixRM FakeQuantRtnReference(const MatrixRM& w, const WeightQuantArgs& args);

// Relative Frobenius error ||W - W_hat|| / ||W|| (0 when W == 0).
double RelativeError(const MatrixRM& w, const MatrixRM& w_hat);

}  // namespace squeeze
