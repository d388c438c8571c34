// The integer grid of workers/methods/quant/quant_grid.h, written once for
// host and device (plain C++ when not compiled by nvcc): the same formulas in
// the same fp32 / double operations, so GPU GPTQ picks the same scales, zero
// points and codes as the CPU for the same values. Translation units using it
// on the device are compiled with -fmad=false (no contraction), as the host
// code is (x86-64 baseline has no FMA).
//   symmetric:  s = max|w| / qmax, z = 0
//   asymmetric: lo = min(min w, 0), hi = max(max w, 0), s = (hi - lo) / (2^bits - 1),
//               z = clamp(round(qmin - lo / s), qmin, qmax)
//   q = clamp(round(w / s) + z, qmin, qmax)  (round half away from zero)
//   all-zero group: s = 1, z = 0; "mse" observer: shrink p = 1 - i/100,
//   i in [1, 80), keep the first p of least sum (w - (q - z) s)^2 in double.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SQ_HD __host__ __device__ __forceinline__
#else
#define SQ_HD inline
#endif

namespace squeeze::gpu {

struct GridArgs {
  int num_bits = 4;
  bool symmetric = true;
  bool mse = false;
  SQ_HD int qmin() const { return -(1 << (num_bits - 1)); }
  SQ_HD int qmax() const { return (1 << (num_bits - 1)) - 1; }
};

struct GroupParams {
  float scale = 1.0f;
  int32_t zero = 0;
};

SQ_HD float GridClamp(float v, float lo, float hi) { return v < lo ? lo : (hi < v ? hi : v); }  // std::clamp

SQ_HD GroupParams GridParamsForRange(float lo, float hi, const GridArgs& a) {
  GroupParams p;
  if (a.symmetric) {
    const float amax = (-lo < hi) ? hi : -lo;  // std::max(-lo, hi)
    p.scale = amax > 0.0f ? amax / static_cast<float>(a.qmax()) : 1.0f;
    return p;
  }
  if (hi - lo <= 0.0f) return p;
  p.scale = (hi - lo) / static_cast<float>((1 << a.num_bits) - 1);
  const float z = roundf(static_cast<float>(a.qmin()) - lo / p.scale);
  p.zero = static_cast<int32_t>(GridClamp(z, static_cast<float>(a.qmin()), static_cast<float>(a.qmax())));
  return p;
}

SQ_HD int32_t GridQuantCode(float v, const GroupParams& p, const GridArgs& a) {
  const float q = roundf(v / p.scale) + static_cast<float>(p.zero);
  return static_cast<int32_t>(GridClamp(q, static_cast<float>(a.qmin()), static_cast<float>(a.qmax())));
}

SQ_HD float GridDequant(int32_t q, const GroupParams& p) { return static_cast<float>(q - p.zero) * p.scale; }

// Parameters of the n values get(0..n-1) (each a float).
template <class Get>
SQ_HD GroupParams GridComputeParams(const Get& get, int64_t n, const GridArgs& a) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = get(i);
    lo = v < lo ? v : lo;  // std::min(lo, v)
    hi = hi < v ? v : hi;  // std::max(hi, v)
  }
  if (a.symmetric) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
      const float v = fabsf(get(i));
      amax = amax < v ? v : amax;
    }
    lo = -amax;
    hi = amax;
  }
  const GroupParams minmax = GridParamsForRange(lo, hi, a);
  if (!a.mse) return minmax;
  GroupParams best = minmax;
  double best_err = 0.0;
  for (int i = 0; i < 80; ++i) {
    const GroupParams cand =
        i == 0 ? minmax : GridParamsForRange((1.0f - static_cast<float>(i) / 100.0f) * lo,
                                             (1.0f - static_cast<float>(i) / 100.0f) * hi, a);
    double e = 0.0;
    for (int64_t t = 0; t < n; ++t) {
      const float v = get(t);
      const double d = static_cast<double>(GridDequant(GridQuantCode(v, cand, a), cand)) - static_cast<double>(v);
      e += d * d;
    }
    if (i == 0 || e < best_err) {
      best_err = e;
      best = cand;
    }
  }
  return best;
}

}  // namespace squeeze::gpu
