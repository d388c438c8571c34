// Packed int4/int8 GEMV/GEMM: every variant against the plain references
// (fp32 path within the stated tolerance, int8-activation path bit-exact),
// on random and adversarial layouts, and independent of the pool size.
#include "workers/kernels/cpu/packed_int_gemm.h"

#include <algorithm>
#include <numeric>

#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"
#include "tests/unit/kernels/packed_test_weights.h"
#include "workers/methods/quant/packed_int_linear.h"

namespace squeeze::kernels {
namespace {

using testing::AllVariants;
using testing::Variant;
using testing::VariantScope;
using testing::BitEqual;
using testing::Near;
using testing::RandomFloats;

using testing::Codes;
using TestWeights = testing::PackedTestWeights;

// Scales in [0.001, 0.1) (every third one 0 with zero_scales); asymmetric:
// zero points at the extremes when the codes are, else random.
TestWeights MakeWeights(int bits, int64_t rows, int64_t cols, int64_t group, bool asym, Codes codes, uint64_t seed,
                        bool zero_scales = false, bool with_g_idx = false) {
  return testing::MakePackedTestWeights({.bits = bits,
                                         .rows = rows,
                                         .cols = cols,
                                         .group = group,
                                         .codes = codes,
                                         .zeros = asym ? testing::InRangeZerosLike(codes) : testing::ZeroPoints::kNone,
                                         .zero_scale_every = zero_scales ? 3 : 0,
                                         .g_idx = with_g_idx},
                                        seed);
}

std::vector<double> Magnitudes(const PackedIntWeights& w, const std::vector<float>& x, int64_t n,
                               const std::vector<float>& bias) {
  std::vector<double> mag(n * w.rows);
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t i = 0; i < n; ++i) {
      double s = bias.empty() ? 0.0 : std::fabs(bias[r]);
      for (int64_t c = 0; c < w.cols; ++c) s += std::fabs(double{x[i * w.cols + c]} * PackedIntDequant(w, r, c));
      mag[i * w.rows + r] = s;
    }
  }
  return mag;
}

struct Case {
  int bits;
  int64_t rows, cols, group;
  bool asym;
  Codes codes;
};

// Runs both paths of every variant against the references for n rows of x.
void CheckCase(const TestWeights& t, int64_t n, bool with_bias, uint64_t seed, const std::string& what) {
  const PackedIntWeights& w = t.view;
  auto x = RandomFloats(n * w.cols, seed, -2.0f, 2.0f);
  if (n > 1) std::fill(x.begin() + w.cols, x.begin() + 2 * w.cols, 0.0f);  // an all-zero row
  const std::vector<float> bias = with_bias ? RandomFloats(w.rows, seed + 9) : std::vector<float>{};
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> ref(n * w.rows), ref_q8(n * w.rows);
  PackedIntGemmReference(w, x.data(), n, b, ref.data());
  PackedIntGemmQ8Reference(w, x.data(), n, b, ref_q8.data());
  const auto mag = Magnitudes(w, x, n, bias);
  ThreadPool pool(3), one(1);
  for (const Variant& var : AllVariants()) {
    VariantScope scoped(var);
    SCOPED_TRACE(what + " n=" + std::to_string(n) + " isa=" + var.Name());
    std::vector<float> y(n * w.rows, 99.0f), y1(n * w.rows, -99.0f);
    PackedIntGemm(w, x.data(), n, b, y.data(), pool);
    EXPECT_TRUE(Near(y, ref, mag, 1e-5));
    PackedIntGemm(w, x.data(), n, b, y1.data(), one);
    EXPECT_TRUE(BitEqual(y, y1));
    std::vector<float> q(n * w.rows, 99.0f), q1(n * w.rows, -99.0f);
    PackedIntGemmQ8(w, x.data(), n, b, q.data(), pool);
    EXPECT_TRUE(BitEqual(q, ref_q8));
    PackedIntGemmQ8(w, x.data(), n, b, q1.data(), one);
    EXPECT_TRUE(BitEqual(q, q1));
  }
}

TEST(PackedIntGemm, RandomShapesAndLayouts) {
  const Case cases[] = {
      {4, 5, 128, 128, false, Codes::kRandom},  {4, 33, 256, 64, true, Codes::kRandom},
      {4, 17, 96, 32, false, Codes::kRandom},   {4, 9, 200, 200, true, Codes::kRandom},   // one group, tail
      {4, 3, 100, 100, false, Codes::kRandom},  {4, 7, 4096, 128, false, Codes::kRandom},
      {4, 6, 300, 128, true, Codes::kRandom},   // last group short (44 columns)
      {4, 4, 31, 31, false, Codes::kRandom},    // shorter than one unit
      {8, 5, 128, 128, false, Codes::kRandom},  {8, 33, 256, 64, true, Codes::kRandom},
      {8, 9, 200, 200, true, Codes::kRandom},   {8, 6, 300, 128, true, Codes::kRandom},
      {8, 3, 77, 77, false, Codes::kRandom},    {8, 2, 1000, 96, false, Codes::kRandom},
      // No SIMD version: must still match (generic paths).
      {4, 5, 130, 50, true, Codes::kRandom},  {3, 5, 100, 32, false, Codes::kRandom},
      {2, 4, 70, 70, true, Codes::kRandom},   {5, 3, 64, 32, true, Codes::kRandom},
  };
  uint64_t seed = 10;
  for (const Case& c : cases) {
    const std::string what = "bits=" + std::to_string(c.bits) + " rows=" + std::to_string(c.rows) +
                             " cols=" + std::to_string(c.cols) + " group=" + std::to_string(c.group) +
                             (c.asym ? " asym" : " sym");
    const TestWeights t = MakeWeights(c.bits, c.rows, c.cols, c.group, c.asym, c.codes, seed++);
    for (int64_t n : {1, 2, 3, 4, 5, 9}) CheckCase(t, n, n % 2 == 1, seed++, what);
  }
}

