// fp32 GEMM: every variant within the stated tolerance of the double
// reference on odd shapes, and independent of the pool size.
#include "workers/kernels/cpu/gemm_f32.h"

#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"
#include "workers/kernels/cpu/transformer_ops.h"

namespace squeeze::kernels {
namespace {

using testing::AllVariants;
using testing::Variant;
using testing::VariantScope;
using testing::BitEqual;
using testing::Near;
using testing::RandomFloats;

struct Shape {
  int64_t n, k, m;
};

std::vector<double> Magnitudes(const std::vector<float>& x, const std::vector<float>& w, int64_t n, int64_t k,
                               int64_t m) {
  std::vector<double> mag(static_cast<size_t>(n * m));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      double s = 0;
      for (int64_t c = 0; c < k; ++c) s += std::fabs(double{x[i * k + c]} * w[j * k + c]);
      mag[i * m + j] = s;
    }
  }
  return mag;
}

TEST(GemmF32, EveryVariantMatchesReferenceOnOddShapes) {
  const Shape shapes[] = {{1, 1, 1},    {1, 7, 5},     {2, 33, 17},  {3, 100, 9},   {4, 256, 32},
                          {5, 257, 33}, {7, 513, 70},  {8, 64, 64},  {13, 300, 65}, {16, 1000, 40},
                          {1, 4096, 3}, {37, 129, 97}, {6, 16, 16},  {9, 0, 5},
                          {70, 300, 65}, {33, 64, 31}};
  ThreadPool pool(3);
  for (const Shape& s : shapes) {
    const auto x = RandomFloats(s.n * s.k, 1 + s.k);
    const auto w = RandomFloats(s.m * s.k, 2 + s.m);
    std::vector<float> ref(s.n * s.m);
    GemmNTReference(x.data(), s.n, s.k, w.data(), s.m, ref.data());
    const auto mag = Magnitudes(x, w, s.n, s.k, s.m);
    for (const Variant& var : AllVariants()) {
      VariantScope scoped(var);
      SCOPED_TRACE(var.Name() + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
                   " m=" + std::to_string(s.m));
      std::vector<float> y(s.n * s.m, 123.0f), y1(s.n * s.m, -5.0f);
      GemmF32NT(x.data(), s.n, s.k, w.data(), s.m, y.data(), pool);
      EXPECT_TRUE(Near(y, ref, mag, 1e-5));
      ThreadPool one(1);
      GemmF32NT(x.data(), s.n, s.k, w.data(), s.m, y1.data(), one);
      EXPECT_TRUE(BitEqual(y, y1));
    }
  }
}

TEST(GemmF32, StridedOutputLeavesOtherColumnsAlone) {
  const int64_t n = 11, k = 70, m = 45, ldy = 60;
  const auto x = RandomFloats(n * k, 3);
  const auto w = RandomFloats(m * k, 4);
  std::vector<float> ref(n * m);
  GemmNTReference(x.data(), n, k, w.data(), m, ref.data());
  const auto mag = Magnitudes(x, w, n, k, m);
  for (const Variant& var : AllVariants()) {
    VariantScope scoped(var);
    SCOPED_TRACE(var.Name());
    std::vector<float> y(n * ldy, 7.0f);
    GemmF32NTStrided(x.data(), n, k, w.data(), m, y.data(), ldy);
    std::vector<float> got(n * m);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < ldy; ++j) {
        if (j < m) {
          got[i * m + j] = y[i * ldy + j];
        } else {
          EXPECT_EQ(y[i * ldy + j], 7.0f) << i << "," << j;
        }
      }
    }
    EXPECT_TRUE(Near(got, ref, mag, 1e-5));
  }
}

TEST(GemmF32, LargeMagnitudesAndCancellation) {
  // Rows that cancel exactly: the tolerance is relative to sum |x w|.
  const int64_t n = 5, k = 300, m = 33;
  auto x = RandomFloats(n * k, 5, -1e4f, 1e4f);
  auto w = RandomFloats(m * k, 6, -1e-3f, 1e-3f);
  for (int64_t c = 0; c < k / 2; ++c) x[c + k / 2] = -x[c];  // row 0: pairs cancel when w pairs match
  for (int64_t c = 0; c < k / 2; ++c) w[c + k / 2] = w[c];
  std::vector<float> ref(n * m);
  GemmNTReference(x.data(), n, k, w.data(), m, ref.data());
  const auto mag = Magnitudes(x, w, n, k, m);
  ThreadPool pool(2);
  for (const Variant& var : AllVariants()) {
    VariantScope scoped(var);
    SCOPED_TRACE(var.Name());
    std::vector<float> y(n * m);
    GemmF32NT(x.data(), n, k, w.data(), m, y.data(), pool);
    EXPECT_TRUE(Near(y, ref, mag, 1e-5));
  }
}

}  // namespace
}  // namespace squeeze::kernels
