// Two kernels (see packed_int_gemv.h for the contract): the tensor-core
// kernel further down (the default where it applies; its comment explains
// the permuted-k mma) and this CUDA-core kernel for every other layout:
//  * a block of kWarps warps owns kWarps * RW consecutive output rows, each
//    warp RW rows, for all NB (<= 16) rows of x at once;
//  * columns are walked in chunks; each chunk of x (NB x chunk columns, fp16,
//    zero-padded past n and cols) is staged in shared memory once per block;
//  * within a chunk, lane l reads words l, l + 32, ... of each of its rows
//    (U words per row in flight before the first use; streaming loads, W is
//    read once), dequantizes with the exponent trick
//    float(0x4B000000 | u) - (2^23 + 2^(bits-1) + z) = q - z  (exact),
//    and for every x row forms the word's dot product in fp32, scales it by
//    the word's group scale and adds it to its accumulator;
//  * at the end each (row, x row) accumulator is reduced across the warp and
//    written once, + bias, rounded to fp16.
// Padding slots of a row's last word meet zero-padded x, so they add 0.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <climits>
#include <string>

#include "workers/kernels/cuda/cuda_check.h"
#include "workers/kernels/cuda/packed_int_gemv.h"

namespace squeeze::gpu {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxBatch = 16;
constexpr int kMaxSmem = 48 * 1024;

template <int BITS>
struct XVec;
template <>
struct XVec<4> {  // 8 halves
  using T = uint4;
};
template <>
struct XVec<8> {  // 4 halves
  using T = uint2;
};

template <int BITS, int NB, int RW, int U>
__global__ void __launch_bounds__(kWarps * 32)
    PackedGemvKernel(const uint32_t* __restrict__ packed, const float* __restrict__ scales,
                     const int32_t* __restrict__ zeros, int rows, int cols, int wpr, int gpr, int words_per_group,
                     const __half* __restrict__ x, int n, bool x_vec, const float* __restrict__ bias,
                     __half* __restrict__ y, int chunk_words) {
  constexpr int PER_WORD = 32 / BITS;
  constexpr uint32_t MASK = (1u << BITS) - 1u;
  constexpr int HALF_OFF = 1 << (BITS - 1);
  using XV = typename XVec<BITS>::T;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __half* xs = reinterpret_cast<__half*>(smem_raw);  // [NB][chunk_cols]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = (blockIdx.x * kWarps + warp) * RW;
  const int chunk_cols = chunk_words * PER_WORD;

  float acc[RW][NB];
#pragma unroll
  for (int rr = 0; rr < RW; ++rr)
#pragma unroll
    for (int b = 0; b < NB; ++b) acc[rr][b] = 0.0f;

  const uint32_t* prow[RW];
  int rclamp[RW];
#pragma unroll
  for (int rr = 0; rr < RW; ++rr) {
    rclamp[rr] = min(row0 + rr, rows - 1);  // rows past the end recompute the last one, never written
    prow[rr] = packed + static_cast<size_t>(rclamp[rr]) * wpr;
  }

  for (int w0 = 0; w0 < wpr; w0 += chunk_words) {
    const int c0 = w0 * PER_WORD;
    __syncthreads();  // the previous chunk's readers are done
    if (x_vec) {      // cols % 8 == 0 and x 16-byte aligned: 8 halves per load
      const int vecs_per_row = chunk_cols / 8;
      for (int idx = threadIdx.x; idx < NB * vecs_per_row; idx += blockDim.x) {
        const int b = idx / vecs_per_row, c = c0 + (idx % vecs_per_row) * 8;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (b < n && c < cols) v = __ldg(reinterpret_cast<const uint4*>(x + static_cast<size_t>(b) * cols + c));
        reinterpret_cast<uint4*>(xs)[idx] = v;
      }
    } else {
      for (int idx = threadIdx.x; idx < NB * chunk_cols; idx += blockDim.x) {
        const int b = idx / chunk_cols, c = c0 + idx % chunk_cols;
        xs[idx] = (b < n && c < cols) ? x[static_cast<size_t>(b) * cols + c] : __float2half_rn(0.0f);
      }
    }
    __syncthreads();

    const int wend = min(chunk_words, wpr - w0);
    for (int wi = lane; wi < wend; wi += 32 * U) {
      // Every load of the step (words, scales, zero points) is issued before
      // the first use, so the step waits for memory once.
      uint32_t wv[RW][U];
      float sv[RW][U];
      int zv[RW][U];
#pragma unroll
      for (int rr = 0; rr < RW; ++rr)
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int wl = wi + 32 * u;
          wv[rr][u] = 0u;
          sv[rr][u] = 0.0f;
          zv[rr][u] = 0;
          if (wl < wend) {
            wv[rr][u] = __ldcs(reinterpret_cast<const unsigned int*>(prow[rr] + w0 + wl));
            const int gi = rclamp[rr] * gpr + (w0 + wl) / words_per_group;
            sv[rr][u] = __ldg(scales + gi);
            if (zeros != nullptr) zv[rr][u] = __ldg(zeros + gi);
          }
        }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int wl = wi + 32 * u;
        if (wl < wend) {
          float s[RW], f[RW][PER_WORD];
#pragma unroll
          for (int rr = 0; rr < RW; ++rr) {
            s[rr] = sv[rr][u];
            const float off = 8388608.0f + static_cast<float>(HALF_OFF + zv[rr][u]);
#pragma unroll
            for (int j = 0; j < PER_WORD; ++j) {
              f[rr][j] = __uint_as_float(0x4B000000u | ((wv[rr][u] >> (j * BITS)) & MASK)) - off;
            }
          }
#pragma unroll
          for (int b = 0; b < NB; ++b) {
            const XV xv = *reinterpret_cast<const XV*>(xs + b * chunk_cols + wl * PER_WORD);
            const __half2* xh = reinterpret_cast<const __half2*>(&xv);
            float xf[PER_WORD];
#pragma unroll
            for (int j = 0; j < PER_WORD / 2; ++j) {
              const float2 t = __half22float2(xh[j]);
              xf[2 * j] = t.x;
              xf[2 * j + 1] = t.y;
            }
#pragma unroll
            for (int rr = 0; rr < RW; ++rr) {
              float p = 0.0f;
#pragma unroll
              for (int j = 0; j < PER_WORD; ++j) p = fmaf(f[rr][j], xf[j], p);
              acc[rr][b] = fmaf(p, s[rr], acc[rr][b]);
            }
          }
        }
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < RW; ++rr) {
    const int r = row0 + rr;
#pragma unroll
    for (int b = 0; b < NB; ++b) {
      float v = acc[rr][b];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0 && r < rows && b < n) {
        if (bias != nullptr) v += bias[r];
        y[static_cast<size_t>(b) * rows + r] = __float2half_rn(v);
      }
    }
  }
}

