// AVX-512 row kernels of the sparse GEMV / small GEMM (compiled with the
// AVX-512 F/BW/VL/DQ flags; called only when the CPU has them). See
// sparse_gemm.h for the formats and the arithmetic.
//   N:M: 16 values per step; their 4-bit positions (8 bytes) are unpacked
//     to int32, offset by their group ((k / K) * M) and select x from the
//     step's window of S = 16 / K * M <= 32 inputs with vpermt2ps.
//   bitmask: 64 inputs per step (one 64-bit mask word), four 16-input
//     sub-steps whose popcount(mask16) values are vexpandps'd from memory to
//     their lanes (offsets from independent popcounts; never reading past
//     the row's values), into four accumulators, with a software prefetch
//     of the packed values.
// N:M steps alternate between two accumulators per x row (even / odd step),
// output reduce_add(acc0 + acc1) + bias; bitmask: see BitmaskRows. The same
// instructions run for every x row whatever n, so results do not depend on
// n or the split.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "workers/kernels/cpu/sparse_gemm.h"

namespace squeeze::kernels::internal {
namespace {

// Lanes [0, n) of a 16-lane mask, n in [0, 16].
inline __mmask16 Lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

inline int64_t MinI(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t MaxI(int64_t a, int64_t b) { return a > b ? a : b; }

// The window index (0..31) of each of 16 values: position (low nibble of
// byte i = value 2i, high nibble = value 2i + 1) plus the group base.
inline __m512i Positions(__m128i bytes, __m512i base) {
  const __m128i m4 = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(bytes, m4);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), m4);
  return _mm512_add_epi32(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)), base);
}

// One N:M step for NT rows of x: acc[t] += wv * x_t[window][id].
template <int NT>
__attribute__((always_inline)) inline void NMStep(__m512 wv, __m512i id, const float* xs, int64_t cols,
                                                  __mmask16 m0, __mmask16 m1, __m512 (&acc)[NT]) {
  #pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
    const __m512 xa = _mm512_maskz_loadu_ps(m0, xs + t * cols);
    const __m512 xb = _mm512_maskz_loadu_ps(m1, xs + t * cols + 16);
    acc[t] = _mm512_fmadd_ps(wv, _mm512_permutex2var_ps(xa, id, xb), acc[t]);
  }
}

template <int NT>
void NMRows(const SparseNMWeights& w, const float* x, const float* bias, float* y, int64_t r0, int64_t r1) {
  const int K = w.keep, M = w.group;
  const int64_t per_row = w.values_per_row(), ib = w.index_row_bytes(), cols = w.cols;
  const int64_t S = 16 / K * M;           // inputs per full step (<= 32)
  const int64_t steps = per_row / 16;
  const int64_t rem = per_row % 16;       // values in the tail step (a multiple of K)
  const int64_t s_tail = rem / K * M;     // inputs in the tail step
  alignas(64) int32_t base_arr[16];
  for (int k = 0; k < 16; ++k) base_arr[k] = (k / K) * M;
  const __m512i base = _mm512_load_si512(base_arr);
  const __mmask16 m0 = Lanes(MinI(S, 16)), m1 = Lanes(MaxI(S - 16, 0));
  const __mmask16 t0 = Lanes(MinI(s_tail, 16)), t1 = Lanes(MaxI(s_tail - 16, 0)), tv = Lanes(rem);
  const __mmask16 tb = Lanes((rem + 1) / 2);
  for (int64_t r = r0; r < r1; ++r) {
    const float* v = w.values + r * per_row;
    const uint8_t* idx = w.indices + r * ib;
    __m512 acc0[NT], acc1[NT];
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm512_setzero_ps();
    int64_t s = 0;
    for (; s + 2 <= steps; s += 2) {
      const __m512i id0 = Positions(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(idx + s * 8)), base);
      const __m512i id1 = Positions(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(idx + s * 8 + 8)), base);
      NMStep<NT>(_mm512_loadu_ps(v + s * 16), id0, x + s * S, cols, m0, m1, acc0);
      NMStep<NT>(_mm512_loadu_ps(v + s * 16 + 16), id1, x + (s + 1) * S, cols, m0, m1, acc1);
    }
    if (s < steps) {  // s even
      const __m512i id = Positions(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(idx + s * 8)), base);
      NMStep<NT>(_mm512_loadu_ps(v + s * 16), id, x + s * S, cols, m0, m1, acc0);
      ++s;
    }
    if (rem > 0) {  // step s = steps; unused lanes have value 0 and read x lanes loaded as 0
      const __m512i id = Positions(_mm_maskz_loadu_epi8(tb, idx + s * 8), base);
      const __m512 wv = _mm512_maskz_loadu_ps(tv, v + s * 16);
      if (s % 2 == 0) {
        NMStep<NT>(wv, id, x + s * S, cols, t0, t1, acc0);
      } else {
        NMStep<NT>(wv, id, x + s * S, cols, t0, t1, acc1);
      }
    }
    const float b = bias != nullptr ? bias[r] : 0.0f;
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) y[t * w.rows + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t])) + b;
  }
}

