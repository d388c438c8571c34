// AVX-512 (F/BW/VL/DQ) row kernels of the packed-int GEMV/GEMM, fp32 path
// and the int8 path without VNNI (the VNNI variant is the same template,
// compiled in packed_int_gemm_avx512vnni.cc). See packed_int_gemm.h for the
// arithmetic and packed_int_gemm_simd.h for the activation layout.
#include <immintrin.h>

#include "workers/kernels/cpu/packed_int_gemm_simd.h"

namespace squeeze::kernels::internal {
namespace {

inline int64_t MinI(int64_t a, int64_t b) { return a < b ? a : b; }
inline int32_t U4(const uint8_t* row, int64_t c) { return (row[c >> 1] >> ((c & 1) * 4)) & 15; }

// ---------------------------------------------------------------- fp32 path

// Whole-row dequantized weights, fp32 FMAs: w_c = float(q - z) * s exactly as
// PackedIntDequant, so every product x_c * w_c is the reference's; only the
// summation differs (fp32, in column blocks of kF32BlockUnits units: each
// block's two FMA chains are added into the row total, which bounds the
// chain length on long rows). 4-bit: the group's 16 possible weights are a
// table (one register, built as float(u - 8 - z) * s for u = 0..15) indexed
// by the nibbles with vpermps, which reads the low 4 bits of each index
// lane. 8-bit: codes widened, minus (z + 128), converted, times s. The zero
// point and the scale are broadcast from memory (load-port operations).
constexpr int64_t kF32BlockUnits = 8;

// NT rows of x (from i0) against weight rows [r, r + RB). ZP: the weights
// have zero points (without, a 4-bit group's table is one multiply of the
// constant float(u - 8) lanes by the broadcast scale: the same values, and
// the table no longer costs as much as the group's 32 products at group 32).
template <int NT, int RB, int BITS, bool ZP>
inline void F32Tile(const PackedIntJob& j, int64_t i0, int64_t r) {
  const PackedIntWeights& w = j.w;
  const int64_t cols = w.cols, ng = w.groups_per_row, G = ng == 1 ? cols : w.group_size;
  const int64_t cu = cols / kUnit * kUnit;  // columns in full units; the rest is in the last group
  constexpr int32_t kOff = 1 << (BITS - 1);
  // FMA chains per (weight row, x row): two unless RB * NT >= 8 chains
  // already hide the FMA latency (then one, to save registers).
  constexpr int kChains = RB * NT >= 8 ? 1 : 2;
  // u - kOff for the table lanes u = 0..15 (4-bit), or -kOff (8-bit).
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i lanes = _mm512_sub_epi32(iota, _mm512_set1_epi32(kOff));
  const __m512 lanes_f = _mm512_cvtepi32_ps(lanes);  // float(u - kOff), exact
  const int32_t zero = 0;
  const int32_t* zp[RB];
  const float* sc[RB];
  const uint8_t* row[RB];
  #pragma GCC unroll 8
  for (int b = 0; b < RB; ++b) {
    row[b] = reinterpret_cast<const uint8_t*>(w.packed + (r + b) * w.words_per_row);
    zp[b] = w.zero_points != nullptr ? w.zero_points + (r + b) * ng : nullptr;
    sc[b] = w.scales + (r + b) * ng;
  }
  __m512 tot[RB][NT], acc[RB][NT][2];
  #pragma GCC unroll 8
  for (int b = 0; b < RB; ++b) {
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) tot[b][t] = acc[b][t][0] = acc[b][t][1] = _mm512_setzero_ps();
  }
  // Prefetch: the same columns (and the same groups' scales and zero points)
  // of the next block of RB weight rows, RB rows ahead. The hardware
  // prefetchers do not keep up with RB code streams plus RB scale streams
  // (4-bit g32 4096x4096 decode, 1 thread: 14-15 -> 16-18 GB/s with this,
  // as fast as with the whole matrix in L3: the kernel is compute-bound now).
  const int64_t ahead_bytes = RB * w.words_per_row * 4;
  int64_t units = 0;
  for (int64_t g = 0; g < ng; ++g) {
    const int64_t c0 = g * G, c1 = MinI(c0 + G, cu);
    __m512 table[RB], sv[RB];
    __m512i zv[RB];
    #pragma GCC unroll 8
    for (int b = 0; b < RB; ++b) {
      if ((g & 15) == 0) {  // prefetches never fault, so past the last row is harmless
        _mm_prefetch(reinterpret_cast<const char*>(sc[b] + RB * ng + g), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(sc[b] + RB * ng + g + 15), _MM_HINT_T0);
        if (zp[b] != nullptr) {
          _mm_prefetch(reinterpret_cast<const char*>(zp[b] + RB * ng + g), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(zp[b] + RB * ng + g + 15), _MM_HINT_T0);
        }
      }
      zv[b] = ZP ? _mm512_set1_epi32(zp[b][g]) : _mm512_set1_epi32(zero);
      sv[b] = _mm512_set1_ps(sc[b][g]);
      if (BITS == 4) {
        table[b] = ZP ? _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(lanes, zv[b])), sv[b])
                      : _mm512_mul_ps(lanes_f, sv[b]);
      }
    }
    for (int64_t c = c0; c < c1; c += kUnit) {
      __m512 w0[RB], w1[RB];
      #pragma GCC unroll 8
      for (int b = 0; b < RB; ++b) {
        if (BITS == 4) {
          if ((c & 127) == 0) _mm_prefetch(reinterpret_cast<const char*>(row[b] + ahead_bytes + c / 2), _MM_HINT_T0);
          const __m512i u = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row[b] + c / 2)));
          w0[b] = _mm512_permutexvar_ps(u, table[b]);                         // even columns
          w1[b] = _mm512_permutexvar_ps(_mm512_srli_epi32(u, 4), table[b]);  // odd columns
        } else {
          if ((c & 63) == 0) _mm_prefetch(reinterpret_cast<const char*>(row[b] + ahead_bytes + c), _MM_HINT_T0);
          const __m512i u0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row[b] + c)));
          const __m512i u1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row[b] + c + 16)));
          const __m512i zl = _mm512_add_epi32(zv[b], _mm512_set1_epi32(kOff));
          w0[b] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(u0, zl)), sv[b]);
          w1[b] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(u1, zl)), sv[b]);
        }
      }
      #pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        const float* xp = j.xp + (i0 + t) * cols + c;
        const __m512 x0 = _mm512_loadu_ps(xp), x1 = _mm512_loadu_ps(xp + 16);
        #pragma GCC unroll 8
        for (int b = 0; b < RB; ++b) {
          acc[b][t][0] = _mm512_fmadd_ps(w0[b], x0, acc[b][t][0]);
          acc[b][t][kChains - 1] = _mm512_fmadd_ps(w1[b], x1, acc[b][t][kChains - 1]);
        }
      }
      if (++units == kF32BlockUnits) {
        units = 0;
        #pragma GCC unroll 8
        for (int b = 0; b < RB; ++b) {
          #pragma GCC unroll 8
          for (int t = 0; t < NT; ++t) {
            tot[b][t] = _mm512_add_ps(tot[b][t], _mm512_add_ps(acc[b][t][0], acc[b][t][1]));
            acc[b][t][0] = acc[b][t][1] = _mm512_setzero_ps();
          }
        }
      }
    }
  }
  #pragma GCC unroll 8
  for (int b = 0; b < RB; ++b) {
    // Columns after the last full unit (last group): w exactly as PackedIntDequant.
    float tail[NT];
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) tail[t] = 0.0f;
    if (cu < cols) {
      const int32_t z = zp[b] != nullptr ? zp[b][ng - 1] : 0;
      const float s = sc[b][ng - 1];
      for (int64_t c = cu; c < cols; ++c) {
        const int32_t u = BITS == 4 ? U4(row[b], c) : int32_t{row[b][c]};
        const float wv = static_cast<float>(static_cast<int32_t>(static_cast<uint32_t>(u) - kOff -
                                                                 static_cast<uint32_t>(z))) * s;
        #pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) tail[t] += wv * j.xp[(i0 + t) * cols + c];
      }
    }
    const float bias = j.bias != nullptr ? j.bias[r + b] : 0.0f;
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m512 sum = _mm512_add_ps(tot[b][t], _mm512_add_ps(acc[b][t][0], acc[b][t][1]));
      j.y[(i0 + t) * w.rows + r + b] = _mm512_reduce_add_ps(sum) + tail[t] + bias;
    }
  }
}

