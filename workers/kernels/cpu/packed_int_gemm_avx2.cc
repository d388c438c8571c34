// AVX2 + FMA row kernels of the packed-int GEMV/GEMM (compiled with -mavx2
// -mfma; called only when the CPU has them). See packed_int_gemm.h for the
// arithmetic and packed_int_gemm_simd.h for the activation layout.
//   fp32 path: codes widened to int32 (4-bit: low / high nibbles of 16 bytes
//     = even / odd columns of a 32-column unit), minus the zero point,
//     converted and scaled (w exactly as PackedIntDequant), FMA'd with x.
//   int8 path: _mm256_maddubs_epi16 (u8 codes x s8 activations; for 8-bit
//     codes |q| x sign-adjusted activations, so pair sums stay < 2^15),
//     exact int32 group dots, then the reference's fp32 fma per group.
//     Q8Rows serves blocks of 4 x rows; the rest (decode: n = 1) runs R8Rows
//     (packed_int_gemm_q8_rows8_avx2.inc: 8 group dots per register, 4
//     weight rows' chains in vector lanes, prefetch of the next 4 rows).
#include <immintrin.h>

#include "workers/kernels/cpu/packed_int_gemm_simd.h"

namespace squeeze::kernels::internal {
namespace {

inline int64_t MinI(int64_t a, int64_t b) { return a < b ? a : b; }

inline float HsumF(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int32_t HsumI(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// Unsigned code of column c of a row (bytes little-endian).
inline int32_t U4(const uint8_t* row, int64_t c) { return (row[c >> 1] >> ((c & 1) * 4)) & 15; }

// ---------------------------------------------------------------- fp32 path

// As the AVX-512 kernel: whole-row dequantized weights w = float(u - zu) * s
// (zu = z + 2^(bits-1), int32 arithmetic, exactly PackedIntDequant), fp32
// FMAs with x in two chains, added into the row total every kF32BlockUnits
// units. 4-bit: low / high nibbles of 16 bytes = even / odd columns.
constexpr int64_t kF32BlockUnits = 8;

// NT rows of x (from i0) against weight rows [r, r + RB).
template <int NT, int RB, int BITS>
inline void F32Tile(const PackedIntJob& j, int64_t i0, int64_t r) {
  const PackedIntWeights& w = j.w;
  const int64_t cols = w.cols, ng = w.groups_per_row, G = ng == 1 ? cols : w.group_size;
  const int64_t cu = cols / kUnit * kUnit;
  constexpr int32_t kOff = 1 << (BITS - 1);
  const __m128i m4 = _mm_set1_epi8(0x0f);
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
  __m256 tot[RB][NT], acc[RB][NT][2];
  #pragma GCC unroll 8
  for (int b = 0; b < RB; ++b) {
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) tot[b][t] = acc[b][t][0] = acc[b][t][1] = _mm256_setzero_ps();
  }
  // Prefetch (as the AVX-512 kernel): the same columns (and the same groups'
  // scales and zero points) of the next block of RB weight rows, RB rows
  // ahead; the hardware prefetchers do not follow RB code streams plus RB
  // strided scale streams. Prefetches never fault, so past the last row is
  // harmless.
  const int64_t ahead_bytes = RB * w.words_per_row * 4;
  int64_t units = 0;
  for (int64_t g = 0; g < ng; ++g) {
    const int64_t c0 = g * G, c1 = MinI(c0 + G, cu);
    __m256 sv[RB];
    __m256i zl[RB];
    #pragma GCC unroll 8
    for (int b = 0; b < RB; ++b) {
      if ((g & 15) == 0) {
        _mm_prefetch(reinterpret_cast<const char*>(sc[b] + RB * ng + g), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(sc[b] + RB * ng + g + 15), _MM_HINT_T0);
        if (zp[b] != nullptr) {
          _mm_prefetch(reinterpret_cast<const char*>(zp[b] + RB * ng + g), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(zp[b] + RB * ng + g + 15), _MM_HINT_T0);
        }
      }
      zl[b] = _mm256_add_epi32(_mm256_set1_epi32(zp[b] != nullptr ? zp[b][g] : zero), _mm256_set1_epi32(kOff));
      sv[b] = _mm256_set1_ps(sc[b][g]);
    }
    for (int64_t c = c0; c < c1; c += kUnit) {
      #pragma GCC unroll 8
      for (int b = 0; b < RB; ++b) {
        __m128i q8[4];  // 8 codes each (low 8 bytes), in the x layout's order
        if (BITS == 4) {
          if ((c & 127) == 0) _mm_prefetch(reinterpret_cast<const char*>(row[b] + ahead_bytes + c / 2), _MM_HINT_T0);
          const __m128i by = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row[b] + c / 2));
          const __m128i lo = _mm_and_si128(by, m4), hi = _mm_and_si128(_mm_srli_epi16(by, 4), m4);
          q8[0] = lo;
          q8[1] = _mm_srli_si128(lo, 8);
          q8[2] = hi;
          q8[3] = _mm_srli_si128(hi, 8);
        } else {
          if ((c & 63) == 0) _mm_prefetch(reinterpret_cast<const char*>(row[b] + ahead_bytes + c), _MM_HINT_T0);
          #pragma GCC unroll 4
          for (int q = 0; q < 4; ++q) q8[q] = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row[b] + c + 8 * q));
        }
        #pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
          const __m256 wq = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(q8[q]), zl[b])), sv[b]);
          #pragma GCC unroll 8
          for (int t = 0; t < NT; ++t) {
            acc[b][t][q & 1] = _mm256_fmadd_ps(wq, _mm256_loadu_ps(j.xp + (i0 + t) * cols + c + 8 * q), acc[b][t][q & 1]);
          }
        }
      }
      if (++units == kF32BlockUnits) {
        units = 0;
        #pragma GCC unroll 8
        for (int b = 0; b < RB; ++b) {
          #pragma GCC unroll 8
          for (int t = 0; t < NT; ++t) {
            tot[b][t] = _mm256_add_ps(tot[b][t], _mm256_add_ps(acc[b][t][0], acc[b][t][1]));
            acc[b][t][0] = acc[b][t][1] = _mm256_setzero_ps();
          }
        }
      }
    }
  }
  #pragma GCC unroll 8
  for (int b = 0; b < RB; ++b) {
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
      j.y[(i0 + t) * w.rows + r + b] = HsumF(_mm256_add_ps(tot[b][t], _mm256_add_ps(acc[b][t][0], acc[b][t][1]))) +
                                       tail[t] + bias;
    }
  }
}