// One bitmask step for NT rows of x: acc[t] += wv * x_t[16 inputs].
template <int NT>
__attribute__((always_inline)) inline void MaskStep(__m512 wv, const float* xs, int64_t cols, __mmask16 mx,
                                                    __m512 (&acc)[NT]) {
  #pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mx, xs + t * cols), acc[t]);
}

// The expanded weights of one 16-input step from the packed values at v
// (popcount(bits) of them): vexpandps from memory reads exactly
// popcount(bits) floats (masked-off elements are not accessed, so the last
// step of the last row never reads past the values array).
__attribute__((always_inline)) inline __m512 ExpandAt(uint32_t bits, const float* v) {
  return _mm512_maskz_expandloadu_ps(static_cast<__mmask16>(bits), v);
}

// The same; advances v by popcount(bits).
__attribute__((always_inline)) inline __m512 Expand(uint32_t bits, const float*& v) {
  const __m512 w = ExpandAt(bits, v);
  v += __builtin_popcount(bits);
  return w;
}

// How far ahead of the current packed value the row kernel prefetches, in
// floats (8 KiB); two lines per 64-input step (the 128 bytes a step
// consumes at 50% density). 4096x4096 at 50%, one thread, four
// interleaved runs (best of 15 each) on the loaded 2-core CI machine:
// 8 KiB x 2 lines was the fastest in all four (1.1-1.9 ms), against 4 KiB
// x 1 (1.2-2.7), 8 KiB x 1 (1.1-2.2) and 16 KiB x 2 (1.3-2.8). The prefetch
// is what matters: in a one-thread micro-benchmark of this loop (4096x4096,
// density 0.5 / 0.3) it ran 0.9-1.1x of a dense GEMV without it and
// 2.6-3.5x with it (the address of every expand load depends on popcounts
// of the mask, and the hardware prefetcher did not keep the values stream
// ahead); the earlier 16-input kernel without prefetch ran 0.34-0.64x of
// dense in bench_sparse. A register-form vexpandps after a plain 16-float
// load measured no faster than the memory form, and would need a guard at
// the end of the values array.
constexpr int64_t kPrefetchFloats = 2048;

