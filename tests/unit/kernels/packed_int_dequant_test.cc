// The fp32-activation path of packed int4 / int8 layers (issue #9, f32act):
//  * SIMD dequantization (PackedIntDequantizeBlock / Rows) equals the scalar
//    PackedIntDequant bit for bit under every kernel variant, for 4/8 bits,
//    zero points on/off, extreme codes and zero points, odd rows / columns,
//    unaligned column blocks, and layouts without a SIMD version (g_idx,
//    3-bit) that fall back to the scalar loop;
//  * GemmF32NTBlocks (W from fill() blocks) equals GemmF32NT on the
//    materialized matrix bit for bit on the packed path (n > 32);
//  * PackedIntGemm around the decode / prefill crossover (n = 31, 32, 33,
//    64, 65, 130) against the double reference within the stated tolerance,
//    independent of the pool size, and bit-identical to GemmF32NT on the
//    dequantized matrix for n > 32;
//  * decode (n = 1..5) on long rows (11008 columns) and weight-row counts
//    that leave tails of the multi-row kernel.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"
#include "tests/unit/kernels/packed_test_weights.h"
#include "workers/kernels/cpu/gemm_f32.h"
#include "workers/kernels/cpu/packed_int_gemm.h"
#include "workers/methods/quant/packed_int_linear.h"

namespace squeeze::kernels {
namespace {

using testing::AllVariants;
using testing::BitEqual;
using testing::Near;
using testing::RandomFloats;
using testing::Variant;
using testing::VariantScope;

using testing::Codes;
using Weights = testing::PackedTestWeights;

enum class Zeros { kNone, kInRange, kFar };  // kFar: |z| far outside the code range

// Scales in [-0.1, 0.1) with scales[0] = 0 and scales[1] the smallest
// subnormal; in-range zero points at the extremes when the codes are.
Weights Make(int bits, int64_t rows, int64_t cols, int64_t group, Zeros zeros, Codes codes, uint64_t seed,
             bool with_g_idx = false) {
  using testing::ZeroPoints;
  Weights t = testing::MakePackedTestWeights(
      {.bits = bits,
       .rows = rows,
       .cols = cols,
       .group = group,
       .codes = codes,
       .zeros = zeros == Zeros::kNone ? ZeroPoints::kNone
                                      : (zeros == Zeros::kFar ? ZeroPoints::kFar : testing::InRangeZerosLike(codes)),
       .scale_lo = -0.1f,
       .scale_hi = 0.1f,
       .g_idx = with_g_idx},
      seed);
  t.scales[0] = 0.0f;
  if (t.scales.size() > 1) t.scales[1] = std::numeric_limits<float>::denorm_min();
  return t;
}

std::string Describe(const PackedIntWeights& w) {
  return "bits=" + std::to_string(w.num_bits) + " rows=" + std::to_string(w.rows) + " cols=" +
         std::to_string(w.cols) + " group=" + std::to_string(w.group_size) + (w.zero_points ? " zp" : " sym") +
         (w.g_idx ? " g_idx" : "");
}

// Dequantizes block [r0, r1) x [c0, c1) with a row stride wider than the
// block under the active variant and the reference; checks bit equality and
// that nothing outside the block was written.
void CheckBlock(const PackedIntWeights& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  const int64_t ld = c1 - c0 + 5, height = r1 - r0;
  const float sentinel = -12345.0f;
  std::vector<float> got(height * ld, sentinel), want(height * ld, sentinel);
  PackedIntDequantizeBlock(w, r0, r1, c0, c1, got.data(), ld);
  PackedIntDequantizeBlockReference(w, r0, r1, c0, c1, want.data(), ld);
  SCOPED_TRACE("block rows [" + std::to_string(r0) + ", " + std::to_string(r1) + ") cols [" + std::to_string(c0) +
               ", " + std::to_string(c1) + ")");
  EXPECT_TRUE(BitEqual(got, want));
  for (int64_t r = 0; r < height; ++r) {
    for (int64_t c = c1 - c0; c < ld; ++c) ASSERT_EQ(got[r * ld + c], sentinel) << "wrote past the block";
  }
  // The reference itself is PackedIntDequant element by element.
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = c0; c < c1; ++c) {
      const float d = PackedIntDequant(w, r, c);
      ASSERT_EQ(std::memcmp(&want[(r - r0) * ld + (c - c0)], &d, sizeof(float)), 0);
    }
  }
}