struct LaunchArgs {
  const PackedIntGpuWeights* w;
  const __half* x;
  int n;
  bool x_vec;
  const float* bias;
  __half* y;
  cudaStream_t stream;
};

template <int BITS, int NB, int RW, int U>
GpuStatus Launch(const LaunchArgs& a) {
  constexpr int PER_WORD = 32 / BITS;
  const PackedIntGpuWeights& w = *a.w;
  const int wpr = static_cast<int>(w.words_per_row);
  const int step = 32 * U;
  int chunk = (kMaxSmem / (NB * PER_WORD * 2)) / step * step;
  if (chunk < step) chunk = step;
  const int full = (wpr + step - 1) / step * step;
  if (chunk > full) chunk = full;
  const size_t smem = static_cast<size_t>(NB) * chunk * PER_WORD * 2;
  auto kernel = PackedGemvKernel<BITS, NB, RW, U>;
  if (smem > kMaxSmem) {
    SQ_CUDA_RETURN_IF_ERROR(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  }
  const int rows_per_block = kWarps * RW;
  const int blocks = static_cast<int>((w.rows + rows_per_block - 1) / rows_per_block);
  const int words_per_group = w.groups_per_row == 1 ? INT_MAX : static_cast<int>(w.group_size / PER_WORD);
  kernel<<<blocks, kWarps * 32, smem, a.stream>>>(w.packed, w.scales, w.zero_points, static_cast<int>(w.rows),
                                                   static_cast<int>(w.cols), wpr, static_cast<int>(w.groups_per_row),
                                                   words_per_group, a.x, a.n, a.x_vec, a.bias, a.y, chunk);
  SQ_CUDA_RETURN_IF_LAUNCH_FAILED("PackedGemvKernel launch");
  return GpuStatus::Ok();
}

template <int BITS, int NB>
GpuStatus LaunchRw(const LaunchArgs& a, int rw) {
  constexpr int U = NB <= 4 ? 8 : 4;
  switch (rw) {
    case 1: return Launch<BITS, NB, 1, U>(a);
    case 2: return Launch<BITS, NB, 2, U>(a);
    case 4: return Launch<BITS, NB, 4, U>(a);
    default: return GpuStatus::Error("PackedIntGemvVariant: variant " + std::to_string(rw) + " must be 0, 1, 2, 4 or 8..10");
  }
}

template <int BITS>
GpuStatus LaunchBits(const LaunchArgs& a, int rw) {
  if (a.n <= 1) return LaunchRw<BITS, 1>(a, rw);
  if (a.n <= 2) return LaunchRw<BITS, 2>(a, rw);
  if (a.n <= 4) return LaunchRw<BITS, 4>(a, rw);
  if (a.n <= 8) return LaunchRw<BITS, 8>(a, rw);
  return LaunchRw<BITS, 16>(a, rw);
}


// ---------------------------------------------------------------------------
// Tensor-core path for int4 and int8 (Marlin's idea, on our unrepacked layout).
//
// mma.sync m16n8k16 (fp16 x fp16 -> fp32): M = 16 weight rows, N = 8 rows of
// x, K = 16. A dot product does not care about the order of k, so each mma
// uses a permuted k. A span is 16 words of a row (128 int4 / 64 int8
// columns); lane (g = lane / 4, t = lane % 4) loads words 4t .. 4t+3 of the
// span of rows r0 + g and r0 + g + 8 (one 16-byte load each; the 4 lanes of
// a row read 64 contiguous bytes). From word q it builds, with one LOP3 +
// HSUB2 per pair (exact: half(0x6400 | u) = 1024 + u, minus
// 1024 + 2^(bits-1) + z, giving q - z):
//   int4: R0 = (v0, v4), R1 = (v1, v5), R2 = (v2, v6), R3 = (v3, v7):
//         A fragments {R0, R1} and {R2, R3} of two mmas;
//   int8: R0 = (v0, v2), R1 = (v1, v3): the A fragment of one mma.
// The B fragment (x) must hold the same columns: lane (g, t) loads x[g][the
// word's columns] (16 / 8 bytes) and permutes the halves with PRMT into the
// same pairs. So W and x are read as stored, and nothing is repacked.
// A span lies in one group (group size a multiple of the span's columns, or
// one group per row): its mmas accumulate into a fresh fp32 tile that is then
// scaled by the rows' group scales and added to the accumulator, so weights
// are never rounded (q - z and x are exact in fp16, products exact in fp32).
// Block = 8 warps on one 16-row tile, splitting the spans of the row (warp w
// takes spans w, w + 8, ...). Loads are double-buffered: while a batch of S
// spans is computed, the next batch's words, scales and zero points are in
// flight. The 8 partial tiles are summed through shared memory.
constexpr int kMmaWarps = 8;

template <int BITS>
__device__ __forceinline__ uint32_t DequantPair(uint32_t w, uint32_t off2) {
  constexpr uint32_t kMask = BITS == 4 ? 0x000F000Fu : 0x00FF00FFu;
  uint32_t v = (w & kMask) | 0x64006400u;
  __half2 h = *reinterpret_cast<__half2*>(&v);
  const __half2 o = *reinterpret_cast<const __half2*>(&off2);
  h = __hsub2(h, o);
  return *reinterpret_cast<uint32_t*>(&h);
}

__device__ __forceinline__ void Mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t Word(const uint4& v, int q) {
  return q == 0 ? v.x : (q == 1 ? v.y : (q == 2 ? v.z : v.w));
}

template <int S>
struct SpanRegs {
  uint4 wa[S], wb[S];
  float sa[S], sb[S];
  int za[S], zb[S];
};

struct MmaArgs {
  const uint32_t* pa;  // row r0 + g, word 4t
  const uint32_t* pb;  // row r0 + g + 8, word 4t
  const float* scales;
  const int32_t* zeros;
  int ia, ib;          // ra * gpr, rb * gpr
  int spans, spans_per_group;
};

template <int S>
__device__ __forceinline__ void LoadSpans(SpanRegs<S>& r, const MmaArgs& m, int s0) {
#pragma unroll
  for (int i = 0; i < S; ++i) {
    const int s = s0 + kMmaWarps * i;
    if (s < m.spans) {
      r.wa[i] = __ldcs(reinterpret_cast<const uint4*>(m.pa + s * 16));
      r.wb[i] = __ldcs(reinterpret_cast<const uint4*>(m.pb + s * 16));
      const int grp = s / m.spans_per_group;
      r.sa[i] = __ldg(m.scales + m.ia + grp);
      r.sb[i] = __ldg(m.scales + m.ib + grp);
      if (m.zeros != nullptr) {
        r.za[i] = __ldg(m.zeros + m.ia + grp);
        r.zb[i] = __ldg(m.zeros + m.ib + grp);
      } else {
        r.za[i] = r.zb[i] = 0;
      }
    }
  }
}

// One span: the mmas of its 4 words per row pair, scaled into acc.
template <int BITS, int NT>
__device__ __forceinline__ void ComputeSpan(const uint4& wa, const uint4& wb, float sa, float sb, int za, int zb,
                                            int s, const __half* xrow0, const __half* xrow1, bool has0, bool has1,
                                            float (&acc)[NT][4]) {
  constexpr int V = 32 / BITS;  // values per word
  constexpr int SPAN_COLS = 16 * V;
  constexpr uint32_t kOff = 1024u + (1u << (BITS - 1));
  const int t = (threadIdx.x % 32) % 4;
  // B fragments: per x tile, per word q, V / 2 registers.
  uint32_t bx[NT][4][V / 2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const bool has = nt == 0 ? has0 : has1;
    const __half* xr = (nt == 0 ? xrow0 : xrow1) + s * SPAN_COLS + 4 * t * V;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      if constexpr (BITS == 4) {
        const uint4 v = has ? __ldg(reinterpret_cast<const uint4*>(xr) + q) : make_uint4(0u, 0u, 0u, 0u);
        bx[nt][q][0] = __byte_perm(v.x, v.z, 0x5410);  // (h0, h4)
        bx[nt][q][1] = __byte_perm(v.x, v.z, 0x7632);  // (h1, h5)
        bx[nt][q][2] = __byte_perm(v.y, v.w, 0x5410);  // (h2, h6)
        bx[nt][q][3] = __byte_perm(v.y, v.w, 0x7632);  // (h3, h7)
      } else {
        const uint2 v = has ? __ldg(reinterpret_cast<const uint2*>(xr) + q) : make_uint2(0u, 0u);
        bx[nt][q][0] = __byte_perm(v.x, v.y, 0x5410);  // (h0, h2)
        bx[nt][q][1] = __byte_perm(v.x, v.y, 0x7632);  // (h1, h3)
      }
    }
  }
  const __half2 oa = __float2half2_rn(static_cast<float>(kOff + za));
  const __half2 ob = __float2half2_rn(static_cast<float>(kOff + zb));
  const uint32_t offa = *reinterpret_cast<const uint32_t*>(&oa);
  const uint32_t offb = *reinterpret_cast<const uint32_t*>(&ob);
  float tmp[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int c = 0; c < 4; ++c) tmp[nt][c] = 0.0f;
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const uint32_t a = Word(wa, q), b = Word(wb, q);
    if constexpr (BITS == 4) {
      const uint32_t a0 = DequantPair<4>(a, offa), b0 = DequantPair<4>(b, offb);
      const uint32_t a1 = DequantPair<4>(a >> 4, offa), b1 = DequantPair<4>(b >> 4, offb);
      const uint32_t a2 = DequantPair<4>(a >> 8, offa), b2 = DequantPair<4>(b >> 8, offb);
      const uint32_t a3 = DequantPair<4>(a >> 12, offa), b3 = DequantPair<4>(b >> 12, offb);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        Mma16816(tmp[nt], a0, b0, a1, b1, bx[nt][q][0], bx[nt][q][1]);
        Mma16816(tmp[nt], a2, b2, a3, b3, bx[nt][q][2], bx[nt][q][3]);
      }
    } else {
      const uint32_t a0 = DequantPair<8>(a, offa), b0 = DequantPair<8>(b, offb);
      const uint32_t a1 = DequantPair<8>(a >> 8, offa), b1 = DequantPair<8>(b >> 8, offb);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) Mma16816(tmp[nt], a0, b0, a1, b1, bx[nt][q][0], bx[nt][q][1]);
    }
  }
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    acc[nt][0] = fmaf(tmp[nt][0], sa, acc[nt][0]);
    acc[nt][1] = fmaf(tmp[nt][1], sa, acc[nt][1]);
    acc[nt][2] = fmaf(tmp[nt][2], sb, acc[nt][2]);
    acc[nt][3] = fmaf(tmp[nt][3], sb, acc[nt][3]);
  }
}

