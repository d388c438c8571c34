// AVX-512 VNNI version of the int8 panel GEMM core (int8_panel_gemm.h),
// compiled with -mavx512vnni in this file only.
//
// Per tile of T tokens and P panels: P * T int32 and P * T fp32 accumulators,
// one 16-lane register each (lane l = weight row r0 + l). For each chunk, the
// 8 quad vectors of codes are loaded once and each feeds T vpdpbusd whose
// activation operand is the token's 4 codes of that quad broadcast (each
// broadcast shared by the P panels). The group's int accumulator starts at
// -zo * qsum, so after its chunks it holds d_g exactly (wrapping
// intermediates, as the reference); then per token: cvt, s * a (one fp32
// product), one fma into the fp32 accumulator: the reference's operations in
// its order. The epilogue costs 3-4 operations per group, token and panel
// against 8 vpdpbusd per chunk.
#include <immintrin.h>

#include <cstring>

#include "workers/kernels/cpu/int8_panel_gemm.h"

namespace squeeze::kernels::internal {
namespace {

inline int32_t Load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// P panels (P x 16 weight rows, same chunk / group structure) x T tokens:
// P * T int32 and P * T fp32 accumulators. Each activation broadcast feeds P
// vpdpbusd, each loaded code vector T: with P = 2, T = 5 the loads per
// vpdpbusd drop from 9/8 (P = 1, T = 8) to 7/10, which is what lets the
// loop run near the vpdpbusd throughput (measured on Zen 4).
template <int P, int T>
void PanelTile(const Int8Panel* const* panels, const Int8PanelActivations& x, int64_t t0, const float* bias,
               float* y, int64_t ldy) {
  const Int8Panel& p0 = *panels[0];
  const int8_t* qa[T];
  const float* av[T];
  const int32_t* qs[T];
  const int32_t* nzq[T];
  __m512 facc[P][T];
  #pragma GCC unroll 16
  for (int t = 0; t < T; ++t) {
    qa[t] = x.qa + (t0 + t) * x.qa_stride;
    av[t] = x.a + (t0 + t) * x.group_stride;
    qs[t] = x.qsum + (t0 + t) * x.group_stride;
    nzq[t] = x.nzq != nullptr ? x.nzq + (t0 + t) * x.group_stride : nullptr;
    #pragma GCC unroll 4
    for (int p = 0; p < P; ++p) facc[p][t] = _mm512_setzero_ps();
  }
  const int64_t cpg = p0.chunks_per_group, chunks = p0.chunks;
  for (int64_t g = 0; g < p0.groups; ++g) {
    const int64_t k0 = g * cpg, k1 = k0 + cpg < chunks ? k0 + cpg : chunks;
    __m512i acc[P][T];
    #pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      const Int8Panel& pp = *panels[p];
      if (pp.zo == nullptr && x.nzq != nullptr && x.nzq_for == pp.zo_const) {
        #pragma GCC unroll 16
        for (int t = 0; t < T; ++t) acc[p][t] = _mm512_set1_epi32(nzq[t][g]);
      } else if (pp.zo != nullptr) {
        const __m512i nzo = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(pp.zo + g * kPanelRows));
        #pragma GCC unroll 16
        for (int t = 0; t < T; ++t) acc[p][t] = _mm512_mullo_epi32(nzo, _mm512_set1_epi32(qs[t][g]));
      } else {
        const uint32_t nz = 0u - static_cast<uint32_t>(pp.zo_const);
        #pragma GCC unroll 16
        for (int t = 0; t < T; ++t) {
          acc[p][t] = _mm512_set1_epi32(static_cast<int32_t>(nz * static_cast<uint32_t>(qs[t][g])));
        }
      }
    }
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t c = k * kPanelChunkCols;
      #pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        __m512i w[P];
        #pragma GCC unroll 4
        for (int p = 0; p < P; ++p) w[p] = _mm512_loadu_si512(panels[p]->codes + k * kPanelChunkBytes + j * 64);
        #pragma GCC unroll 16
        for (int t = 0; t < T; ++t) {
          const __m512i b = _mm512_set1_epi32(Load4(qa[t] + c + 4 * j));
          #pragma GCC unroll 4
          for (int p = 0; p < P; ++p) acc[p][t] = _mm512_dpbusd_epi32(acc[p][t], w[p], b);
        }
      }
    }
    #pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      const __m512 s = _mm512_loadu_ps(panels[p]->scales + g * kPanelRows);
      #pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m512 sa = _mm512_mul_ps(s, _mm512_set1_ps(av[t][g]));
        facc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[p][t]), sa, facc[p][t]);
      }
    }
  }
  #pragma GCC unroll 4
  for (int p = 0; p < P; ++p) {
    const __mmask16 store = static_cast<__mmask16>((1u << panels[p]->rows) - 1u);
    const __m512 b = bias != nullptr ? _mm512_maskz_loadu_ps(store, bias + p * kPanelRows) : _mm512_setzero_ps();
    #pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const __m512 out = bias != nullptr ? _mm512_add_ps(facc[p][t], b) : facc[p][t];
      _mm512_mask_storeu_ps(y + (t0 + t) * ldy + p * kPanelRows, store, out);
    }
  }
}

template <int P, int KT>
void AllTokens(const Int8Panel* const* panels, const Int8PanelActivations& x, const float* bias, float* y,
               int64_t ldy) {
  int64_t t = 0;
  for (; t + KT <= x.n; t += KT) PanelTile<P, KT>(panels, x, t, bias, y, ldy);
  switch (x.n - t) {
    case 7: if constexpr (KT > 7) PanelTile<P, 7>(panels, x, t, bias, y, ldy); break;
    case 6: if constexpr (KT > 6) PanelTile<P, 6>(panels, x, t, bias, y, ldy); break;
    case 5: if constexpr (KT > 5) PanelTile<P, 5>(panels, x, t, bias, y, ldy); break;
    case 4: if constexpr (KT > 4) PanelTile<P, 4>(panels, x, t, bias, y, ldy); break;
    case 3: PanelTile<P, 3>(panels, x, t, bias, y, ldy); break;
    case 2: PanelTile<P, 2>(panels, x, t, bias, y, ldy); break;
    case 1: PanelTile<P, 1>(panels, x, t, bias, y, ldy); break;
    default: break;
  }
}

}  // namespace

void Int8PanelGemmAvx512Vnni(const Int8Panel& p, const Int8PanelActivations& x, const float* bias, float* y,
                             int64_t ldy) {
  const Int8Panel* panels[1] = {&p};
  AllTokens<1, 8>(panels, x, bias, y, ldy);
}

void Int8PanelGemmPairAvx512Vnni(const Int8Panel& p0, const Int8Panel& p1, const Int8PanelActivations& x,
                                 const float* bias, float* y, int64_t ldy) {
  const Int8Panel* panels[2] = {&p0, &p1};
  // 5 tokens: 10 int32 + 10 fp32 accumulators, 2 code vectors and a
  // broadcast fit the 32 registers without spills (6 spilled fp32
  // accumulators in GCC 12 and measured 3-8% slower on group 32).
  AllTokens<2, 5>(panels, x, bias, y, ldy);
}

}  // namespace squeeze::kernels::internal
