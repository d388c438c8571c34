// The int8 arithmetic shared by the activation-quantizing linear kinds
// (w8a8_linear.h: SmoothQuant / naive W8A8; llm_int8_linear.h: LLM.int8()).
//
// Per-token (per-row) dynamic symmetric activation quantization, as
// SmoothQuant's per-token setting and LLM.int8()'s vector-wise quantization:
//   s_x = max_c |x[c]| / 127          (s_x = 1 for an all-zero row)
//   q_x[c] = clamp(round(x[c] / s_x), -127, 127)   (round half away from zero)
// Weights are int8 codes with one fp32 scale per output row (s_w[o]).
// The product of a quantized row with output o is the exact int32 sum
//   acc[o] = sum_c q_x[c] * q_w[o, c]
// (|acc| <= 127 * 128 * in < 2^31 for in < 132,000; checked by the layers),
// then y[o] = acc[o] * s_x * s_w[o] (+ b[o]) in fp32.
// This is the plain reference loop; fast int8 kernels come with the kernels
// issue and are tested against it.
#pragma once

#include <cstdint>

namespace squeeze {

inline constexpr int kInt8ActQmax = 127;
// Largest in_features for which the int32 accumulation cannot overflow.
inline constexpr int64_t kInt8MaxInFeatures = (int64_t{1} << 31) / (127 * 128) - 1;

// Quantizes x[0, n) into q[0, n) and returns s_x (formulas above). Columns
// with skip[c] != 0 (skip may be null) are excluded from the max and get
// code 0 (LLM.int8()'s outlier columns).
float QuantizeRowInt8(const float* x, int64_t n, int8_t* q, const uint8_t* skip = nullptr);

// sum_c a[c] * b[c] in int32 (exact).
int32_t DotInt8(const int8_t* a, const int8_t* b, int64_t n);

}  // namespace squeeze