// Group 32 with cols a multiple of 32 (the common decode case): the same
// products as F32Tile (w exactly as PackedIntDequant, per-group table for
// 4-bit), but the loop runs over groups directly, kG32Iter groups (128
// columns) per iteration with no inner unit loop and no block-flush branch:
// each iteration's two FMA chains per (weight row, x row) are added into the
// row total at its end (summation blocks of 128 columns instead of 256), the
// odd groups after the last full iteration form one last block. One prefetch
// per 64 code bytes of each of the next RB rows, scales every 16 groups.
constexpr int64_t kG32Iter = 4;

template <int NT, int RB, int BITS, bool ZP>
inline void F32TileG32(const PackedIntJob& j, int64_t i0, int64_t r) {
  const PackedIntWeights& w = j.w;
  const int64_t cols = w.cols, ng = w.groups_per_row;
  constexpr int32_t kOff = 1 << (BITS - 1);
  constexpr int64_t kGroupBytes = 32 * BITS / 8;  // code bytes per group
  constexpr int kChains = RB * NT >= 8 ? 1 : 2;
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i lanes = _mm512_sub_epi32(iota, _mm512_set1_epi32(kOff));
  const __m512 lanes_f = _mm512_cvtepi32_ps(lanes);
  const int32_t* zp[RB];
  const float* sc[RB];
  const uint8_t* row[RB];
  #pragma GCC unroll 8
  for (int b = 0; b < RB; ++b) {
    row[b] = reinterpret_cast<const uint8_t*>(w.packed + (r + b) * w.words_per_row);
    zp[b] = ZP ? w.zero_points + (r + b) * ng : nullptr;
    sc[b] = w.scales + (r + b) * ng;
  }
  const float* xr[NT];
  #pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) xr[t] = j.xp + (i0 + t) * cols;
  __m512 tot[RB][NT], acc[RB][NT][2];
  #pragma GCC unroll 8
  for (int b = 0; b < RB; ++b) {
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) tot[b][t] = acc[b][t][0] = acc[b][t][1] = _mm512_setzero_ps();
  }
  const int64_t ahead_bytes = RB * w.words_per_row * 4;
  auto group = [&](int64_t g) __attribute__((always_inline)) {
    __m512 w0[RB], w1[RB];
    #pragma GCC unroll 8
    for (int b = 0; b < RB; ++b) {
      const uint8_t* cp = row[b] + g * kGroupBytes;
      if (BITS == 4) {
        const __m512 sv = _mm512_set1_ps(sc[b][g]);
        const __m512 table =
            ZP ? _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(lanes, _mm512_set1_epi32(zp[b][g]))), sv)
               : _mm512_mul_ps(lanes_f, sv);
        const __m512i u = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(cp)));
        w0[b] = _mm512_permutexvar_ps(u, table);                         // even columns
        w1[b] = _mm512_permutexvar_ps(_mm512_srli_epi32(u, 4), table);  // odd columns
      } else {
        const __m512 sv = _mm512_set1_ps(sc[b][g]);
        const __m512i zl = _mm512_set1_epi32((ZP ? zp[b][g] : 0) + kOff);
        const __m512i u0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(cp)));
        const __m512i u1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(cp + 16)));
        w0[b] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(u0, zl)), sv);
        w1[b] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(u1, zl)), sv);
      }
    }
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m512 x0 = _mm512_loadu_ps(xr[t] + g * 32), x1 = _mm512_loadu_ps(xr[t] + g * 32 + 16);
      #pragma GCC unroll 8
      for (int b = 0; b < RB; ++b) {
        acc[b][t][0] = _mm512_fmadd_ps(w0[b], x0, acc[b][t][0]);
        acc[b][t][kChains - 1] = _mm512_fmadd_ps(w1[b], x1, acc[b][t][kChains - 1]);
      }
    }
  };
  auto flush = [&]() __attribute__((always_inline)) {
    #pragma GCC unroll 8
    for (int b = 0; b < RB; ++b) {
      #pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        tot[b][t] = _mm512_add_ps(tot[b][t], _mm512_add_ps(acc[b][t][0], acc[b][t][1]));
        acc[b][t][0] = acc[b][t][1] = _mm512_setzero_ps();
      }
    }
  };
  int64_t g = 0;
  for (; g + kG32Iter <= ng; g += kG32Iter) {
    #pragma GCC unroll 8
    for (int b = 0; b < RB; ++b) {
      // Prefetches never fault, so past the last row is harmless.
      #pragma GCC unroll 2
      for (int64_t off = 0; off < kG32Iter * kGroupBytes; off += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(row[b] + ahead_bytes + g * kGroupBytes + off), _MM_HINT_T0);
      }
    }
    if ((g & 15) == 0) {
      #pragma GCC unroll 8
      for (int b = 0; b < RB; ++b) {
        _mm_prefetch(reinterpret_cast<const char*>(sc[b] + RB * ng + g), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(sc[b] + RB * ng + g + 15), _MM_HINT_T0);
        if (ZP) {
          _mm_prefetch(reinterpret_cast<const char*>(zp[b] + RB * ng + g), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(zp[b] + RB * ng + g + 15), _MM_HINT_T0);
        }
      }
    }
    #pragma GCC unroll 4
    for (int64_t k = 0; k < kG32Iter; ++k) group(g + k);
    flush();
  }
  for (; g < ng; ++g) group(g);
  #pragma GCC unroll 8
  for (int b = 0; b < RB; ++b) {
    const float bias = j.bias != nullptr ? j.bias[r + b] : 0.0f;
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m512 sum = _mm512_add_ps(tot[b][t], _mm512_add_ps(acc[b][t][0], acc[b][t][1]));
      j.y[(i0 + t) * w.rows + r + b] = _mm512_reduce_add_ps(sum) + bias;
    }
  }
}