template <int BITS, int NT, int S>
__device__ __forceinline__ void ComputeSpans(const SpanRegs<S>& r, const MmaArgs& m, int s0, const __half* xrow0,
                                             const __half* xrow1, bool has0, bool has1, float (&acc)[NT][4]) {
#pragma unroll
  for (int i = 0; i < S; ++i) {
    const int s = s0 + kMmaWarps * i;
    if (s >= m.spans) break;  // uniform across the warp
    ComputeSpan<BITS, NT>(r.wa[i], r.wb[i], r.sa[i], r.sb[i], r.za[i], r.zb[i], s, xrow0, xrow1, has0, has1, acc);
  }
}

// Sums the 8 warps' tiles and writes y (+ bias) as fp16.
template <int NT, int WARPS>
__device__ __forceinline__ void ReduceAndStore(float (&acc)[NT][4], float* red, int rows, int row0, int n,
                                               const float* bias, __half* y) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int c = 0; c < 4; ++c) red[(warp * 32 + lane) * NT * 4 + nt * 4 + c] = acc[nt][c];
  __syncthreads();
  if (warp != 0) return;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      float v = 0.0f;
#pragma unroll
      for (int w = 0; w < WARPS; ++w) v += red[(w * 32 + lane) * NT * 4 + nt * 4 + c];
      const int r = row0 + g + (c >= 2 ? 8 : 0);
      const int b = 8 * nt + 2 * t + (c & 1);
      if (r < rows && b < n) {
        if (bias != nullptr) v += bias[r];
        y[static_cast<size_t>(b) * rows + r] = __float2half_rn(v);
      }
    }
  }
}

