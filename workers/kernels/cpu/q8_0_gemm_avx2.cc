// AVX2 row kernel of the Q4_0 / Q8_0 block GEMV/GEMM (compiled with -mavx2
// -mfma -mf16c); computes the chain of q8_0_gemm.h bit for bit.
// Per weight row, 8 blocks at a time: one 256-bit register of 4-byte partial
// dots per block (_mm256_madd_epi16(_mm256_maddubs_epi16(u, a), 1)), reduced
// by hadd into one register holding the 8 block dots; then the fp32 chain,
// one fma per block, for 4 weight rows interleaved.
//   Q4_0: u = the nibbles (0..15), p = u.a - 8 * block_sum(a).
//   Q8_0: u = |w|, a sign-adjusted by w (_mm256_sign_epi8), so pair sums
//         stay <= 2 * 128 * 127 < 2^15.
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

// y[i, r .. r + RB) for activation row i.
template <bool Q4, int RB>
void RowBlock(const GgmlBlockJob& j, int64_t i, int64_t r) {
  constexpr int64_t bb = Q4 ? 18 : 34;
  const int64_t nb = j.blocks_per_row, rb = j.row_bytes;
  const int8_t* qa = j.qa + i * j.cols;
  const float* da = j.da + i * nb;
  const int32_t* bsum = j.block_sums + i * nb;
  float tot[RB];
  #pragma GCC unroll 4
  for (int rr = 0; rr < RB; ++rr) tot[rr] = 0.0f;
  alignas(32) float df[RB][8];
  alignas(32) int32_t off[8];
  for (int64_t b0 = 0; b0 < nb; b0 += 8) {
    const int nblk = static_cast<int>(nb - b0 < 8 ? nb - b0 : 8);
    for (int k = 0; k < 8; ++k) off[k] = Q4 && k < nblk ? 8 * bsum[b0 + k] : 0;
    const __m256i offv = _mm256_load_si256(reinterpret_cast<const __m256i*>(off));
    #pragma GCC unroll 4
    for (int rr = 0; rr < RB; ++rr) {
      const uint8_t* blk = j.w + (r + rr) * rb + b0 * bb;
      const __m256i d = _mm256_sub_epi32(BlockDots8<Q4>(blk, qa + 32 * b0, nblk), offv);
      _mm256_store_ps(df[rr], _mm256_cvtepi32_ps(d));
    }
    // The reference's chain, block after block; RB chains side by side.
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
    for (int64_t i = i0; i < i1; ++i) RowBlock<Q4, 4>(j, i, r);
  }
  for (; r < r1; ++r) {
    for (int64_t i = i0; i < i1; ++i) RowBlock<Q4, 1>(j, i, r);
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
