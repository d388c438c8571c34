// Reference, activation quantization and dispatch of the W8A8 GEMM; see
// int8_gemm.h.
#include "workers/kernels/cpu/int8_gemm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "workers/kernels/cpu/cpu_features.h"

namespace squeeze::kernels {
namespace {

// Columns of y per pool item: fixed by the shape (a multiple of 16).
int64_t ChunkColumns(int64_t m, int64_t n, int64_t k) {
  const int64_t by_work = (int64_t{1} << 17) / std::max<int64_t>(1, k * std::max<int64_t>(1, m));
  const int64_t c = std::max<int64_t>({16, by_work, (n + 63) / 64});
  return (c + 15) / 16 * 16;
}

void DotRefBlock(const int8_t* a, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* d, int64_t ldd) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      int32_t s = 0;
      for (int64_t c = 0; c < k; ++c) s += int32_t{a[i * k + c]} * int32_t{w[j * k + c]};
      d[i * ldd + j] = s;
    }
  }
}

// d for all rows of a and columns [j0, j1) of y into d (row stride ldd),
// with the variant chosen once per call.
struct DotPlan {
  KernelIsa isa = KernelIsa::kReference;
  bool vnni = false;
  std::vector<uint8_t> au;  // a + 128 (VNNI)
};

DotPlan MakePlan(const int8_t* a, int64_t m, int64_t k) {
  DotPlan p;
  p.isa = ActiveIsa();
  if (UseAvx512Vnni()) {
    p.vnni = true;
    p.au.resize(static_cast<size_t>(m * k));
    for (int64_t i = 0; i < m * k; ++i) p.au[i] = static_cast<uint8_t>(int32_t{a[i]} + 128);
    return p;
  }
  if (p.isa != KernelIsa::kReference && std::find(a, a + m * k, int8_t{-128}) != a + m * k) {
    p.isa = KernelIsa::kReference;  // the maddubs trick needs a in [-127, 127]
  }
  return p;
}

void DotBlock(const DotPlan& p, const int8_t* a, int64_t m, int64_t k, const int8_t* w, int64_t j0, int64_t j1,
              int32_t* d, int64_t ldd) {
  const int8_t* wj = w + j0 * k;
  if (p.vnni) {
    internal::Int8DotAvx512Vnni(p.au.data(), m, k, wj, j1 - j0, d, ldd);
  } else if (p.isa == KernelIsa::kAvx512) {
    internal::Int8DotAvx512(a, m, k, wj, j1 - j0, d, ldd);
  } else if (p.isa == KernelIsa::kAvx2) {
    internal::Int8DotAvx2(a, m, k, wj, j1 - j0, d, ldd);
  } else {
    DotRefBlock(a, m, k, wj, j1 - j0, d, ldd);
  }
}

// y = (float(d) * as) * ws (+ bias): rounded after every operation (this
// file is compiled with -ffp-contract=off), the expression of
// W8A8Linear's reference loop (workers/methods/quant/w8a8_linear.cc).
inline float Output(int32_t d, float as, float ws, const float* bias, int64_t j) {
  const float p = static_cast<float>(d) * as * ws;
  return bias != nullptr ? p + bias[j] : p;
}

}  // namespace

void Int8DotNTReference(const int8_t* a, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* d) {
  DotRefBlock(a, m, k, w, n, d, n);
}

void Int8GemmNTReference(const int8_t* a, int64_t m, int64_t k, const float* a_scales, const int8_t* w,
                         int64_t n, const float* w_scales, const float* bias, float* y) {
  std::vector<int32_t> d(static_cast<size_t>(m * n));
  Int8DotNTReference(a, m, k, w, n, d.data());
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      y[i * n + j] = Output(d[i * n + j], a_scales[i], w_scales[j], bias, j);
    }
  }
}

void Int8DotNT(const int8_t* a, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* d, ThreadPool& pool) {
  if (m <= 0 || n <= 0) return;
  const DotPlan plan = MakePlan(a, m, k);
  const int64_t chunk = ChunkColumns(m, n, k);
  pool.ParallelFor((n + chunk - 1) / chunk, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t j0 = c * chunk, j1 = std::min(n, j0 + chunk);
      DotBlock(plan, a, m, k, w, j0, j1, d + j0, n);
    }
  });
}

void Int8GemmNT(const int8_t* a, int64_t m, int64_t k, const float* a_scales, const int8_t* w, int64_t n,
                const float* w_scales, const float* bias, float* y, ThreadPool& pool) {
  if (m <= 0 || n <= 0) return;
  const DotPlan plan = MakePlan(a, m, k);
  const int64_t chunk = ChunkColumns(m, n, k);
  pool.ParallelFor((n + chunk - 1) / chunk, 1, [&](int64_t cb, int64_t ce) {
    std::vector<int32_t> d(static_cast<size_t>(m * chunk));
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t j0 = c * chunk, j1 = std::min(n, j0 + chunk), nc = j1 - j0;
      DotBlock(plan, a, m, k, w, j0, j1, d.data(), nc);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = j0; j < j1; ++j) {
          y[i * n + j] = Output(d[i * nc + (j - j0)], a_scales[i], w_scales[j], bias, j);
        }
      }
    }
  });
}

void QuantizeRowsInt8(const float* x, int64_t m, int64_t k, int8_t* q, float* scales) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * k;
    float amax = 0.0f;
    for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(xi[c]));
    const float s = amax > 0.0f ? amax / 127.0f : 1.0f;
    scales[i] = s;
    for (int64_t c = 0; c < k; ++c) {
      const float v = std::round(xi[c] / s);  // half away from zero
      q[i * k + c] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, v)));
    }
  }
}

}  // namespace squeeze::kernels