TEST(PackedIntGemm, AdversarialCodesZeroScalesAndGIdx) {
  uint64_t seed = 100;
  for (int bits : {4, 8}) {
    for (Codes codes : {Codes::kExtreme, Codes::kMin, Codes::kMax}) {
      for (bool asym : {false, true}) {
        const TestWeights t = MakeWeights(bits, 19, 320, 64, asym, codes, seed++);
        CheckCase(t, 3, true, seed++, "extreme bits=" + std::to_string(bits));
        CheckCase(t, 1, false, seed++, "extreme bits=" + std::to_string(bits));
      }
    }
    const TestWeights zs = MakeWeights(bits, 11, 256, 32, true, Codes::kRandom, seed++, /*zero_scales=*/true);
    CheckCase(zs, 4, false, seed++, "zero scales");
    const TestWeights gi = MakeWeights(bits, 7, 256, 64, false, Codes::kRandom, seed++, false, /*g_idx=*/true);
    EXPECT_FALSE(PackedIntFastPathApplies(gi.view));
    CheckCase(gi, 2, true, seed++, "g_idx");
  }
}

TEST(PackedIntGemm, SixteenGroupKernelShapes) {
  // The AVX-512 kernel that reduces 16 groups at a time (group 32 or a
  // multiple of 64, >= 16 groups): full blocks, leftover groups, a short last
  // group, weight rows not a multiple of its 4-row blocks, extreme codes and
  // zero points, zero scales; every x row count (it serves decode and, for
  // group 32, every row). The same shapes serve the AVX2 kernel that reduces
  // 8 groups at a time (packed_int_gemm_q8_rows8_avx2.inc).
  struct R16Case {
    int bits;
    int64_t rows, cols, group;
    bool asym;
    Codes codes;
  };
  const R16Case cases[] = {
      {4, 9, 512, 32, false, Codes::kRandom},    {4, 6, 1056, 32, true, Codes::kRandom},    // 33 groups
      {4, 5, 1100, 32, true, Codes::kRandom},    // 34 full groups + a 12-column one
      {4, 7, 1024 + 40, 64, true, Codes::kRandom},  {4, 3, 4096, 128, false, Codes::kRandom},
      {4, 5, 2048 + 96, 128, true, Codes::kExtreme}, {4, 4, 1024, 64, true, Codes::kMin},
      {8, 9, 512, 32, false, Codes::kRandom},    {8, 6, 1056, 32, true, Codes::kExtreme},
      {8, 5, 1100, 32, true, Codes::kRandom},    {8, 7, 1024 + 40, 64, true, Codes::kRandom},
      {8, 3, 2048 + 96, 128, false, Codes::kMax}, {8, 4, 1024, 64, true, Codes::kExtreme},
      // The AVX2 decode kernel (8 groups at a time, any group size that is a
      // multiple of 32): group 96 (4-bit: one 64-column step and one unit
      // per group), 9 full groups + a 20-column one; exactly 8 groups.
      {4, 6, 96 * 9 + 20, 96, true, Codes::kRandom}, {8, 6, 96 * 9 + 20, 96, true, Codes::kExtreme},
      {4, 5, 256, 32, true, Codes::kExtreme},  {8, 5, 256, 32, false, Codes::kRandom},
      // 4-bit AVX-512: activations in 128-column chunk order over the full
      // 16-group blocks (a group of two chunks here), per unit after them.
      {4, 5, 16 * 256 + 64 + 32 + 7, 256, true, Codes::kExtreme},
      // AVX-512: a block of 8 groups after the blocks of 16 (Llama's
      // 11008-column rows: 21 * 16 + 8 groups of 32), with more groups and a
      // short one after it; group 64 (4-bit) and 8-bit codes too.
      {4, 5, 11008, 32, false, Codes::kRandom},  {4, 6, 32 * 26 + 12, 32, true, Codes::kExtreme},
      {8, 6, 32 * 26 + 12, 32, true, Codes::kRandom}, {4, 5, 64 * 25 + 40, 64, true, Codes::kRandom},
  };
  uint64_t seed = 300;
  for (const R16Case& c : cases) {
    const std::string what = "bits=" + std::to_string(c.bits) + " rows=" + std::to_string(c.rows) +
                             " cols=" + std::to_string(c.cols) + " group=" + std::to_string(c.group) +
                             (c.asym ? " asym" : " sym");
    const bool zero_scales = seed % 2 == 0;
    const TestWeights t = MakeWeights(c.bits, c.rows, c.cols, c.group, c.asym, c.codes, seed++, zero_scales);
    ASSERT_TRUE(PackedIntFastPathApplies(t.view)) << what;
    for (int64_t n : {1, 2, 5}) CheckCase(t, n, n != 2, seed++, what);
  }
}