__device__ __forceinline__ void CpAsync16(void* dst, const void* src) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(src));
}
__device__ __forceinline__ void CpAsync4(void* dst, const void* src) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(a), "l"(src));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Shared-memory stage of one lane: words of both rows, scales, zero points.
struct alignas(16) LaneStage {
  uint4 wa, wb;
  float sa, sb;
  int za, zb;
};

// The tensor-core kernel with a cp.async pipeline: each warp keeps
// kPipeStages spans of its rows in flight (global -> shared, no registers
// held), waits for the oldest, computes it and issues the next. Each lane
// reads back only what it copied itself, so no barrier is needed until the
// final reduction.
template <int BITS, int NT, int WARPS, int STAGES>
__global__ void __launch_bounds__(WARPS * 32)
    MmaPipeKernel(const uint32_t* __restrict__ packed, const float* __restrict__ scales,
                  const int32_t* __restrict__ zeros, int rows, int cols, int wpr, int gpr, int spans_per_group,
                  const __half* __restrict__ x, int n, const float* __restrict__ bias, __half* __restrict__ y) {
  extern __shared__ __align__(16) unsigned char pipe_smem[];
  LaneStage* stages = reinterpret_cast<LaneStage*>(pipe_smem);  // [warp][stage][lane]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int row0 = blockIdx.x * 16;
  const int ra = min(row0 + g, rows - 1), rb = min(row0 + g + 8, rows - 1);
  const uint32_t* pa = packed + static_cast<size_t>(ra) * wpr + 4 * t;
  const uint32_t* pb = packed + static_cast<size_t>(rb) * wpr + 4 * t;
  const int ia = ra * gpr, ib = rb * gpr;
  const int spans = wpr / 16;
  const int mine = warp < spans ? (spans - warp + WARPS - 1) / WARPS : 0;  // spans of this warp
  const bool has0 = g < n, has1 = g + 8 < n;
  const __half* xrow0 = x + static_cast<size_t>(has0 ? g : 0) * cols;
  const __half* xrow1 = x + static_cast<size_t>(has1 ? g + 8 : 0) * cols;
  LaneStage* my = stages + static_cast<size_t>(warp) * STAGES * 32 + lane;
  auto issue = [&](int slot, int k) {
    const int s = warp + WARPS * k;
    LaneStage* st = my + slot * 32;
    CpAsync16(&st->wa, pa + s * 16);
    CpAsync16(&st->wb, pb + s * 16);
    const int grp = s / spans_per_group;
    CpAsync4(&st->sa, scales + ia + grp);
    CpAsync4(&st->sb, scales + ib + grp);
    if (zeros != nullptr) {
      CpAsync4(&st->za, zeros + ia + grp);
      CpAsync4(&st->zb, zeros + ib + grp);
    }
  };
#pragma unroll
  for (int k = 0; k < STAGES; ++k) {
    if (k < mine) issue(k, k);
    CpAsyncCommit();
  }
  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[nt][c] = 0.0f;
  for (int k = 0; k < mine; ++k) {
    CpAsyncWait<STAGES - 1>();
    const int slot = k % STAGES;
    const LaneStage st = my[slot * 32];
    ComputeSpan<BITS, NT>(st.wa, st.wb, st.sa, st.sb, zeros != nullptr ? st.za : 0, zeros != nullptr ? st.zb : 0,
                          warp + WARPS * k, xrow0, xrow1, has0, has1, acc);
    if (k + STAGES < mine) issue(slot, k + STAGES);
    CpAsyncCommit();
  }
  CpAsyncWait<0>();
  __syncthreads();  // every warp is done with its stages: reuse them for the reduction
  ReduceAndStore<NT, WARPS>(acc, reinterpret_cast<float*>(pipe_smem), rows, row0, n, bias, y);
}