// Rows [r0, r1) for NT rows of x. Per row, steps of 64 inputs read one
// 64-bit mask word; its four 16-input sub-steps expand from offsets given
// by independent popcounts and accumulate into acc[0..3] (sub-step k of
// every step into acc[k]). Leftover sub-steps (< 4) and the final partial
// one go to acc[0], acc[1], ... in order. Output: reduce_add((acc0 + acc2)
// + (acc1 + acc3)) + bias, the same for every x row whatever NT.
template <int NT>
void BitmaskRows(const SparseBitmaskWeights& w, const float* x, const float* bias, float* y, int64_t r0,
                 int64_t r1) {
  const int64_t cols = w.cols, mrb = w.mask_row_bytes();
  const int64_t subs = cols / 16, rem = cols % 16;
  const __mmask16 all = Lanes(16), tail = Lanes(rem);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* m = w.bitmask + r * mrb;
    const float* v = w.values + w.row_offsets[r];
    __m512 acc0[NT], acc1[NT], acc2[NT], acc3[NT];
    #pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = acc2[t] = acc3[t] = _mm512_setzero_ps();
    int64_t s = 0;
    for (; s + 4 <= subs; s += 4) {
      uint64_t bits;  // 64 mask bits: sub-steps s .. s + 3
      std::memcpy(&bits, m + 2 * s, 8);
      const uint32_t b0 = bits & 0xFFFF, b1 = (bits >> 16) & 0xFFFF, b2 = (bits >> 32) & 0xFFFF, b3 = bits >> 48;
      const int p0 = __builtin_popcount(b0), p01 = p0 + __builtin_popcount(b1), p012 = p01 + __builtin_popcount(b2);
      const __m512 w0 = ExpandAt(b0, v);
      const __m512 w1 = ExpandAt(b1, v + p0);
      const __m512 w2 = ExpandAt(b2, v + p01);
      const __m512 w3 = ExpandAt(b3, v + p012);
      v += __builtin_popcountll(bits);
      _mm_prefetch(reinterpret_cast<const char*>(v + kPrefetchFloats), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(v + kPrefetchFloats + 16), _MM_HINT_T0);
      const float* xs = x + s * 16;
      MaskStep<NT>(w0, xs, cols, all, acc0);
      MaskStep<NT>(w1, xs + 16, cols, all, acc1);
      MaskStep<NT>(w2, xs + 32, cols, all, acc2);
      MaskStep<NT>(w3, xs + 48, cols, all, acc3);
    }
    // Leftover full sub-steps (at most 3) then the partial one: acc0, acc1, ...
    int j = 0;
    auto leftover = [&](const __m512 wv, const float* xs, __mmask16 mx) {
      switch (j++) {
        case 0: MaskStep<NT>(wv, xs, cols, mx, acc0); break;
        case 1: MaskStep<NT>(wv, xs, cols, mx, acc1); break;
        case 2: MaskStep<NT>(wv, xs, cols, mx, acc2); break;
        default: MaskStep<NT>(wv, xs, cols, mx, acc3); break;
      }
    };
    for (; s < subs; ++s) {
      uint16_t bits;
      std::memcpy(&bits, m + 2 * s, 2);
      leftover(Expand(bits, v), x + s * 16, all);
    }
    if (rem > 0) {  // padding bits past cols are 0 (checked at load)
      uint32_t bits = m[2 * s];
      if (rem > 8) bits |= uint32_t{m[2 * s + 1]} << 8;
      leftover(Expand(bits, v), x + s * 16, tail);
    }
    const float b = bias != nullptr ? bias[r] : 0.0f;
    #pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      y[t * w.rows + r] =
          _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0[t], acc2[t]), _mm512_add_ps(acc1[t], acc3[t]))) + b;
    }
  }
}

// Densified batch tile: rows [0, RW) of a dense scratch `wd` (row stride
// cols, the rows as SparseBitmaskDensifyRowsAvx512 writes them: exact zeros
// where the mask is 0) against NT rows of x. The same FMAs, operands and
// order as BitmaskRows: sub-step s (16 inputs; s = subs is the partial tail,
// weights and x loaded as 0 past cols) goes into accumulator s % 4, in
// increasing s. Each accumulator's chain is the same whatever the other
// three do, so they are run one at a time (a "quarter" pass over s = q,
// q + 4, ...), 4 x RW x NT products sharing RW weight loads and NT x loads;
// and the k range is cut into blocks of kDenseBlockSubs sub-steps (16 KiB of
// weights and x at RW = NT = 4, reused from L1 by the four quarter passes),
// each chain carried from block to block in acc[q][r][t].
constexpr int64_t kDenseBlockSubs = 32;