TEST(PackedIntGemm, F32Group32IterationEdges) {
  // The fp32-activation group-32 decode kernels run 4 groups (128 columns)
  // per iteration and the leftover groups one at a time: 1..3 groups only
  // (no full iteration), 4 (exactly one), 5..7 and 13 (one to three left
  // over); weight rows not a multiple of the 4- and 2-row tiles; x row counts
  // 1..5 (each x tile width), extreme codes, zero points and zero scales.
  uint64_t seed = 700;
  for (int bits : {4, 8}) {
    for (int64_t groups : {1, 2, 3, 4, 5, 6, 7, 13}) {
      for (bool asym : {false, true}) {
        const Codes codes = (groups + asym) % 3 == 0 ? Codes::kExtreme : (groups % 3 == 1 ? Codes::kMin : Codes::kRandom);
        const bool zero_scales = seed % 4 == 0;
        const TestWeights t = MakeWeights(bits, 7, 32 * groups, 32, asym, codes, seed++, zero_scales);
        const std::string what = "bits=" + std::to_string(bits) + " groups=" + std::to_string(groups) +
                                 (asym ? " asym" : " sym");
        ASSERT_TRUE(PackedIntFastPathApplies(t.view)) << what;
        for (int64_t n : {1, 2, 3, 5}) CheckCase(t, n, n % 2 == 1, seed++, what);
      }
    }
  }
}

TEST(PackedIntGemm, PrefillRowsUseDequantizedGemm) {
  // n >= kPackedIntDequantRows: tiles dequantized to fp32 and the fp32 GEMM.
  const TestWeights t = MakeWeights(4, 70, 256, 128, true, Codes::kRandom, 7);
  CheckCase(t, kPackedIntDequantRows + 3, true, 8, "prefill");
}

TEST(PackedIntGemm, Q8PathApproximatesTheExactProduct) {
  // The int8-activation path quantizes x per group: its error against the
  // exact product is bounded by the activation rounding (|dx| <= a / 2 per
  // element): |err| <= sum_c |w_c| * amax_g / 254 + fp32 rounding.
  const TestWeights t = MakeWeights(4, 64, 512, 128, true, Codes::kRandom, 21);
  const PackedIntWeights& w = t.view;
  const int64_t n = 3;
  const auto x = RandomFloats(n * w.cols, 22, -3.0f, 3.0f);
  std::vector<float> exact(n * w.rows), q8(n * w.rows);
  PackedIntGemmReference(w, x.data(), n, nullptr, exact.data());
  ThreadPool pool(2);
  PackedIntGemmQ8(w, x.data(), n, nullptr, q8.data(), pool);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < w.rows; ++r) {
      double bound = 1e-5;
      for (int64_t g = 0; g < w.groups_per_row; ++g) {
        double amax = 0, wsum = 0;
        for (int64_t c = g * 128; c < (g + 1) * 128; ++c) {
          amax = std::max<double>(amax, std::fabs(x[i * w.cols + c]));
          wsum += std::fabs(PackedIntDequant(w, r, c));
        }
        bound += wsum * amax / 254.0 * 1.001;
      }
      EXPECT_LE(std::fabs(double{q8[i * w.rows + r]} - exact[i * w.rows + r]), bound) << i << "," << r;
    }
  }
}

TEST(PackedIntGemm, QuantizeActivationGroupsRoundsPerGroup) {
  const TestWeights t = MakeWeights(4, 1, 64, 32, false, Codes::kRandom, 3);
  std::vector<float> x(64, 0.0f);
  x[0] = 127.0f;  // group 0 amax: scale 1, so codes are round_half_even(x)
  x[1] = -1.5f;   // -> -2
  x[2] = 0.5f;    // -> 0
  x[3] = 2.5f;    // -> 2
  x[4] = 3.5f;    // -> 4
  // group 1 stays zero: scale 0, codes 0.
  std::vector<int8_t> qa(64);
  std::vector<float> a(2);
  std::vector<int32_t> qsum(2);
  QuantizeActivationGroups(t.view, x.data(), 1, qa.data(), a.data(), qsum.data());
  EXPECT_EQ(a[0], 1.0f);
  EXPECT_EQ(a[1], 0.0f);
  EXPECT_EQ(qa[0], 127);
  EXPECT_EQ(qa[1], -2);
  EXPECT_EQ(qa[2], 0);
  EXPECT_EQ(qa[3], 2);
  EXPECT_EQ(qa[4], 4);
  EXPECT_EQ(qsum[0], 127 - 2 + 2 + 4);
  EXPECT_EQ(qsum[1], 0);
}

}  // namespace
}  // namespace squeeze::kernels
