// Bitmask sparse GEMM at batch > 1 (sparse_gemm.h): the densified-tile path
// (internal::SparseBitmaskRowsDensifiedAvx512, n >= kSparseBitmaskDensifyMinRows)
// must give the row kernel's bits exactly, for x batches 2..17, row ranges
// that start anywhere (odd r0, partial 4-row groups), column tails 1..15
// past a multiple of 16 and 0..3 leftover 16-input steps, densities from
// empty to full; and the public SparseBitmaskGemm at n = 2..17 must match the
// double reference, give the same bits row by row (n <= kSparseGemvMaxRows)
// and for every pool size.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "tests/unit/kernels/kernel_test_util.h"
#include "tests/unit/kernels/sparse_test_util.h"
#include "workers/kernels/cpu/sparse_gemm.h"

namespace squeeze::kernels {
namespace {

using testing::AllVariants;
using testing::BitEqual;
using testing::Near;
using testing::RandomFloats;
using testing::Variant;
using testing::VariantScope;

using Mask = testing::BitmaskTestWeights;

// A random bitmask layout keeping each weight with probability `density`.
Mask MakeMask(int64_t rows, int64_t cols, double density, uint64_t seed) {
  std::vector<float> dense = RandomFloats(rows * cols, seed);
  std::mt19937_64 rng(seed + 1);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (float& w : dense) {
    if (u(rng) >= density) w = 0.0f;
  }
  return testing::BitmaskFromDense(std::move(dense), rows, cols);
}

// x with some -0.0 and exact zeros mixed in (the products of zero weights
// with them must round the same way on both paths).
std::vector<float> BatchX(int64_t n, int64_t cols, uint64_t seed) {
  std::vector<float> x = RandomFloats(n * cols, seed);
  for (size_t i = 0; i < x.size(); i += 7) x[i] = (i % 2 == 0) ? -0.0f : 0.0f;
  return x;
}

struct Shape {
  int64_t rows, cols;
  double density;
};

const Shape kShapes[] = {
    {5, 1, 0.5},    {7, 15, 0.5},   {9, 16, 0.7},   {6, 17, 0.5},    {13, 63, 0.3},  {4, 64, 1.0},
    {8, 65, 0.5},   {17, 121, 0.5}, {16, 145, 0.6}, {33, 239, 0.5},  {20, 320, 0.0}, {11, 1000, 0.1},
    {19, 200, 0.9}, {6, 4103, 0.5},
};

TEST(SparseGemmBatch, DensifiedTilesEqualTheRowKernelBitForBit) {
  if (!CpuHasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU: the densified path is AVX-512 only";
  for (const Shape& s : kShapes) {
    const Mask w = MakeMask(s.rows, s.cols, s.density, s.rows * 31 + s.cols);
    const std::vector<float> bias = RandomFloats(s.rows, 3);
    for (int64_t n = 2; n <= 17; ++n) {
      const std::vector<float> x = BatchX(n, s.cols, 500 + n);
      // Whole range, then a range starting at an odd row (partial groups).
      for (const auto& [r0, r1] : std::vector<std::pair<int64_t, int64_t>>{{0, s.rows}, {1, s.rows}}) {
        if (r0 >= r1) continue;
        std::vector<float> want(n * s.rows, -1.0f), got(n * s.rows, -1.0f);
        internal::SparseBitmaskRowsAvx512(w.view, x.data(), n, bias.data(), want.data(), r0, r1);
        internal::SparseBitmaskRowsDensifiedAvx512(w.view, x.data(), n, bias.data(), got.data(), r0, r1);
        EXPECT_TRUE(BitEqual(got, want)) << s.rows << "x" << s.cols << " density " << s.density << " n=" << n
                                         << " rows [" << r0 << ", " << r1 << ")";
      }
    }
  }
}

TEST(SparseGemmBatch, BatchesTwoToSeventeenMatchTheReferenceRowByRowAndPoolSizes) {
  ThreadPool one(1), two(2);
  for (const Shape& s : {Shape{37, 300, 0.5}, Shape{16, 4105, 0.3}, Shape{21, 49, 0.8}}) {
    const Mask w = MakeMask(s.rows, s.cols, s.density, s.rows * 7 + s.cols);
    const std::vector<float> bias = RandomFloats(s.rows, 4);
    for (int64_t n = 2; n <= 17; ++n) {
      const std::vector<float> x = BatchX(n, s.cols, 900 + n);
      std::vector<float> want(n * s.rows);
      SparseBitmaskGemmReference(w.view, x.data(), n, bias.data(), want.data());
      const std::vector<double> mag = testing::DenseMagnitudes(w.dense, s.rows, s.cols, x.data(), n, bias);
      for (const Variant& var : AllVariants()) {
        VariantScope scope(var);
        const std::string what = std::to_string(s.rows) + "x" + std::to_string(s.cols) + " " + var.Name() +
                                 " n=" + std::to_string(n);
        std::vector<float> y1(n * s.rows, -7.0f), y2(n * s.rows, -8.0f);
        SparseBitmaskGemm(w.view, x.data(), n, bias.data(), y1.data(), one);
        SparseBitmaskGemm(w.view, x.data(), n, bias.data(), y2.data(), two);
        EXPECT_TRUE(Near(y1, want, mag, 1e-5)) << what;
        EXPECT_TRUE(BitEqual(y1, y2)) << what << " (pool size)";
        if (n <= kSparseGemvMaxRows) {
          std::vector<float> rows(n * s.rows);
          for (int64_t i = 0; i < n; ++i) {
            SparseBitmaskGemm(w.view, x.data() + i * s.cols, 1, bias.data(), rows.data() + i * s.rows, two);
          }
          EXPECT_TRUE(BitEqual(y1, rows)) << what << " (row by row)";
        }
      }
    }
  }
}

}  // namespace
}  // namespace squeeze::kernels
