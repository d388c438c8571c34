// AVX-512 (F/BW) repacker of packed int4 / int8 codes into the int8 panel
// layout (int8_panel_gemm.h, packed_int_panel.h): per 32-column chunk, the 16
// rows' codes are widened to u8 (4-bit: nibbles split and interleaved back to
// natural order) and transposed from [row][quad] to [quad][row] dwords with
// vpermt2d stages. Moves only: writes exactly the bytes of
// RepackPackedIntPanelReference (tested).
//
// The stage indices are derived from labels (row * 8 + quad of every dword
// lane), so each vpermt2d's index vector is found by looking up where the
// wanted (row, quad) sits in its two sources.
#include <immintrin.h>

#include <cstring>

#include "workers/kernels/cpu/packed_int_panel.h"

namespace squeeze::kernels::internal {
namespace {

struct Labels {
  int v[16];
};

// Index for _mm512_permutex2var_epi32(a, idx, b): output lane i = the lane of
// (a, b) labelled want.v[i] (a's lanes are 0..15, b's 16..31).
void MakeIndex(const Labels& a, const Labels& b, const Labels& want, int32_t* idx) {
  for (int i = 0; i < 16; ++i) {
    idx[i] = -1;
    for (int s = 0; s < 16 && idx[i] < 0; ++s) {
      if (a.v[s] == want.v[i]) idx[i] = s;
      if (b.v[s] == want.v[i]) idx[i] = 16 + s;
    }
  }
}

struct Indices {
  // 8-bit: level 1 (4 row quartets m, 2 quad halves h); 4-bit has none.
  alignas(64) int32_t l1[4][2][16];
  // Level 2 (row octets p, halves h, quad pairs e), per bit width (0: 4, 1: 8).
  alignas(64) int32_t l2[2][2][2][2][16];
  // Level 3 (halves h, pairs e, quad in pair q): rows 0..15 of one quad.
  alignas(64) int32_t l3[2][2][2][16];
};

// L_{m,h} labels: what level 2 reads, per bit width.
Labels LLabels(int bits, int m, int h) {
  Labels l;
  for (int d = 0; d < 16; ++d) {
    if (bits == 8) {
      l.v[d] = (4 * m + d % 4) * 8 + 4 * h + d / 4;  // dword 4q + i -> (4m + i, 4h + q)
    } else {
      l.v[d] = (4 * m + d / 4) * 8 + 4 * h + d % 4;  // unpack result: dword 4i + q
    }
  }
  return l;
}

Labels MLabels(int p, int h, int e) {
  Labels l;
  for (int d = 0; d < 16; ++d) l.v[d] = (8 * p + d % 8) * 8 + 4 * h + 2 * e + d / 8;
  return l;
}

const Indices& GetIndices() {
  static const Indices* ix = [] {
    auto* r = new Indices;
    for (int m = 0; m < 4; ++m) {
      Labels z0, z1;  // Z_{2m}, Z_{2m+1}: two rows of 8 quads each
      for (int d = 0; d < 16; ++d) {
        z0.v[d] = (4 * m + d / 8) * 8 + d % 8;
        z1.v[d] = (4 * m + 2 + d / 8) * 8 + d % 8;
      }
      for (int h = 0; h < 2; ++h) MakeIndex(z0, z1, LLabels(8, m, h), r->l1[m][h]);
    }
    for (int b = 0; b < 2; ++b) {
      for (int p = 0; p < 2; ++p) {
        for (int h = 0; h < 2; ++h) {
          for (int e = 0; e < 2; ++e) {
            MakeIndex(LLabels(b == 0 ? 4 : 8, 2 * p, h), LLabels(b == 0 ? 4 : 8, 2 * p + 1, h), MLabels(p, h, e),
                      r->l2[b][p][h][e]);
          }
        }
      }
    }
    for (int h = 0; h < 2; ++h) {
      for (int e = 0; e < 2; ++e) {
        for (int q = 0; q < 2; ++q) {
          Labels want;
          for (int d = 0; d < 16; ++d) want.v[d] = d * 8 + 4 * h + 2 * e + q;
          MakeIndex(MLabels(0, h, e), MLabels(1, h, e), want, r->l3[h][e][q]);
        }
      }
    }
    return r;
  }();
  return *ix;
}

inline __m512i Idx(const int32_t* p) { return _mm512_load_si512(p); }

}  // namespace

void RepackCodesAvx512(const uint8_t* const* rows, int num_bits, int64_t full_chunks, uint8_t* codes) {
  const Indices& ix = GetIndices();
  const int b = num_bits == 4 ? 0 : 1;
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const int64_t row_bytes_per_chunk = num_bits == 4 ? 16 : 32;
  const int64_t chunks_per_line = 64 / row_bytes_per_chunk;
  for (int64_t k = 0; k < full_chunks; ++k) {
    // 16 row streams are more than the hardware prefetchers follow: fetch
    // each row's line 512 bytes ahead (prefetches never fault past the end).
    if (k % chunks_per_line == 0) {
      for (int l = 0; l < 16; ++l) {
        _mm_prefetch(reinterpret_cast<const char*>(rows[l] + k * row_bytes_per_chunk + 512), _MM_HINT_T0);
      }
    }
    __m512i L[4][2];
    if (num_bits == 4) {
      for (int m = 0; m < 4; ++m) {
        const int64_t off = 16 * k;
        __m512i x = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[4 * m] + off)));
        x = _mm512_inserti32x4(x, _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[4 * m + 1] + off)), 1);
        x = _mm512_inserti32x4(x, _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[4 * m + 2] + off)), 2);
        x = _mm512_inserti32x4(x, _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[4 * m + 3] + off)), 3);
        const __m512i lo = _mm512_and_si512(x, m4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
        L[m][0] = _mm512_unpacklo_epi8(lo, hi);  // per lane: row 4m + i, columns 0..15
        L[m][1] = _mm512_unpackhi_epi8(lo, hi);  // columns 16..31
      }
    } else {
      __m512i Z[8];
      for (int q = 0; q < 8; ++q) {
        const int64_t off = 32 * k;
        const __m256i r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[2 * q] + off));
        const __m256i r1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[2 * q + 1] + off));
        Z[q] = _mm512_inserti64x4(_mm512_castsi256_si512(r0), r1, 1);
      }
      for (int m = 0; m < 4; ++m) {
        for (int h = 0; h < 2; ++h) {
          L[m][h] = _mm512_permutex2var_epi32(Z[2 * m], Idx(ix.l1[m][h]), Z[2 * m + 1]);
        }
      }
    }
    __m512i M[2][2][2];
    for (int p = 0; p < 2; ++p) {
      for (int h = 0; h < 2; ++h) {
        for (int e = 0; e < 2; ++e) {
          M[p][h][e] = _mm512_permutex2var_epi32(L[2 * p][h], Idx(ix.l2[b][p][h][e]), L[2 * p + 1][h]);
        }
      }
    }
    uint8_t* out = codes + k * kPanelChunkBytes;
    for (int h = 0; h < 2; ++h) {
      for (int e = 0; e < 2; ++e) {
        for (int q = 0; q < 2; ++q) {
          const __m512i o = _mm512_permutex2var_epi32(M[0][h][e], Idx(ix.l3[h][e][q]), M[1][h][e]);
          _mm512_storeu_si512(out + (4 * h + 2 * e + q) * 64, o);
        }
      }
    }
  }
}

}  // namespace squeeze::kernels::internal