template <int BITS, int NT, int S>
__global__ void __launch_bounds__(kMmaWarps * 32)
    MmaGemvKernel(const uint32_t* __restrict__ packed, const float* __restrict__ scales,
                  const int32_t* __restrict__ zeros, int rows, int cols, int wpr, int gpr, int spans_per_group,
                  const __half* __restrict__ x, int n, const float* __restrict__ bias, __half* __restrict__ y) {
  __shared__ float red[kMmaWarps][32][NT * 4];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int row0 = blockIdx.x * 16;
  const int ra = min(row0 + g, rows - 1), rb = min(row0 + g + 8, rows - 1);
  MmaArgs m;
  m.pa = packed + static_cast<size_t>(ra) * wpr + 4 * t;
  m.pb = packed + static_cast<size_t>(rb) * wpr + 4 * t;
  m.scales = scales;
  m.zeros = zeros;
  m.ia = ra * gpr;
  m.ib = rb * gpr;
  m.spans = wpr / 16;
  m.spans_per_group = spans_per_group;
  const bool has0 = g < n, has1 = g + 8 < n;
  const __half* xrow0 = x + static_cast<size_t>(has0 ? g : 0) * cols;
  const __half* xrow1 = x + static_cast<size_t>(has1 ? g + 8 : 0) * cols;
  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[nt][c] = 0.0f;

  constexpr int kStep = kMmaWarps * S;
  SpanRegs<S> r0, r1;
  LoadSpans<S>(r0, m, warp);
  for (int s0 = warp; s0 < m.spans; s0 += 2 * kStep) {
    LoadSpans<S>(r1, m, s0 + kStep);
    ComputeSpans<BITS, NT, S>(r0, m, s0, xrow0, xrow1, has0, has1, acc);
    LoadSpans<S>(r0, m, s0 + 2 * kStep);
    ComputeSpans<BITS, NT, S>(r1, m, s0 + kStep, xrow0, xrow1, has0, has1, acc);
  }
  ReduceAndStore<NT, kMmaWarps>(acc, &red[0][0][0], rows, row0, n, bias, y);
}

