// fp32 GEMM y = x W^T for row-major x [n, k] and W [m, k] (the layout of
// every linear layer: weights [out, in]), for prefill and calibration.
//
// Versions:
//   reference  GemmNTReference (transformer_ops.h): naive loops, double sums.
//   eigen      Eigen's GEMM (what KernelIsa::kReference dispatches to: the
//              portable baseline build, SSE2).
//   avx2       packed 6x16 register-tile microkernel (AVX2 + FMA),
//   avx512     packed 8x32 register-tile microkernel (AVX-512F);
//              both pack k-blocks of 256 (x panels MR-interleaved, W panels
//              NR-interleaved, full panels transposed with SIMD shuffles),
//              accumulate each k-block in registers and add it to y; for
//              n <= 32 (decode, short batches) a direct 4-row dot-product
//              kernel streams W once instead (no packing).
// Within one path every output is a sum over k in a fixed order (k-blocks of
// 256, fp32 FMA inside), independent of how rows / columns are split into
// tiles or over threads, so results do not depend on the pool size. The two
// paths sum in different orders, so a row's result may differ in the last
// bits between a call with n <= 32 rows and one with more. The SIMD versions match
// the reference within |err| <= 1e-5 * sum_c |x_c w_c| (summation order).
#pragma once

#include <cstdint>

#include "workers/engine/core/thread_pool.h"

namespace squeeze::kernels {

// Single-threaded: y[i * ldy + j] = sum_c x[i * k + c] * w[j * k + c] for
// i < n, j < m (ldy >= m). Dispatches on ActiveIsa().
void GemmF32NTStrided(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, int64_t ldy);

// The same over the pool: output columns split in fixed chunks of
// GemmF32ChunkColumns(n, m, k) (a function of the shape only).
void GemmF32NT(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, ThreadPool& pool);
int64_t GemmF32ChunkColumns(int64_t n, int64_t m, int64_t k);

// W supplied block by block instead of as a matrix (e.g. dequantized on the
// fly from packed integers, packed_int_gemm.h). fill(ctx, j0, nr, k0, kc, dst)
// writes dst[jj * kc + kk] = W[j0 + jj, k0 + kk] for jj < nr, kk < kc; the
// GEMM asks for nr <= kGemmF32BlockRows rows and kc <= kGemmF32BlockCols
// columns with k0 a multiple of kGemmF32BlockCols, every W element exactly
// once per call per column chunk, from the calling (pool) thread; fill must
// be thread-safe.
struct GemmF32WBlocks {
  void (*fill)(const void* ctx, int64_t j0, int64_t nr, int64_t k0, int64_t kc, float* dst) = nullptr;
  const void* ctx = nullptr;
};
inline constexpr int64_t kGemmF32BlockRows = 32;
inline constexpr int64_t kGemmF32BlockCols = 256;

// y = x W^T with W from blocks. Runs the packed path whatever n (the SIMD
// versions), so for n > 32 the result equals GemmF32NTStrided on the
// materialized W bit for bit; for n <= 32 it sums as the packed path does
// (GemmF32NTStrided would run the dot-product kernel). The reference
// dispatch materializes 256-row slices of W and runs Eigen.
void GemmF32NTBlocksStrided(const float* x, int64_t n, int64_t k, const GemmF32WBlocks& w, int64_t m, float* y,
                            int64_t ldy);
// The same over the pool: output columns in fixed chunks of
// GemmF32ChunkColumns(max(n, 33), m, k).
void GemmF32NTBlocks(const float* x, int64_t n, int64_t k, const GemmF32WBlocks& w, int64_t m, float* y,
                     ThreadPool& pool);

namespace internal {
// Per-ISA single-threaded bodies (gemm_f32_avx2.cc, gemm_f32_avx512.cc).
void GemmF32NTAvx2(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, int64_t ldy);
void GemmF32NTAvx512(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, int64_t ldy);
// W rows [j_base, j_base + m) from blocks; y as above.
void GemmF32NTBlocksAvx2(const float* x, int64_t n, int64_t k, const GemmF32WBlocks& w, int64_t j_base, int64_t m,
                         float* y, int64_t ldy);
void GemmF32NTBlocksAvx512(const float* x, int64_t n, int64_t k, const GemmF32WBlocks& w, int64_t j_base,
                           int64_t m, float* y, int64_t ldy);
}  // namespace internal

}  // namespace squeeze::kernels
