// AVX2 + FMA row kernels of the sparse GEMV / small GEMM (compiled with
// -mavx2 -mfma; called only when the CPU has them). See sparse_gemm.h for
// the formats and the arithmetic.
//   N:M: 8 values per step; their 4-bit positions (4 bytes) are unpacked to
//     int32, offset by their group ((k / K) * M) and select x from the step's
//     window of S = 8 / K * M <= 16 inputs with two vpermps and a blend.
//   bitmask: 8 inputs (one mask byte) per step; popcount values are loaded
//     (masked, never past the row's values) and moved to their lanes by a
//     256-entry permutation table; absent lanes read lane 7, which the masked
//     load left 0 whenever a lane is absent.
// Steps alternate between two accumulators per x row; the output is the
// horizontal sum of acc0 + acc1 plus bias, the same instructions for every x
// row whatever n, so results do not depend on n or the split.
#include <immintrin.h>

#include <array>
#include <cstring>

#include "workers/kernels/cpu/sparse_gemm.h"

namespace squeeze::kernels::internal {
namespace {

inline int64_t MinI(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t MaxI(int64_t a, int64_t b) { return a > b ? a : b; }

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Integer lane mask with lanes [0, n) set, n in [0, 8].
inline __m256i FirstLanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The window index (0..15) of each of 8 values from 4 index bytes.
inline __m256i Positions(uint32_t bytes, __m256i base) {
  const __m128i b = _mm_cvtsi32_si128(static_cast<int>(bytes));
  const __m128i m4 = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(b, m4);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4);
  return _mm256_add_epi32(_mm256_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)), base);
}

template <int NT>
__attribute__((always_inline)) inline void NMStep(__m256 wv, __m256i id, const float* xs, int64_t cols, __m256i m0,
                                                  __m256i m1, __m256 (&acc)[NT]) {
  const __m256 high = _mm256_castsi256_ps(_mm256_cmpgt_epi32(id, _mm256_set1_epi32(7)));
  #pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) {
    const __m256 xa = _mm256_maskload_ps(xs + t * cols, m0);
    const __m256 xb = _mm256_maskload_ps(xs + t * cols + 8, m1);
    const __m256 sel = _mm256_blendv_ps(_mm256_permutevar8x32_ps(xa, id), _mm256_permutevar8x32_ps(xb, id), high);
    acc[t] = _mm256_fmadd_ps(wv, sel, acc[t]);
  }
}

template <int NT>
void NMRows(const SparseNMWeights& w, const float* x, const float* bias, float* y, int64_t r0, int64_t r1) {
  const int K = w.keep, M = w.group;
  const int64_t per_row = w.values_per_row(), ib = w.index_row_bytes(), cols = w.cols;
  const int64_t S = 8 / K * M;        // inputs per full step (<= 16)
  const int64_t steps = per_row / 8;
  const int64_t rem = per_row % 8;    // values in the tail step (a multiple of K)
  const int64_t s_tail = rem / K * M;
  alignas(32) int32_t base_arr[8];
  for (int k = 0; k < 8; ++k) base_arr[k] = (k / K) * M;
  const __m256i base = _mm256_load_si256(reinterpret_cast<const __m256i*>(base_arr));
  const __m256i m0 = FirstLanes(MinI(S, 8)), m1 = FirstLanes(MaxI(S - 8, 0));
  const __m256i t0 = FirstLanes(MinI(s_tail, 8)), t1 = FirstLanes(MaxI(s_tail - 8, 0)), tv = FirstLanes(rem);
  for (int64_t r = r0; r < r1; ++r) {
    const float* v = w.values + r * per_row;
    const uint8_t* idx = w.indices + r * ib;
    __m256 acc0[NT], acc1[NT];
    #pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm256_setzero_ps();
    int64_t s = 0;
    for (; s + 2 <= steps; s += 2) {
      uint64_t b;
      std::memcpy(&b, idx + s * 4, 8);
      NMStep<NT>(_mm256_loadu_ps(v + s * 8), Positions(static_cast<uint32_t>(b), base), x + s * S, cols, m0, m1,
                 acc0);
      NMStep<NT>(_mm256_loadu_ps(v + s * 8 + 8), Positions(static_cast<uint32_t>(b >> 32), base), x + (s + 1) * S,
                 cols, m0, m1, acc1);
    }
    if (s < steps) {  // s even
      uint32_t b;
      std::memcpy(&b, idx + s * 4, 4);
      NMStep<NT>(_mm256_loadu_ps(v + s * 8), Positions(b, base), x + s * S, cols, m0, m1, acc0);
      ++s;
    }
    if (rem > 0) {  // unused lanes have value 0 and read x lanes loaded as 0
      uint32_t b = 0;
      std::memcpy(&b, idx + s * 4, static_cast<size_t>((rem + 1) / 2));
      const __m256 wv = _mm256_maskload_ps(v + s * 8, tv);
      if (s % 2 == 0) {
        NMStep<NT>(wv, Positions(b, base), x + s * S, cols, t0, t1, acc0);
      } else {
        NMStep<NT>(wv, Positions(b, base), x + s * S, cols, t0, t1, acc1);
      }
    }
    const float bv = bias != nullptr ? bias[r] : 0.0f;
    #pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) y[t * w.rows + r] = Hsum(_mm256_add_ps(acc0[t], acc1[t])) + bv;
  }
}