int MmaSpanCols(int bits) { return 16 * (32 / bits); }

bool MmaPathApplies(const PackedIntGpuWeights& w, const void* x) {
  const int span = MmaSpanCols(w.num_bits);
  return w.cols % span == 0 && (w.groups_per_row == 1 || w.group_size % span == 0) &&
         reinterpret_cast<uintptr_t>(w.packed) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
}

template <int BITS, int NT, int WARPS, int STAGES>
GpuStatus LaunchPipe(const LaunchArgs& a, int rows, int cols, int wpr, int gpr, int spans_per_group, int blocks) {
  constexpr size_t kSmem = sizeof(LaneStage) * STAGES * 32 * WARPS;
  static_assert(kSmem >= sizeof(float) * WARPS * 32 * NT * 4, "the reduction fits in the stages");
  auto kernel = MmaPipeKernel<BITS, NT, WARPS, STAGES>;
  SQ_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem)));
  kernel<<<blocks, WARPS * 32, kSmem, a.stream>>>(a.w->packed, a.w->scales, a.w->zero_points, rows, cols, wpr, gpr,
                                                   spans_per_group, a.x, a.n, a.bias, a.y);
  SQ_CUDA_RETURN_IF_LAUNCH_FAILED("MmaPipeKernel launch");
  return GpuStatus::Ok();
}