template <int RW, int NT>
void DenseQuarterTile(const float* wd, const float* x, int64_t cols, __m512 (*acc_io)[4][4]) {
  const int64_t subs = cols / 16, rem = cols % 16;
  const int64_t total = subs + (rem > 0 ? 1 : 0);
  const __mmask16 tail = Lanes(rem);
  for (int q = 0; q < 4; ++q) {
    #pragma GCC unroll 4
    for (int r = 0; r < RW; ++r) {
      #pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) acc_io[q][r][t] = _mm512_setzero_ps();
    }
  }
  for (int64_t b0 = 0; b0 < total; b0 += kDenseBlockSubs) {
    const int64_t b1 = MinI(total, b0 + kDenseBlockSubs);
    for (int q = 0; q < 4; ++q) {
      __m512 acc[RW][NT];
      #pragma GCC unroll 4
      for (int r = 0; r < RW; ++r) {
        #pragma GCC unroll 4
        for (int t = 0; t < NT; ++t) acc[r][t] = acc_io[q][r][t];
      }
      for (int64_t s = b0 + q; s < b1; s += 4) {
        const __mmask16 m = s < subs ? Lanes(16) : tail;
        __m512 wv[RW];
        #pragma GCC unroll 4
        for (int r = 0; r < RW; ++r) wv[r] = _mm512_maskz_loadu_ps(m, wd + r * cols + s * 16);
        #pragma GCC unroll 4
        for (int t = 0; t < NT; ++t) {
          const __m512 xv = _mm512_maskz_loadu_ps(m, x + t * cols + s * 16);
          #pragma GCC unroll 4
          for (int r = 0; r < RW; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
      }
      #pragma GCC unroll 4
      for (int r = 0; r < RW; ++r) {
        #pragma GCC unroll 4
        for (int t = 0; t < NT; ++t) acc_io[q][r][t] = acc[r][t];
      }
    }
  }
}

// Output rows [r, r + RW) for n rows of x through the dense scratch
// (densified once, reused by every x row); the final sum as BitmaskRows:
// reduce_add((acc0 + acc2) + (acc1 + acc3)) + b.
template <int RW>
void DenseRowGroup(const float* wd, const float* x, int64_t n, int64_t cols, const float* bias, float* y,
                   int64_t rows, int64_t r) {
  __m512 acc[4][4][4];
  for (int64_t t0 = 0; t0 < n; t0 += 4) {
    const int64_t nt = MinI(4, n - t0);
    const float* xt = x + t0 * cols;
    switch (nt) {
      case 4: DenseQuarterTile<RW, 4>(wd, xt, cols, acc); break;
      case 3: DenseQuarterTile<RW, 3>(wd, xt, cols, acc); break;
      case 2: DenseQuarterTile<RW, 2>(wd, xt, cols, acc); break;
      default: DenseQuarterTile<RW, 1>(wd, xt, cols, acc); break;
    }
    for (int rr = 0; rr < RW; ++rr) {
      const float b = bias != nullptr ? bias[r + rr] : 0.0f;
      for (int64_t t = 0; t < nt; ++t) {
        y[(t0 + t) * rows + r + rr] =
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0][rr][t], acc[2][rr][t]),
                                               _mm512_add_ps(acc[1][rr][t], acc[3][rr][t]))) +
            b;
      }
    }
  }
}

}  // namespace

