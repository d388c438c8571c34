// AVX2 row kernel of the Q4_0 / Q8_0 block GEMV/GEMM (compiled with -mavx2
// -mfma -mf16c); computes the chain of q8_0_gemm.h bit for bit.
// Per weight row, 8 blocks at a time: 4-byte partial dots
// (_mm256_madd_epi16(_mm256_maddubs_epi16(u, a), 1)) reduced by a
// transposing reduction (reduce8_avx2.inc) into one register holding the 8
// block dots; the 8 fp16 weight scales converted at once (vcvtph2ps) and
// multiplied by the 8 activation scales; then the fp32 chain, one fma per
// block in block order, for 4 weight rows in the 4 lanes of one __m128
// (Chain8Rows4), software-pipelined (a chunk's chain is issued after the
// next chunk's dots), with the next 4 rows' blocks prefetched.
//   Q4_0: u = the nibbles (0..15), p = u.a - 8 * block_sum(a); two blocks per
//         register (low nibbles of blocks k, k + 1 against their first 16
//         activations, high nibbles against the last 16; the two maddubs
//         results, each |.| <= 2 * 15 * 127, are added in int16 exactly).
//   Q8_0: u = |w|, a sign-adjusted by w (_mm256_sign_epi8), so pair sums
//         stay <= 2 * 128 * 127 < 2^15.
// A last partial chunk (< 8 blocks) takes the scalar chain.
#include <immintrin.h>

#include "workers/kernels/cpu/q8_0_gemm_simd.h"

namespace squeeze::kernels::internal {
namespace {

inline float Half(const uint8_t* p) {
  return _cvtsh_ss(static_cast<unsigned short>(p[0] | (p[1] << 8)));
}

// The 8 partial dots of one block (blk) against its 32 activation codes.
template <bool Q4>
inline __m256i BlockPartials(const uint8_t* blk, const int8_t* qa) {
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa));
  const __m256i ones = _mm256_set1_epi16(1);
  if (Q4) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    const __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), ones);
  }
  const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(a, wq)), ones);
}

#include "workers/kernels/cpu/reduce8_avx2.inc"

// Q4_0, blocks k and k + 1 (blk at block k, qa at its first column): lanes
// 0-3 partials of sum u * qa of block k, lanes 4-7 of block k + 1.
inline __m256i Q4Dots2(const uint8_t* blk, const int8_t* qa) {
  constexpr int64_t bb = 18;
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i v = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + bb + 2)), 1);
  const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
  // Columns 0-15 of each block are the low nibbles, 16-31 the high ones.
  const __m256i alo = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qa))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(qa + 32)), 1);
  const __m256i ahi = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qa + 16))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(qa + 48)), 1);
  const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, alo), _mm256_maddubs_epi16(hi, ahi));
  return _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
}

// Lane k: sum u * qa over block b0 + k of one row (blk at block b0, qa at
// column 32 * b0), 8 whole blocks.
template <bool Q4>
__attribute__((always_inline)) inline __m256i BlockDots8Full(const uint8_t* blk, const int8_t* qa) {
  constexpr int64_t bb = Q4 ? 18 : 34;
  if (Q4) {
    return R8Halves(Q4Dots2(blk, qa), Q4Dots2(blk + 2 * bb, qa + 64), Q4Dots2(blk + 4 * bb, qa + 128),
                    Q4Dots2(blk + 6 * bb, qa + 192));
  }
  R8Full f;
  f.Add<0>(BlockPartials<false>(blk, qa));
  f.Add<1>(BlockPartials<false>(blk + bb, qa + 32));
  f.Add<2>(BlockPartials<false>(blk + 2 * bb, qa + 64));
  f.Add<3>(BlockPartials<false>(blk + 3 * bb, qa + 96));
  f.Add<4>(BlockPartials<false>(blk + 4 * bb, qa + 128));
  f.Add<5>(BlockPartials<false>(blk + 5 * bb, qa + 160));
  f.Add<6>(BlockPartials<false>(blk + 6 * bb, qa + 192));
  f.Add<7>(BlockPartials<false>(blk + 7 * bb, qa + 224));
  return f.r;
}