// kExpand[b][lane]: for a set bit, the rank of the bit among b's set bits
// (the packed value that lands there); for a clear bit, 7.
constexpr std::array<std::array<uint8_t, 8>, 256> MakeExpandTable() {
  std::array<std::array<uint8_t, 8>, 256> t{};
  for (int b = 0; b < 256; ++b) {
    int j = 0;
    for (int lane = 0; lane < 8; ++lane) t[b][lane] = static_cast<uint8_t>(((b >> lane) & 1) ? j++ : 7);
  }
  return t;
}
alignas(64) constexpr std::array<std::array<uint8_t, 8>, 256> kExpand = MakeExpandTable();

// The expanded weights of one 8-input step; advances v by popcount(bits).
__attribute__((always_inline)) inline __m256 Expand(uint32_t bits, const float*& v) {
  const int pc = __builtin_popcount(bits);
  const __m256 packed = _mm256_maskload_ps(v, FirstLanes(pc));
  v += pc;
  const __m256i perm = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(kExpand[bits].data())));
  return _mm256_permutevar8x32_ps(packed, perm);
}

template <int NT>
__attribute__((always_inline)) inline void MaskStep(__m256 wv, const float* xs, int64_t cols, __m256i mx,
                                                    __m256 (&acc)[NT]) {
  #pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_fmadd_ps(wv, _mm256_maskload_ps(xs + t * cols, mx), acc[t]);
}

template <int NT>
void BitmaskRows(const SparseBitmaskWeights& w, const float* x, const float* bias, float* y, int64_t r0,
                 int64_t r1) {
  const int64_t cols = w.cols, mrb = w.mask_row_bytes();
  const int64_t steps = cols / 8, rem = cols % 8;
  const __m256i all = FirstLanes(8), tail = FirstLanes(rem);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* m = w.bitmask + r * mrb;
    const float* v = w.values + w.row_offsets[r];
    __m256 acc0[NT], acc1[NT];
    #pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm256_setzero_ps();
    int64_t s = 0;
    for (; s + 2 <= steps; s += 2) {
      const __m256 w0 = Expand(m[s], v);
      MaskStep<NT>(w0, x + s * 8, cols, all, acc0);
      const __m256 w1 = Expand(m[s + 1], v);
      MaskStep<NT>(w1, x + s * 8 + 8, cols, all, acc1);
      // Packed values 8 KiB ahead, as the AVX-512 kernel (prefetching past
      // the array is harmless): loads here depend on the previous popcounts.
      _mm_prefetch(reinterpret_cast<const char*>(v + 2048), _MM_HINT_T0);
    }
    if (s < steps) {  // s even
      MaskStep<NT>(Expand(m[s], v), x + s * 8, cols, all, acc0);
      ++s;
    }
    if (rem > 0) {  // padding bits past cols are 0 (checked at load)
      const __m256 wv = Expand(m[s], v);
      if (s % 2 == 0) {
        MaskStep<NT>(wv, x + s * 8, cols, tail, acc0);
      } else {
        MaskStep<NT>(wv, x + s * 8, cols, tail, acc1);
      }
    }
    const float bv = bias != nullptr ? bias[r] : 0.0f;
    #pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) y[t * w.rows + r] = Hsum(_mm256_add_ps(acc0[t], acc1[t])) + bv;
  }
}

}  // namespace

void SparseNMRowsAvx2(const SparseNMWeights& w, const float* x, int64_t n, const float* bias, float* y, int64_t r0,
                      int64_t r1) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) NMRows<4>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1);
  if (i + 2 <= n) { NMRows<2>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1); i += 2; }
  if (i < n) NMRows<1>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1);
}

void SparseBitmaskRowsAvx2(const SparseBitmaskWeights& w, const float* x, int64_t n, const float* bias, float* y,
                           int64_t r0, int64_t r1) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) BitmaskRows<4>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1);
  if (i + 2 <= n) { BitmaskRows<2>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1); i += 2; }
  if (i < n) BitmaskRows<1>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1);
}

}  // namespace squeeze::kernels::internal
