// Sparse fp32 GEMV / small GEMM for pruned linear layers (the two storage
// formats of SparseLinear, workers/methods/prune/sparse_linear.h, read in
// place: nothing is rebuilt at load):
//
//   y[i, r] = sum over the stored (c, v) of row r of v * x[i, c]  (+ bias[r])
//
// for x [n, cols] fp32 row-major and y [n, rows].
//
//  * N:M ("K of M": every group of M consecutive inputs keeps K values).
//    values [rows, cols / M * K] fp32, indices [rows, ceil(cols / M * K / 2)]
//    4-bit positions inside the group (value 2i in the low nibble of byte i).
//    AVX-512: 16 values (16 / K groups, S = 16 / K * M inputs) per step; the
//    16 positions are unpacked from 8 index bytes, offset by their group and
//    gather the matching x with one vpermt2ps from the 32-input window
//    (needs K | 16 and S <= 32: 2:4, 4:8, 1:2, 8:16, 2:3, ...).
//    AVX2: 8 values per step, two vpermps + blend from a 16-input window
//    (needs K | 8 and 8 / K * M <= 16).
//  * Bitmask (any zero pattern). bitmask [rows, ceil(cols / 8)] (bit c % 8
//    of byte c / 8 set iff stored), row_offsets [rows] into values [nnz].
//    AVX-512: per 64 inputs one 64-bit mask word; each of its four 16-input
//    quarters vexpandps's its popcount values from memory (at offsets from
//    prefix popcounts, independent of each other; no read past the stored
//    values) to their lanes, then one FMA with the dense x into that
//    quarter's accumulator; the packed values are prefetched 8 KiB ahead
//    (compute ~ dense, memory 4 * density + 1/8 bytes per weight instead
//    of 4).
//    AVX2: per 8 inputs, a 256-entry permutation table does the expand
//    (masked load of popcount values), with the same prefetch.
//    AVX-512 batches (3 <= n <= kSparseGemvMaxRows): the weight rows are
//    densified once per call and the row kernel's FMAs run on the dense
//    copy in register tiles (SparseBitmaskRowsDensifiedAvx512; same bits).
//    Process CPU time, 1 thread, 4096x4096 at 50%, ms (dense GemmF32NT /
//    row kernel / densified): n=2 3.43/2.93/2.52, 4 3.32/4.85/3.01,
//    8 4.38/6.86/3.94, 16 7.17/11.35/6.06; 11008x4096: n=2 9.07/8.04/6.59,
//    8 11.55/17.18/10.95, 16 19.70/29.84/16.75 (n=1 keeps the row kernel:
//    1.33 vs densified 2.29).
//
// Arithmetic: every output is an fp32 FMA sum over the row in a fixed order
// (steps alternate between two accumulators, summed at the end; AVX-512
// bitmask: four, one per 16-input quarter of each 64-input step) that does
// not depend on n, on which rows of x share a call, or on the pool size:
// the same x row gives bit-identical outputs whatever n <= kSparseGemvMaxRows
// and thread count. The plain references (SparseNMGemmReference,
// SparseBitmaskGemmReference) walk the format with double sums; the fast
// versions match them within |err| <= 1e-5 * sum_c |x_c w_c| + 1e-6.
//
// n > kSparseGemvMaxRows (prefill, calibration): 64-row tiles of the weight
// are densified and run through the fp32 GEMM (GemmF32NTStrided); FLOPs are
// dense there (the GEMM is compute bound and dense tiles are faster than any
// sparse inner loop at these sizes).
// Layouts without a SIMD version (other K:M, or ActiveIsa() = reference) run
// the reference. Work is split over the ThreadPool in fixed blocks of
// kSparseRowsPerItem output rows.
#pragma once

#include <cstdint>

#include "workers/engine/core/thread_pool.h"
#include "workers/kernels/cpu/cpu_features.h"

