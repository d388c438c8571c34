// The integer grid of weight quantization: scale / zero point of one group
// and the code of one weight. Shared by every quantizer (RTN, GPTQ) so that
// they produce the same codes for the same values bit for bit.
//
// For each (row, group) of W [out, in], in fp32 arithmetic:
//   symmetric:  s = max|w| / qmax,  z = 0
//   asymmetric: lo = min(min w, 0), hi = max(max w, 0),
//               s = (hi - lo) / (2^bits - 1),  z = clamp(round(qmin - lo / s))
//   q = clamp(round(w / s) + z, qmin, qmax)   (round half away from zero)
//   dequantized w = (q - z) * s
// An all-zero group gets s = 1 and z = 0 (so codes 0). qmin / qmax are the
// signed grid of WeightQuantArgs (quant_args.h).
//
// observer "mse" (a.observer == kMse): MSE-optimal clipping. With lo / hi as
// above, try the shrunk ranges [p lo, p hi] for p = 1 - i / 100,
// i in [0, 80) (p from 1.00 down to 0.21: the grid and max shrink of the
// GPTQ authors' reference quantizer; llm-compressor's MSE observer uses the
// same kind of grid), compute s / z from the shrunk range by the formulas
// above (symmetric: amax = p max|w|), and keep the first p of least
//   sum_i (w_i - (q_i - z) s)^2     (in double)
// over the group. p = 1 is the minmax choice, so the squared error is never
// above minmax's.
#pragma once

#include <cstdint>
#include <vector>

#include "workers/engine/core/tensor.h"
#include "workers/methods/quant/quant_args.h"

namespace squeeze {

// Scale / zero point of one (row, group).
struct QuantGroupParams {
  float scale = 1.0f;  // > 0
  int32_t zero = 0;    // in [qmin, qmax]; 0 when symmetric
};

// Parameters of the n values v[0, n) under `a` (the formulas above).
QuantGroupParams ComputeQuantGroupParams(const float* v, int64_t n, const WeightQuantArgs& a);

// The code of `v`: clamp(round(v / s) + z, qmin, qmax).
int32_t QuantCode(float v, const QuantGroupParams& p, const WeightQuantArgs& a);

// The dequantized value (q - z) * s, in fp32 (what the packed layer stores).
inline float DequantCode(int32_t q, const QuantGroupParams& p) {
  return static_cast<float>(q - p.zero) * p.scale;
}

// Parameters of every (row, group) of `w`, [out, GroupsPerRow(in)] row-major,
// groups of EffectiveGroupSize(in) consecutive inputs in input order; the
// tensor strategy computes one set from the whole matrix and repeats it.
std::vector<QuantGroupParams> ComputeAllQuantGroupParams(const MatrixRM& w, const WeightQuantArgs& a);

// Splits params into the scales / zero points PackedIntLinear::FromCodes
// takes (zeros left empty when a.symmetric).
void SplitQuantGroupParams(const std::vector<QuantGroupParams>& params, const WeightQuantArgs& a,
                           std::vector<float>* scales, std::vector<int32_t>* zeros);

}  // namespace squeeze