// Group 32 with cols a multiple of 32 (as the AVX-512 F32TileG32): the same
// products as F32Tile, the loop over groups directly, kG32Iter groups (128
// columns) per iteration, each iteration's two chains added into the row
// total at its end (summation blocks of 128 columns), leftover groups one
// at a time into a last block; one prefetch per 64 code bytes per row.
constexpr int64_t kG32Iter = 4;

template <int NT, int RB, int BITS>
inline void F32TileG32(const PackedIntJob& j, int64_t i0, int64_t r) {
  const PackedIntWeights& w = j.w;
  const int64_t cols = w.cols, ng = w.groups_per_row;
  constexpr int32_t kOff = 1 << (BITS - 1);
  constexpr int64_t kGroupBytes = 32 * BITS / 8;
  const __m128i m4 = _mm_set1_epi8(0x0f);
  const int32_t* zp[RB];
  const float* sc[RB];
  const uint8_t* row[RB];
  #pragma GCC unroll 8
  for (int b = 0; b < RB; ++b) {
    row[b] = reinterpret_cast<const uint8_t*>(w.packed + (r + b) * w.words_per_row);
    zp[b] = w.zero_points != nullptr ? w.zero_points + (r + b) * ng : nullptr;
    sc[b] = w.scales + (r + b) * ng;
  }
  const float* xr[NT];
  #pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) xr[t] = j.xp + (i0 + t) * cols;
  __m256 tot[RB][NT], acc[RB][NT][2];
  #pragma GCC unroll 8
  for (int b = 0; b < RB; ++b) {
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) tot[b][t] = acc[b][t][0] = acc[b][t][1] = _mm256_setzero_ps();
  }
  const int64_t ahead_bytes = RB * w.words_per_row * 4;
  auto group = [&](int64_t g) __attribute__((always_inline)) {
    #pragma GCC unroll 8
    for (int b = 0; b < RB; ++b) {
      const uint8_t* cp = row[b] + g * kGroupBytes;
      const __m256i zl = _mm256_set1_epi32((zp[b] != nullptr ? zp[b][g] : 0) + kOff);
      const __m256 sv = _mm256_set1_ps(sc[b][g]);
      __m128i q8[4];  // 8 codes each (low 8 bytes), in the x layout's order
      if (BITS == 4) {
        const __m128i by = _mm_loadu_si128(reinterpret_cast<const __m128i*>(cp));
        const __m128i lo = _mm_and_si128(by, m4), hi = _mm_and_si128(_mm_srli_epi16(by, 4), m4);
        q8[0] = lo;
        q8[1] = _mm_srli_si128(lo, 8);
        q8[2] = hi;
        q8[3] = _mm_srli_si128(hi, 8);
      } else {
        #pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) q8[q] = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(cp + 8 * q));
      }
      #pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        const __m256 wq = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(q8[q]), zl)), sv);
        #pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          acc[b][t][q & 1] = _mm256_fmadd_ps(wq, _mm256_loadu_ps(xr[t] + g * 32 + 8 * q), acc[b][t][q & 1]);
        }
      }
    }
  };
  int64_t g = 0;
  for (; g + kG32Iter <= ng; g += kG32Iter) {
    #pragma GCC unroll 8
    for (int b = 0; b < RB; ++b) {
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
        if (zp[b] != nullptr) {
          _mm_prefetch(reinterpret_cast<const char*>(zp[b] + RB * ng + g), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(zp[b] + RB * ng + g + 15), _MM_HINT_T0);
        }
      }
    }
    #pragma GCC unroll 4
    for (int64_t k = 0; k < kG32Iter; ++k) group(g + k);
    #pragma GCC unroll 8
    for (int b = 0; b < RB; ++b) {
      #pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        tot[b][t] = _mm256_add_ps(tot[b][t], _mm256_add_ps(acc[b][t][0], acc[b][t][1]));
        acc[b][t][0] = acc[b][t][1] = _mm256_setzero_ps();
      }
    }
  }
  for (; g < ng; ++g) group(g);
  #pragma GCC unroll 8
  for (int b = 0; b < RB; ++b) {
    const float bias = j.bias != nullptr ? j.bias[r + b] : 0.0f;
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      j.y[(i0 + t) * w.rows + r + b] =
          HsumF(_mm256_add_ps(tot[b][t], _mm256_add_ps(acc[b][t][0], acc[b][t][1]))) + bias;
    }
  }
}