namespace squeeze::kernels {

// Read-only view of an N:M sparse weight; nothing is owned.
struct SparseNMWeights {
  int64_t rows = 0, cols = 0;   // [out, in]; cols % group == 0
  int keep = 0, group = 0;      // K of M: 1 <= K < M <= 16
  const float* values = nullptr;     // [rows, values_per_row()]
  const uint8_t* indices = nullptr;  // [rows, index_row_bytes()]
  int64_t values_per_row() const { return cols / group * keep; }
  int64_t index_row_bytes() const { return (values_per_row() + 1) / 2; }
};

// Read-only view of a bitmask sparse weight; nothing is owned.
struct SparseBitmaskWeights {
  int64_t rows = 0, cols = 0;          // [out, in]
  const uint8_t* bitmask = nullptr;    // [rows, mask_row_bytes()]
  const int64_t* row_offsets = nullptr;  // [rows], first stored value of each row
  const float* values = nullptr;       // [nnz], row-major, columns ascending
  int64_t mask_row_bytes() const { return (cols + 7) / 8; }
};

// Most rows of x the sparse kernels take; more run densified tiles + GEMM.
inline constexpr int64_t kSparseGemvMaxRows = 16;
inline constexpr int64_t kSparseRowsPerItem = 16;
// AVX-512 bitmask, kSparseBitmaskDensifyMinRows <= n <= kSparseGemvMaxRows:
// each item's weight rows are densified once into a per-thread scratch and
// every x row runs the same FMAs on it (bit-identical to the row kernel;
// faster once the expand would otherwise be repeated per 4 x rows). At
// n = 2 the two measured within noise of each other (process CPU time,
// densified / row kernel 0.67-1.28 over 10 runs and shapes), at n = 3..16
// the densified tiles won 1.07-1.9x; so n = 2 keeps the row kernel.
inline constexpr int64_t kSparseBitmaskDensifyMinRows = 3;

// Whether `isa` has a SIMD version for this N:M layout (bitmask: every layout).
bool SparseNMFastPathApplies(const SparseNMWeights& w, KernelIsa isa);

// y [n, rows] = x [n, cols] * W^T (+ bias [rows] when non-null).
void SparseNMGemm(const SparseNMWeights& w, const float* x, int64_t n, const float* bias, float* y,
                  ThreadPool& pool);
void SparseBitmaskGemm(const SparseBitmaskWeights& w, const float* x, int64_t n, const float* bias, float* y,
                       ThreadPool& pool);

// Plain references: double sums over the stored values, single-threaded.
void SparseNMGemmReference(const SparseNMWeights& w, const float* x, int64_t n, const float* bias, float* y);
void SparseBitmaskGemmReference(const SparseBitmaskWeights& w, const float* x, int64_t n, const float* bias,
                                float* y);

// Writes the dense rows [r0, r1) of W into dst (row-major, cols wide).
// Bitmask: AVX-512 expands 16 columns per step when ActiveIsa() allows.
void SparseNMDensifyRows(const SparseNMWeights& w, int64_t r0, int64_t r1, float* dst);
void SparseBitmaskDensifyRows(const SparseBitmaskWeights& w, int64_t r0, int64_t r1, float* dst);

namespace internal {
// Per-ISA bodies: output rows [r0, r1) for all n <= kSparseGemvMaxRows rows
// of x (sparse_gemm_avx2.cc, sparse_gemm_avx512.cc).
void SparseNMRowsAvx2(const SparseNMWeights& w, const float* x, int64_t n, const float* bias, float* y,
                      int64_t r0, int64_t r1);
void SparseNMRowsAvx512(const SparseNMWeights& w, const float* x, int64_t n, const float* bias, float* y,
                        int64_t r0, int64_t r1);
void SparseBitmaskRowsAvx2(const SparseBitmaskWeights& w, const float* x, int64_t n, const float* bias,
                           float* y, int64_t r0, int64_t r1);
// Dense rows [r0, r1) of a bitmask weight (vexpandps per 16 columns).
void SparseBitmaskDensifyRowsAvx512(const SparseBitmaskWeights& w, int64_t r0, int64_t r1, float* dst);
void SparseBitmaskRowsAvx512(const SparseBitmaskWeights& w, const float* x, int64_t n, const float* bias,
                             float* y, int64_t r0, int64_t r1);
// The same outputs, bit for bit, for n >= 2 x rows: 16 (cols <= 4096) or 4
// weight rows at a time are densified into a per-thread scratch and every
// x row runs BitmaskRows' FMAs on it (4 weight rows x 4 x rows per register
// tile, k in blocks of 512 inputs), so each packed value is expanded once
// per call instead of once per 4 x rows. (Densifying 4 rows x 512 inputs at
// a time into an L1 buffer instead measured 1.0-1.4x slower in process CPU
// time at n = 1..16 on Zen 4.)
void SparseBitmaskRowsDensifiedAvx512(const SparseBitmaskWeights& w, const float* x, int64_t n,
                                      const float* bias, float* y, int64_t r0, int64_t r1);
}  // namespace internal

}  // namespace squeeze::kernels