// kind: 0 register double buffer (8 warps), 1 cp.async pipeline 8 warps x 8
// stages, 2 cp.async pipeline 16 warps x 4 stages.
template <int BITS, int NT>
GpuStatus LaunchMma(const LaunchArgs& a, int kind) {
  const PackedIntGpuWeights& w = *a.w;
  const int blocks = static_cast<int>((w.rows + 15) / 16);
  const int span = MmaSpanCols(BITS);
  const int spans_per_group = w.groups_per_row == 1 ? INT_MAX : static_cast<int>(w.group_size / span);
  const int rows = static_cast<int>(w.rows), cols = static_cast<int>(w.cols);
  const int wpr = static_cast<int>(w.words_per_row), gpr = static_cast<int>(w.groups_per_row);
  if (kind == 1) return LaunchPipe<BITS, NT, 8, 8>(a, rows, cols, wpr, gpr, spans_per_group, blocks);
  if (kind == 2) return LaunchPipe<BITS, NT, 16, 4>(a, rows, cols, wpr, gpr, spans_per_group, blocks);
  MmaGemvKernel<BITS, NT, 2><<<blocks, kMmaWarps * 32, 0, a.stream>>>(w.packed, w.scales, w.zero_points, rows, cols,
                                                                     wpr, gpr, spans_per_group, a.x, a.n, a.bias, a.y);
  SQ_CUDA_RETURN_IF_LAUNCH_FAILED("MmaGemvKernel launch");
  return GpuStatus::Ok();
}