TEST(PackedIntDequant, SimdEqualsScalarBitForBit) {
  struct Shape {
    int64_t rows, cols, group;
  };
  const Shape shapes[] = {{3, 32, 32},   {5, 64, 32},     {7, 100, 32},  {2, 31, 31},   {3, 33, 33},
                          {4, 300, 128}, {3, 1100, 32},   {2, 200, 200}, {5, 96, 96},   {3, 4096 + 40, 128},
                          {1, 257, 64},  {2, 1000, 96}};
  uint64_t seed = 1;
  for (const Variant& var : AllVariants()) {
    VariantScope scoped(var);
    for (int bits : {4, 8}) {
      for (const Shape& s : shapes) {
        for (Zeros zeros : {Zeros::kNone, Zeros::kInRange, Zeros::kFar}) {
          for (Codes codes : {Codes::kRandom, Codes::kExtreme, Codes::kMin, Codes::kMax}) {
            const Weights t = Make(bits, s.rows, s.cols, s.group, zeros, codes, seed++);
            const PackedIntWeights& w = t.view;
            SCOPED_TRACE(Describe(w) + " isa=" + var.Name());
            ASSERT_TRUE(PackedIntFastPathApplies(w) || s.group % 32 != 0);
            std::vector<float> rows(w.rows * w.cols), ref(w.rows * w.cols);
            PackedIntDequantizeRows(w, 0, w.rows, rows.data());
            PackedIntDequantizeRowsReference(w, 0, w.rows, ref.data());
            EXPECT_TRUE(BitEqual(rows, ref));
            CheckBlock(w, 0, w.rows, 0, w.cols);
            CheckBlock(w, w.rows / 2, w.rows, std::min<int64_t>(5, w.cols - 1), w.cols - std::min<int64_t>(3, w.cols / 2));
            if (w.cols > 64) CheckBlock(w, 0, 1, 32, std::min<int64_t>(w.cols, 288));
          }
        }
      }
    }
  }
}

TEST(PackedIntDequant, LayoutsWithoutSimdFallBackToTheScalarLoop) {
  uint64_t seed = 50;
  for (const Variant& var : AllVariants()) {
    VariantScope scoped(var);
    const Weights gi = Make(4, 5, 256, 64, Zeros::kInRange, Codes::kRandom, seed++, /*g_idx=*/true);
    const Weights b3 = Make(3, 4, 100, 32, Zeros::kInRange, Codes::kRandom, seed++);
    const Weights b2 = Make(2, 3, 70, 70, Zeros::kNone, Codes::kExtreme, seed++);
    const Weights odd = Make(8, 3, 130, 50, Zeros::kInRange, Codes::kRandom, seed++);  // group not 32k
    for (const Weights* t : {&gi, &b3, &b2, &odd}) {
      SCOPED_TRACE(Describe(t->view) + " isa=" + var.Name());
      EXPECT_FALSE(PackedIntFastPathApplies(t->view));
      CheckBlock(t->view, 0, t->view.rows, 0, t->view.cols);
      CheckBlock(t->view, 1, t->view.rows, 3, t->view.cols - 1);
    }
  }
}

struct MatrixFill {
  const float* w;
  int64_t k;
  mutable int64_t calls = 0;
  static void Fill(const void* ctx, int64_t j0, int64_t nr, int64_t k0, int64_t kc, float* dst) {
    const auto* f = static_cast<const MatrixFill*>(ctx);
    EXPECT_LE(nr, kGemmF32BlockRows);
    EXPECT_LE(kc, kGemmF32BlockCols);
    EXPECT_EQ(k0 % kGemmF32BlockCols, 0);
    for (int64_t jj = 0; jj < nr; ++jj) std::memcpy(dst + jj * kc, f->w + (j0 + jj) * f->k + k0, sizeof(float) * kc);
  }
};

TEST(GemmF32Blocks, EqualsTheMatrixGemmOnThePackedPath) {
  struct Shape {
    int64_t n, k, m;
  };
  const Shape shapes[] = {{33, 256, 64}, {40, 300, 70}, {65, 513, 33}, {130, 100, 300}, {1, 77, 5}, {7, 260, 40},
                          {32, 512, 96}, {3, 0, 9}};
  uint64_t seed = 70;
  ThreadPool pool(3), one(1);
  for (const Variant& var : AllVariants()) {
    VariantScope scoped(var);
    for (const Shape& s : shapes) {
      SCOPED_TRACE("n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) + " m=" + std::to_string(s.m) +
                   " isa=" + var.Name());
      const auto x = RandomFloats(s.n * s.k, seed++), w = RandomFloats(s.m * s.k, seed++);
      const MatrixFill fill{w.data(), s.k};
      GemmF32WBlocks blocks;
      blocks.fill = &MatrixFill::Fill;
      blocks.ctx = &fill;
      std::vector<float> got(s.n * s.m, 7.0f), got1(s.n * s.m, -7.0f), want(s.n * s.m);
      GemmF32NTBlocks(x.data(), s.n, s.k, blocks, s.m, got.data(), pool);
      GemmF32NTBlocks(x.data(), s.n, s.k, blocks, s.m, got1.data(), one);
      EXPECT_TRUE(BitEqual(got, got1));
      GemmF32NT(x.data(), s.n, s.k, w.data(), s.m, want.data(), pool);
      if (s.n > 32 && var.isa != KernelIsa::kReference) {
        EXPECT_TRUE(BitEqual(got, want));  // the same packed path, the same sums
      } else {
        std::vector<double> mag(s.n * s.m, 0.0);
        for (int64_t i = 0; i < s.n; ++i) {
          for (int64_t j = 0; j < s.m; ++j) {
            for (int64_t c = 0; c < s.k; ++c) mag[i * s.m + j] += std::fabs(double{x[i * s.k + c]} * w[j * s.k + c]);
          }
        }
        EXPECT_TRUE(Near(got, want, mag, 2e-5));
      }
    }
  }
}