// The 8 fp16 weight scales of blocks b0 .. b0 + 7 of one row (blk at block
// b0) as fp32. 16-bit loads inserted one by one (no gather: gathers are slow
// on several AVX2 parts, and microcoded after the GDS mitigation).
template <bool Q4>
inline __m256 BlockScales8(const uint8_t* blk) {
  constexpr int64_t bb = Q4 ? 18 : 34;
  const auto h = [&](int k) {
    return static_cast<int>(blk[k * bb] | (blk[k * bb + 1] << 8));
  };
  __m128i v = _mm_cvtsi32_si128(h(0));
  v = _mm_insert_epi16(v, h(1), 1);
  v = _mm_insert_epi16(v, h(2), 2);
  v = _mm_insert_epi16(v, h(3), 3);
  v = _mm_insert_epi16(v, h(4), 4);
  v = _mm_insert_epi16(v, h(5), 5);
  v = _mm_insert_epi16(v, h(6), 6);
  v = _mm_insert_epi16(v, h(7), 7);
  return _mm256_cvtph_ps(v);
}

// Lane k < nblk: sum u * qa over block b0 + k of one row (blk at block b0,
// qa at column 32 * b0); lanes >= nblk are 0. nblk in [1, 8].
template <bool Q4>
inline __m256i BlockDots8(const uint8_t* blk, const int8_t* qa, int nblk) {
  constexpr int64_t bb = Q4 ? 18 : 34;
  __m256i P[8];
  if (nblk == 8) {
    #pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) P[k] = BlockPartials<Q4>(blk + k * bb, qa + 32 * k);
  } else {
    for (int k = 0; k < 8; ++k) P[k] = k < nblk ? BlockPartials<Q4>(blk + k * bb, qa + 32 * k) : _mm256_setzero_si256();
  }
  // h = [P0(l0-3) P1(l0-3) P2(l0-3) P3(l0-3) | P0(l4-7) P1(l4-7) P2(l4-7) P3(l4-7)], g the same for P4-P7.
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(P[0], P[1]), _mm256_hadd_epi32(P[2], P[3]));
  const __m256i g = _mm256_hadd_epi32(_mm256_hadd_epi32(P[4], P[5]), _mm256_hadd_epi32(P[6], P[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(h, g, 0x20), _mm256_permute2x128_si256(h, g, 0x31));
}

// y[i, r .. r + RB) for activation row i. Prefetches the same blocks of
// the next RB rows when `prefetch`.
template <bool Q4, int RB>
void RowBlock(const GgmlBlockJob& j, int64_t i, int64_t r, bool prefetch) {
  constexpr int64_t bb = Q4 ? 18 : 34;
  const int64_t nb = j.blocks_per_row, rb = j.row_bytes;
  const int8_t* qa = j.qa + i * j.cols;
  const float* da = j.da + i * nb;
  const int32_t* bsum = j.block_sums + i * nb;
  prefetch = prefetch && r + RB < j.rows;
  float tot[RB];
  #pragma GCC unroll 4
  for (int rr = 0; rr < RB; ++rr) tot[rr] = 0.0f;
  // RB == 4: the chains of whole chunks run 4-wide (row rr in lane rr of
  // tot4), chunk b's after chunk b + 1's dots in program order.
  __m128 tot4 = _mm_setzero_ps();
  __m256 pending_dv[RB], pending_sv[RB];
  bool pending = false;
  const auto flush = [&] {
    if constexpr (RB == 4) {
      if (pending) tot4 = Chain8Rows4(pending_dv, pending_sv, tot4);
      _mm_storeu_ps(tot, tot4);
    }
    pending = false;
  };
  const int64_t whole = nb / 8 * 8;  // blocks in whole chunks of 8
  for (int64_t b0 = 0; b0 < whole; b0 += 8) {
    const __m256i off = Q4 ? _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsum + b0)), 3)
                           : _mm256_setzero_si256();
    const __m256 dav = _mm256_loadu_ps(da + b0);
    __m256 dv[RB], sv[RB];  // lane q: block b0 + q's int dot (as fp32) and d_w * d_a
    #pragma GCC unroll 4
    for (int rr = 0; rr < RB; ++rr) {
      const uint8_t* blk = j.w + (r + rr) * rb + b0 * bb;
      if (prefetch) {  // never faults
        const char* ahead = reinterpret_cast<const char*>(blk + RB * rb);
        for (int64_t o = 0; o < 8 * bb; o += 64) _mm_prefetch(ahead + o, _MM_HINT_T0);
        _mm_prefetch(ahead + 8 * bb - 1, _MM_HINT_T0);
      }
      dv[rr] = _mm256_cvtepi32_ps(_mm256_sub_epi32(BlockDots8Full<Q4>(blk, qa + 32 * b0), off));
      sv[rr] = _mm256_mul_ps(BlockScales8<Q4>(blk), dav);
    }
    if constexpr (RB == 4) {
      if (pending) tot4 = Chain8Rows4(pending_dv, pending_sv, tot4);
      #pragma GCC unroll 4
      for (int rr = 0; rr < RB; ++rr) {
        pending_dv[rr] = dv[rr];
        pending_sv[rr] = sv[rr];
      }
      pending = true;
    } else {
      alignas(32) float df[8], sc[8];
      _mm256_store_ps(df, dv[0]);
      _mm256_store_ps(sc, sv[0]);
      #pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) tot[0] = __builtin_fmaf(df[q], sc[q], tot[0]);
    }
  }
  flush();
  if (whole < nb) {  // the last, partial chunk: the scalar chain
    const int64_t b0 = whole;
    const int nblk = static_cast<int>(nb - b0);
    alignas(32) float df[RB][8];
    alignas(32) int32_t off[8];
    for (int k = 0; k < 8; ++k) off[k] = Q4 && k < nblk ? 8 * bsum[b0 + k] : 0;
    const __m256i offv = _mm256_load_si256(reinterpret_cast<const __m256i*>(off));
    #pragma GCC unroll 4
    for (int rr = 0; rr < RB; ++rr) {
      const uint8_t* blk = j.w + (r + rr) * rb + b0 * bb;
      const __m256i d = _mm256_sub_epi32(BlockDots8<Q4>(blk, qa + 32 * b0, nblk), offv);
      _mm256_store_ps(df[rr], _mm256_cvtepi32_ps(d));
    }
    for (int q = 0; q < nblk; ++q) {
      #pragma GCC unroll 4
      for (int rr = 0; rr < RB; ++rr) {
        const float s = Half(j.w + (r + rr) * rb + (b0 + q) * bb) * da[b0 + q];
        tot[rr] = __builtin_fmaf(df[rr][q], s, tot[rr]);
      }
    }
  }
  #pragma GCC unroll 4
  for (int rr = 0; rr < RB; ++rr) {
    j.y[i * j.rows + r + rr] = j.bias != nullptr ? tot[rr] + j.bias[r + rr] : tot[rr];
  }
}

template <bool Q4>
void Rows(const GgmlBlockJob& j, int64_t i0, int64_t i1, int64_t r0, int64_t r1) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    for (int64_t i = i0; i < i1; ++i) RowBlock<Q4, 4>(j, i, r, i == i0);
  }
  for (; r < r1; ++r) {
    for (int64_t i = i0; i < i1; ++i) RowBlock<Q4, 1>(j, i, r, false);
  }
}

}  // namespace

void GgmlBlockRowsAvx2(const GgmlBlockJob& job, int64_t i0, int64_t i1, int64_t r0, int64_t r1) {
  if (job.q4) {
    Rows<true>(job, i0, i1, r0, r1);
  } else {
    Rows<false>(job, i0, i1, r0, r1);
  }
}

}  // namespace squeeze::kernels::internal