// x rows [i0, i0 + NT) against weight rows [r0, r1), RB rows at a time.
template <int NT, int RB, int BITS>
void F32Rows(const PackedIntJob& j, int64_t i0, int64_t r0, int64_t r1) {
  int64_t r = r0;
  if (j.w.group_size == kUnit && j.w.groups_per_row * kUnit == j.w.cols) {
    for (; r + RB <= r1; r += RB) F32TileG32<NT, RB, BITS>(j, i0, r);
    for (; r < r1; ++r) F32TileG32<NT, 1, BITS>(j, i0, r);
    return;
  }
  for (; r + RB <= r1; r += RB) F32Tile<NT, RB, BITS>(j, i0, r);
  for (; r < r1; ++r) F32Tile<NT, 1, BITS>(j, i0, r);
}

template <int BITS>
void F32AllRows(const PackedIntJob& j, int64_t r0, int64_t r1) {
  int64_t i = 0;
  for (; i + 4 <= j.n; i += 4) F32Rows<4, 1, BITS>(j, i, r0, r1);
  for (; i + 2 <= j.n; i += 2) F32Rows<2, 1, BITS>(j, i, r0, r1);
  for (; i < j.n; ++i) F32Rows<1, 2, BITS>(j, i, r0, r1);
}

// ---------------------------------------------------------------- int8 path