std::vector<double> Magnitudes(const PackedIntWeights& w, const std::vector<float>& x, int64_t n,
                               const float* bias) {
  std::vector<float> dense(w.rows * w.cols);
  PackedIntDequantizeRowsReference(w, 0, w.rows, dense.data());
  std::vector<double> mag(n * w.rows);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < w.rows; ++r) {
      double s = bias != nullptr ? std::fabs(bias[r]) : 0.0;
      for (int64_t c = 0; c < w.cols; ++c) s += std::fabs(double{x[i * w.cols + c]} * dense[r * w.cols + c]);
      mag[i * w.rows + r] = s;
    }
  }
  return mag;
}

// PackedIntGemm under every variant vs the double reference (stated
// tolerance), pool sizes 1 / 2 / 3 bit-equal; with no bias and n > 32 on a
// SIMD variant also bit-equal to GemmF32NT on the dequantized matrix.
void CheckGemm(const PackedIntWeights& w, int64_t n, bool with_bias, uint64_t seed) {
  auto x = RandomFloats(n * w.cols, seed, -2.0f, 2.0f);
  if (n > 2) std::fill(x.begin() + w.cols, x.begin() + 2 * w.cols, 0.0f);  // an all-zero row
  const auto bias_v = RandomFloats(w.rows, seed + 1);
  const float* bias = with_bias ? bias_v.data() : nullptr;
  std::vector<float> ref(n * w.rows), dense(w.rows * w.cols), f32(n * w.rows);
  PackedIntGemmReference(w, x.data(), n, bias, ref.data());
  PackedIntDequantizeRowsReference(w, 0, w.rows, dense.data());
  const auto mag = Magnitudes(w, x, n, bias);
  ThreadPool p1(1), p2(2), p3(3);
  for (const Variant& var : AllVariants()) {
    VariantScope scoped(var);
    SCOPED_TRACE(Describe(w) + " n=" + std::to_string(n) + (with_bias ? " bias" : "") + " isa=" + var.Name());
    std::vector<float> y1(n * w.rows, 1.0f), y2(n * w.rows, 2.0f), y3(n * w.rows, 3.0f);
    PackedIntGemm(w, x.data(), n, bias, y1.data(), p1);
    PackedIntGemm(w, x.data(), n, bias, y2.data(), p2);
    PackedIntGemm(w, x.data(), n, bias, y3.data(), p3);
    EXPECT_TRUE(Near(y1, ref, mag, 1e-5));
    EXPECT_TRUE(BitEqual(y1, y2));
    EXPECT_TRUE(BitEqual(y1, y3));
    if (!with_bias && n > 32 && var.isa != KernelIsa::kReference) {
      GemmF32NT(x.data(), n, w.cols, dense.data(), w.rows, f32.data(), p2);
      EXPECT_TRUE(BitEqual(y1, f32)) << "prefill differs from the fp32 GEMM on the dequantized matrix";
    }
  }
}

TEST(PackedIntGemmF32, RowsAroundTheDecodePrefillCrossover) {
  struct Layout {
    int bits;
    int64_t rows, cols, group;
    Zeros zeros;
  };
  const Layout layouts[] = {{4, 37, 288, 32, Zeros::kInRange}, {8, 35, 300, 128, Zeros::kNone},
                            {4, 33, 520, 520, Zeros::kInRange}, {8, 34, 96, 32, Zeros::kFar}};
  uint64_t seed = 90;
  for (const Layout& l : layouts) {
    const Weights t = Make(l.bits, l.rows, l.cols, l.group, l.zeros, Codes::kRandom, seed++);
    for (int64_t n : {31, 32, 33, 64, 65, 130}) CheckGemm(t.view, n, n % 2 == 1, seed++);
  }
  // No SIMD version (g_idx, 3-bit): the scalar dequantization feeds the same GEMM.
  const Weights gi = Make(4, 19, 256, 64, Zeros::kInRange, Codes::kRandom, seed++, /*g_idx=*/true);
  CheckGemm(gi.view, 33, true, seed++);
  const Weights b3 = Make(3, 9, 100, 32, Zeros::kInRange, Codes::kExtreme, seed++);
  CheckGemm(b3.view, 40, false, seed++);
}

TEST(PackedIntGemmF32, DecodeOnLongRowsAndRowTails) {
  uint64_t seed = 120;
  for (int bits : {4, 8}) {
    for (int64_t group : {32, 128}) {
      const Weights t = Make(bits, 7, 11008, group, Zeros::kInRange, Codes::kRandom, seed++);
      for (int64_t n : {1, 2, 5}) CheckGemm(t.view, n, n != 2, seed++);
    }
    for (int64_t rows : {1, 3, 5, 6}) {
      const Weights t = Make(bits, rows, 4096 + 40, 64, Zeros::kFar, Codes::kExtreme, seed++);
      for (int64_t n : {1, 3}) CheckGemm(t.view, n, true, seed++);
    }
  }
}

}  // namespace
}  // namespace squeeze::kernels