// x rows [i0, i0 + NT) against weight rows [r0, r1), RB rows at a time.
template <int NT, int RB, int BITS, bool ZP>
void F32RowsZ(const PackedIntJob& j, int64_t i0, int64_t r0, int64_t r1) {
  int64_t r = r0;
  if (j.w.group_size == kUnit && j.w.groups_per_row * kUnit == j.w.cols) {
    for (; r + RB <= r1; r += RB) F32TileG32<NT, RB, BITS, ZP>(j, i0, r);
    for (; r < r1; ++r) F32TileG32<NT, 1, BITS, ZP>(j, i0, r);
    return;
  }
  for (; r + RB <= r1; r += RB) F32Tile<NT, RB, BITS, ZP>(j, i0, r);
  for (; r < r1; ++r) F32Tile<NT, 1, BITS, ZP>(j, i0, r);
}

template <int NT, int RB, int BITS>
void F32Rows(const PackedIntJob& j, int64_t i0, int64_t r0, int64_t r1) {
  if (j.w.zero_points != nullptr) {
    F32RowsZ<NT, RB, BITS, true>(j, i0, r0, r1);
  } else {
    F32RowsZ<NT, RB, BITS, false>(j, i0, r0, r1);
  }
}

template <int BITS>
void F32AllRows(const PackedIntJob& j, int64_t r0, int64_t r1) {
  int64_t i = 0;
  for (; i + 4 <= j.n; i += 4) F32Rows<4, 2, BITS>(j, i, r0, r1);
  for (; i + 2 <= j.n; i += 2) F32Rows<2, 2, BITS>(j, i, r0, r1);
  for (; i < j.n; ++i) F32Rows<1, 4, BITS>(j, i, r0, r1);
}

#define SQ_Q8_VNNI 0
#include "workers/kernels/cpu/packed_int_gemm_q8_avx512.inc"
#undef SQ_Q8_VNNI

}  // namespace

void PackedIntRowsF32Avx512(const PackedIntJob& job, int64_t r0, int64_t r1) {
  if (job.w.num_bits == 4) {
    F32AllRows<4>(job, r0, r1);
  } else {
    F32AllRows<8>(job, r0, r1);
  }
}


void PackedIntRowsQ8Avx512(const PackedIntJob& job, int64_t r0, int64_t r1, bool vnni) {
  if (vnni) {
    PackedIntRowsQ8Avx512Vnni(job, r0, r1);
  } else {
    Q8Dispatch(job, r0, r1);
  }
}

}  // namespace squeeze::kernels::internal