template <int NT, int BITS>
void Q8Rows(const PackedIntJob& j, int64_t i0, int64_t r0, int64_t r1) {
  const PackedIntWeights& w = j.w;
  const int64_t cols = w.cols, ng = w.groups_per_row, G = ng == 1 ? cols : w.group_size;
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = reinterpret_cast<const uint8_t*>(w.packed + r * w.words_per_row);
    float tot[NT];
    #pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) tot[t] = 0.0f;
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * G, c1 = MinI(c0 + G, cols), cf = c0 + ((c1 - c0) / kUnit) * kUnit;
      const int32_t z = w.zero_points != nullptr ? w.zero_points[r * ng + g] : 0;
      __m256i acc[NT];
      #pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_si256();
      int32_t d[NT];
      if (BITS == 4) {
        for (int64_t c = c0; c < cf; c += kUnit) {
          const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c / 2));
          const __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), m4);
          #pragma GCC unroll 16
          for (int t = 0; t < NT; ++t) {
            const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(j.qa + (i0 + t) * cols + c));
            acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), ones));
          }
        }
        // d = sum (u - zu) * qa, zu = z + 8.
        #pragma GCC unroll 16
        for (int t = 0; t < NT; ++t) {
          const int8_t* qa = j.qa + (i0 + t) * cols;
          int32_t s = HsumI(acc[t]);
          for (int64_t c = cf; c < c1; ++c) s += U4(row, c) * int32_t{qa[c]};
          d[t] = s - (z + 8) * j.qsum[(i0 + t) * ng + g];
        }
      } else {
        for (int64_t c = c0; c < cf; c += kUnit) {
          // q = u - 128 as s8; |q| * sign(q) * qa = q * qa, |q| <= 128, |qa| <= 127.
          const __m256i q = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c)), flip);
          const __m256i aq = _mm256_abs_epi8(q);
          #pragma GCC unroll 16
          for (int t = 0; t < NT; ++t) {
            const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(j.qa + (i0 + t) * cols + c));
            acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(a, q)), ones));
          }
        }
        // d = sum (q - z) * qa.
        #pragma GCC unroll 16
        for (int t = 0; t < NT; ++t) {
          const int8_t* qa = j.qa + (i0 + t) * cols;
          int32_t s = HsumI(acc[t]);
          for (int64_t c = cf; c < c1; ++c) s += (int32_t{row[c]} - 128) * int32_t{qa[c]};
          d[t] = s - z * j.qsum[(i0 + t) * ng + g];
        }
      }
      const float sw = w.scales[r * ng + g];
      #pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) {
        const float scale = sw * j.a[(i0 + t) * ng + g];
        tot[t] = __builtin_fmaf(static_cast<float>(d[t]), scale, tot[t]);
      }
    }
    #pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) j.y[(i0 + t) * w.rows + r] = j.bias != nullptr ? tot[t] + j.bias[r] : tot[t];
  }
}

#include "workers/kernels/cpu/packed_int_gemm_q8_rows8_avx2.inc"

template <int BITS>
void Q8AllRows(const PackedIntJob& j, int64_t r0, int64_t r1) {
  int64_t i = 0;
  // 4-bit activations in chunk order: R8Rows serves every row of x.
  if (!(BITS == 4 && j.qa_chunked_cols > 0)) {
    for (; i + 4 <= j.n; i += 4) Q8Rows<4, BITS>(j, i, r0, r1);
  }
  if (i < j.n) R8Rows<BITS>(j, i, j.n, r0, r1);
}

}  // namespace

void PackedIntRowsF32Avx2(const PackedIntJob& job, int64_t r0, int64_t r1) {
  if (job.w.num_bits == 4) {
    F32AllRows<4>(job, r0, r1);
  } else {
    F32AllRows<8>(job, r0, r1);
  }
}

void PackedIntRowsQ8Avx2(const PackedIntJob& job, int64_t r0, int64_t r1) {
  if (job.w.num_bits == 4) {
    Q8AllRows<4>(job, r0, r1);
  } else {
    Q8AllRows<8>(job, r0, r1);
  }
}

}  // namespace squeeze::kernels::internal