namespace squeeze::kernels::internal {

void QuantizeGroupsAvx512(const PackedIntWeights& w, const float* x, int64_t n, int8_t* qa, int64_t qa_stride,
                          float* a, int32_t* qsum) {
  const int64_t cols = w.cols, ng = w.groups_per_row, G = ng == 1 ? cols : w.group_size;
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * cols;
    int8_t* qi = qa + i * qa_stride;
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * G, c1 = c0 + G < cols ? c0 + G : cols;
      // amax: vmaxps(|x|, m) keeps m when |x| is NaN, as std::max(m, |x|).
      __m512 m = _mm512_setzero_ps();
      for (int64_t c = c0; c < c1; c += 16) {
        const __mmask16 k = c1 - c >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (c1 - c)) - 1u);
        const __m512 v = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_maskz_loadu_ps(k, xi + c)), abs_mask));
        m = _mm512_max_ps(v, m);
      }
      const float amax = _mm512_reduce_max_ps(m);
      a[i * ng + g] = amax / 127.0f;
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      const __m512 iv = _mm512_set1_ps(inv);
      __m512i sum = _mm512_setzero_si512();
      for (int64_t c = c0; c < c1; c += 16) {
        const __mmask16 k = c1 - c >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (c1 - c)) - 1u);
        __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, xi + c), iv),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        // std::min(127, std::max(-127, v)): NaN -> -127 (vmaxps returns its
        // second operand on NaN), then min keeps values below 127.
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        const __m512i q = _mm512_maskz_mov_epi32(k, _mm512_cvtps_epi32(v));
        sum = _mm512_add_epi32(sum, q);
        _mm_mask_storeu_epi8(qi + c, k, _mm512_cvtepi32_epi8(q));
      }
      qsum[i * ng + g] = _mm512_reduce_add_epi32(sum);
    }
    if (qa_stride > cols) std::memset(qi + cols, 0, static_cast<size_t>(qa_stride - cols));
  }
}

}  // namespace squeeze::kernels::internal