GpuStatus LaunchMmaAny(const LaunchArgs& a, int kind) {
  if (a.w->num_bits == 4) return a.n <= 8 ? LaunchMma<4, 1>(a, kind) : LaunchMma<4, 2>(a, kind);
  return a.n <= 8 ? LaunchMma<8, 1>(a, kind) : LaunchMma<8, 2>(a, kind);
}

int DefaultRowsPerWarp(int64_t n) { return n <= 4 ? 1 : 2; }

}  // namespace

GpuStatus PackedIntGemvVariant(const PackedIntGpuWeights& w, const uint16_t* x, int64_t n, const float* bias,
                               uint16_t* y, int variant, void* stream) {
  SQ_RETURN_IF_GPU_ERROR(ValidatePackedIntGpuWeights(w));
  if (n < 1) return GpuStatus::Error("PackedIntGemv: n " + std::to_string(n) + " must be >= 1");
  if (x == nullptr || y == nullptr) return GpuStatus::Error("PackedIntGemv: x and y must be device pointers, got null");
  for (int64_t i0 = 0; i0 < n; i0 += kMaxBatch) {
    const int nb = static_cast<int>(n - i0 < kMaxBatch ? n - i0 : kMaxBatch);
    LaunchArgs a;
    a.w = &w;
    a.x = reinterpret_cast<const __half*>(x) + i0 * w.cols;
    a.n = nb;
    a.x_vec = w.cols % 8 == 0 && reinterpret_cast<uintptr_t>(a.x) % 16 == 0;
    a.bias = bias;
    a.y = reinterpret_cast<__half*>(y) + i0 * w.rows;
    a.stream = static_cast<cudaStream_t>(stream);
    const bool mma_ok = MmaPathApplies(w, a.x);
    const bool mma_variant = variant >= kGemvTensorCores && variant <= kGemvTensorCoresPipe16;
    if (mma_variant && !mma_ok) {
      return GpuStatus::Error("PackedIntGemv: the tensor-core variant needs cols and group_size multiples of 128 "
                              "(int4) / 64 (int8) (or one group per row) and 16-byte aligned packed / x");
    }
    if (mma_variant || (variant == 0 && mma_ok)) {
      const int kind = variant == kGemvTensorCoresPipe8 ? 1 : (variant == kGemvTensorCoresPipe16 ? 2 : 0);
      SQ_RETURN_IF_GPU_ERROR(LaunchMmaAny(a, kind));
      continue;
    }
    const int rw = variant == 0 ? DefaultRowsPerWarp(nb) : variant;
    SQ_RETURN_IF_GPU_ERROR(w.num_bits == 4 ? LaunchBits<4>(a, rw) : LaunchBits<8>(a, rw));
  }
  return GpuStatus::Ok();
}

GpuStatus PackedIntGemv(const PackedIntGpuWeights& w, const uint16_t* x, int64_t n, const float* bias, uint16_t* y,
                        void* stream) {
  return PackedIntGemvVariant(w, x, n, bias, y, 0, stream);
}

}  // namespace squeeze::gpu
