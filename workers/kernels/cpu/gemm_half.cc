// Reference and dispatch of the F16 / BF16 weight GEMV; see gemm_half.h.
#include "workers/kernels/cpu/gemm_half.h"

#include "workers/engine/core/half.h"
#include "workers/kernels/cpu/cpu_features.h"

namespace squeeze::kernels {

const char* HalfTypeName(HalfType t) { return t == HalfType::kF16 ? "f16" : "bf16"; }

void GemmHalfNTReference(HalfType type, const float* x, int64_t n, int64_t k, const uint16_t* w, int64_t m,
                         float* y, int64_t ldy) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * k;
    for (int64_t j = 0; j < m; ++j) {
      const uint16_t* wj = w + j * k;
      double acc = 0.0;
      for (int64_t c = 0; c < k; ++c) {
        const float wv = type == HalfType::kF16 ? F16ToFloat(wj[c]) : Bf16ToFloat(wj[c]);
        acc += double{xi[c]} * wv;
      }
      y[i * ldy + j] = static_cast<float>(acc);
    }
  }
}

void GemmHalfNTStrided(HalfType type, const float* x, int64_t n, int64_t k, const uint16_t* w, int64_t m,
                       float* y, int64_t ldy) {
  if (n <= 0 || m <= 0) return;
  switch (ActiveIsa()) {
    case KernelIsa::kAvx512:
      internal::GemmHalfNTAvx512(type, x, n, k, w, m, y, ldy);
      return;
    case KernelIsa::kAvx2:
      internal::GemmHalfNTAvx2(type, x, n, k, w, m, y, ldy);
      return;
    case KernelIsa::kReference:
      break;
  }
  GemmHalfNTReference(type, x, n, k, w, m, y, ldy);
}

void WidenHalfReference(HalfType type, const uint16_t* src, int64_t count, float* dst) {
  if (type == HalfType::kF16) {
    for (int64_t i = 0; i < count; ++i) dst[i] = F16ToFloat(src[i]);
  } else {
    for (int64_t i = 0; i < count; ++i) dst[i] = Bf16ToFloat(src[i]);
  }
}

void WidenHalf(HalfType type, const uint16_t* src, int64_t count, float* dst) {
  switch (ActiveIsa()) {
    case KernelIsa::kAvx512:
      internal::WidenHalfAvx512(type, src, count, dst);
      return;
    case KernelIsa::kAvx2:
      internal::WidenHalfAvx2(type, src, count, dst);
      return;
    case KernelIsa::kReference:
      break;
  }
  WidenHalfReference(type, src, count, dst);
}

}  // namespace squeeze::kernels
