// W8A8 int8 GEMM: every variant bit-exact against the plain reference
// (int32 dots and fp32 outputs), on odd shapes and extreme values.
#include "workers/kernels/cpu/int8_gemm.h"

#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"

namespace squeeze::kernels {
namespace {

using testing::AllVariants;
using testing::Variant;
using testing::VariantScope;
using testing::BitEqual;
using testing::RandomFloats;
using testing::RandomInt8;

struct Shape {
  int64_t m, k, n;
};

void CheckExact(const std::vector<int8_t>& a, const std::vector<int8_t>& w, int64_t m, int64_t k, int64_t n,
                uint64_t seed, const std::string& what) {
  std::vector<int32_t> dref(m * n);
  Int8DotNTReference(a.data(), m, k, w.data(), n, dref.data());
  const auto as = RandomFloats(m, seed, 0.0f, 0.05f);
  const auto ws = RandomFloats(n, seed + 1, 0.0f, 0.05f);
  const auto bias = RandomFloats(n, seed + 2);
  std::vector<float> yref(m * n), yref_nb(m * n);
  Int8GemmNTReference(a.data(), m, k, as.data(), w.data(), n, ws.data(), bias.data(), yref.data());
  Int8GemmNTReference(a.data(), m, k, as.data(), w.data(), n, ws.data(), nullptr, yref_nb.data());
  ThreadPool pool(3), one(1);
  for (const Variant& var : AllVariants()) {
    VariantScope scoped(var);
    SCOPED_TRACE(what + " m=" + std::to_string(m) + " k=" + std::to_string(k) + " n=" + std::to_string(n) +
                 " isa=" + var.Name());
    std::vector<int32_t> d(m * n, 7);
    Int8DotNT(a.data(), m, k, w.data(), n, d.data(), pool);
    EXPECT_EQ(d, dref);
    std::vector<float> y(m * n), y1(m * n), ynb(m * n);
    Int8GemmNT(a.data(), m, k, as.data(), w.data(), n, ws.data(), bias.data(), y.data(), pool);
    EXPECT_TRUE(BitEqual(y, yref));
    Int8GemmNT(a.data(), m, k, as.data(), w.data(), n, ws.data(), bias.data(), y1.data(), one);
    EXPECT_TRUE(BitEqual(y1, yref));
    Int8GemmNT(a.data(), m, k, as.data(), w.data(), n, ws.data(), nullptr, ynb.data(), pool);
    EXPECT_TRUE(BitEqual(ynb, yref_nb));
  }
}

TEST(Int8Gemm, RandomOddShapesAreExact) {
  const Shape shapes[] = {{1, 1, 1},     {1, 31, 5},    {1, 32, 16},  {2, 63, 7},   {3, 64, 33},
                          {4, 65, 4},    {5, 127, 9},   {7, 129, 65}, {16, 256, 40}, {1, 4096, 35},
                          {33, 500, 18}, {70, 96, 130}, {9, 1000, 3}};
  uint64_t seed = 1;
  for (const Shape& s : shapes) {
    const auto a = RandomInt8(s.m * s.k, seed++, -127, 127);
    const auto w = RandomInt8(s.n * s.k, seed++);
    CheckExact(a, w, s.m, s.k, s.n, seed++, "random");
  }
}

TEST(Int8Gemm, ExtremeValuesAreExact) {
  // Saturation hazards of maddubs: |w| = 128 with |a| = 127 everywhere, and
  // a = -128 (outside the maddubs trick's range: the dispatcher must still be
  // exact), plus the largest k the int32 sums allow at full magnitude.
  const int64_t m = 5, n = 9;
  for (int64_t k : {64, 97, 4096}) {
    std::vector<int8_t> a(m * k), w(n * k);
    for (int64_t i = 0; i < m * k; ++i) a[i] = (i % 3 == 0) ? -127 : 127;
    for (int64_t i = 0; i < n * k; ++i) w[i] = (i % 5 == 0) ? 127 : -128;
    CheckExact(a, w, m, k, n, 50 + k, "extreme");
    std::vector<int8_t> a128(a);
    for (int64_t i = 0; i < m * k; i += 7) a128[i] = -128;
    CheckExact(a128, w, m, k, n, 60 + k, "a=-128");
    std::vector<int8_t> zeros(m * k, 0);
    CheckExact(zeros, w, m, k, n, 70 + k, "zero a");
  }
}

TEST(Int8Gemm, QuantizeRowsInt8IsSymmetricPerTokenLikeW8A8Linear) {
  const int64_t m = 3, k = 5;
  const std::vector<float> x = {127.0f, -1.5f, 0.5f, 2.5f, -127.0f,  //
                                0.0f,   0.0f,  0.0f, 0.0f, 0.0f,     //
                                -2.0f,  1.0f,  0.0f, 0.5f, 0.25f};
  std::vector<int8_t> q(m * k);
  std::vector<float> s(m);
  QuantizeRowsInt8(x.data(), m, k, q.data(), s.data());
  EXPECT_EQ(s[0], 1.0f);
  EXPECT_EQ(s[1], 1.0f);  // all-zero row
  EXPECT_FLOAT_EQ(s[2], 2.0f / 127.0f);
  // Half away from zero: -1.5 -> -2, 0.5 -> 1, 2.5 -> 3.
  EXPECT_EQ(std::vector<int8_t>(q.begin(), q.begin() + 5), (std::vector<int8_t>{127, -2, 1, 3, -127}));
  EXPECT_EQ(std::vector<int8_t>(q.begin() + 5, q.begin() + 10), std::vector<int8_t>(5, 0));
  EXPECT_EQ(q[10], -127);
  // Dequantized values are within half a step of x.
  for (int64_t c = 10; c < 15; ++c) EXPECT_LE(std::fabs(q[c] * s[2] - x[c]), s[2] / 2 * 1.0001);
}

}  // namespace
}  // namespace squeeze::kernels