void SparseBitmaskDensifyRowsAvx512(const SparseBitmaskWeights& w, int64_t r0, int64_t r1, float* dst) {
  const int64_t cols = w.cols, mrb = w.mask_row_bytes(), steps = cols / 16, rem = cols % 16;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* m = w.bitmask + r * mrb;
    const float* v = w.values + w.row_offsets[r];
    float* row = dst + (r - r0) * cols;
    int64_t s = 0;
    // 64 inputs per mask word, with BitmaskRows' prefetch of the packed
    // values (without it the expands wait on memory: 3x slower).
    for (; s + 4 <= steps; s += 4) {
      uint64_t bits;
      std::memcpy(&bits, m + 2 * s, 8);
      const uint32_t b0 = bits & 0xFFFF, b1 = (bits >> 16) & 0xFFFF, b2 = (bits >> 32) & 0xFFFF, b3 = bits >> 48;
      const int p0 = __builtin_popcount(b0), p01 = p0 + __builtin_popcount(b1), p012 = p01 + __builtin_popcount(b2);
      _mm512_storeu_ps(row + 16 * s, ExpandAt(b0, v));
      _mm512_storeu_ps(row + 16 * s + 16, ExpandAt(b1, v + p0));
      _mm512_storeu_ps(row + 16 * s + 32, ExpandAt(b2, v + p01));
      _mm512_storeu_ps(row + 16 * s + 48, ExpandAt(b3, v + p012));
      v += __builtin_popcountll(bits);
      _mm_prefetch(reinterpret_cast<const char*>(v + kPrefetchFloats), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(v + kPrefetchFloats + 16), _MM_HINT_T0);
    }
    for (; s < steps; ++s) {
      uint16_t bits;
      std::memcpy(&bits, m + 2 * s, 2);
      _mm512_storeu_ps(row + 16 * s, Expand(bits, v));
    }
    if (rem > 0) {
      uint32_t bits = m[2 * steps];
      if (rem > 8) bits |= uint32_t{m[2 * steps + 1]} << 8;
      _mm512_mask_storeu_ps(row + 16 * steps, Lanes(rem), Expand(bits, v));
    }
  }
}

void SparseNMRowsAvx512(const SparseNMWeights& w, const float* x, int64_t n, const float* bias, float* y,
                        int64_t r0, int64_t r1) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) NMRows<8>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1);
  if (i + 4 <= n) { NMRows<4>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1); i += 4; }
  if (i + 2 <= n) { NMRows<2>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1); i += 2; }
  if (i < n) NMRows<1>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1);
}

void SparseBitmaskRowsDensifiedAvx512(const SparseBitmaskWeights& w, const float* x, int64_t n, const float* bias,
                                      float* y, int64_t r0, int64_t r1) {
  // Rows densified per scratch fill: 16 while 16 rows fit in 256 KiB (cols
  // <= 4096), else 4 (172 KiB at 11008 columns), so the scratch and the x
  // rows stay in L2. Process CPU time, 1 and 2 threads, 4096x11008 at 50%:
  // 4-row fills 1.1-1.3x faster than 16-row ones at n = 2..16; 4096x4096:
  // 16-row fills 1.05-1.1x faster. One scratch per thread, kept between
  // calls (a fresh allocation per call would be an mmap + page faults).
  thread_local std::vector<float> scratch;
  const int64_t cols = w.cols;
  const int64_t fill = cols <= 4096 ? 16 : 4;
  if (scratch.size() < static_cast<size_t>(fill * cols)) scratch.resize(static_cast<size_t>(fill * cols));
  for (int64_t rb = r0; rb < r1; rb += fill) {
    const int64_t re = MinI(r1, rb + fill);
    SparseBitmaskDensifyRowsAvx512(w, rb, re, scratch.data());
    int64_t r = rb;
    for (; r + 4 <= re; r += 4) {
      DenseRowGroup<4>(scratch.data() + (r - rb) * cols, x, n, cols, bias, y, w.rows, r);
    }
    for (; r < re; ++r) DenseRowGroup<1>(scratch.data() + (r - rb) * cols, x, n, cols, bias, y, w.rows, r);
  }
}

void SparseBitmaskRowsAvx512(const SparseBitmaskWeights& w, const float* x, int64_t n, const float* bias,
                             float* y, int64_t r0, int64_t r1) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) BitmaskRows<4>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1);
  if (i + 2 <= n) { BitmaskRows<2>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1); i += 2; }
  if (i < n) BitmaskRows<1>(w, x + i * w.cols, bias, y + i * w.rows, r0, r1);
}

}  // namespace squeeze::kernels::internal
