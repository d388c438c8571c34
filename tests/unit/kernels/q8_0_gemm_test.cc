// Q4_0 / Q8_0 block GEMV/GEMM (q8_0_gemm.h): every variant bit-identical to
// the plain reference on random and adversarial blocks and shapes (odd block
// counts, row and token tails, tiles > 64 tokens), for several pool sizes;
// the reference against an independent double-precision product of the
// dequantized operands; the block decoding against ggml_blocks.h.
#include "workers/kernels/cpu/q8_0_gemm.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"
#include "workers/engine/core/half.h"
#include "workers/engine/formats/ggml_blocks.h"

namespace squeeze::kernels {
namespace {

using testing::AllVariants;
using testing::BitEqual;
using testing::RandomFloats;
using testing::Variant;
using testing::VariantScope;

enum class Fill { kRandom, kExtreme, kZeroScales };

// Random block bytes: scales fp16 in +-[0.001, 0.5] (a third zero with
// kZeroScales), codes uniform over every byte / nibble, or only the extremes
// (-128 / 127, nibbles 0 / 15).
std::vector<uint8_t> MakeBlocks(GgmlBlockKind kind, int64_t rows, int64_t cols, Fill fill, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> mag(0.001f, 0.5f);
  std::uniform_int_distribution<int> byte(0, 255), coin(0, 1);
  const int64_t bb = GgmlBlockBytes(kind), nb = cols / kGgmlBlockCols;
  std::vector<uint8_t> out(static_cast<size_t>(rows * nb * bb));
  for (int64_t blk = 0; blk < rows * nb; ++blk) {
    uint8_t* p = out.data() + blk * bb;
    float d = mag(rng) * (coin(rng) ? 1.0f : -1.0f);
    if (fill == Fill::kZeroScales && blk % 3 == 0) d = 0.0f;
    const uint16_t h = FloatToF16(d);
    p[0] = static_cast<uint8_t>(h & 0xff);
    p[1] = static_cast<uint8_t>(h >> 8);
    for (int64_t i = 2; i < bb; ++i) {
      if (fill == Fill::kExtreme) {
        p[i] = kind == GgmlBlockKind::kQ8_0 ? (coin(rng) ? 0x80 : 0x7f)
                                            : static_cast<uint8_t>((coin(rng) ? 0x0 : 0xf) | (coin(rng) ? 0x0 : 0xf0));
      } else {
        p[i] = static_cast<uint8_t>(byte(rng));
      }
    }
  }
  return out;
}

// Activations: random, with an all-zero row 1 and a row 2 of +-amax only
// (every code +-127) when there are enough rows.
std::vector<float> MakeActivations(int64_t n, int64_t cols, uint64_t seed) {
  std::vector<float> x = RandomFloats(static_cast<size_t>(n * cols), seed, -3.0f, 3.0f);
  if (n > 1) std::fill(x.begin() + cols, x.begin() + 2 * cols, 0.0f);
  if (n > 2) {
    for (int64_t c = 0; c < cols; ++c) x[2 * cols + c] = (c % 3 == 0) ? -2.5f : 2.5f;
  }
  return x;
}

void ExpectAllVariantsEqualReference(GgmlBlockKind kind, int64_t rows, int64_t cols, int64_t n, Fill fill,
                                     uint64_t seed, bool with_bias) {
  const std::vector<uint8_t> blocks = MakeBlocks(kind, rows, cols, fill, seed);
  const GgmlBlockWeights w{kind, rows, cols, blocks.data()};
  const std::vector<float> x = MakeActivations(n, cols, seed + 7);
  const std::vector<float> bias = RandomFloats(static_cast<size_t>(rows), seed + 9);
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> want(static_cast<size_t>(n * rows));
  GgmlBlockGemmReference(w, x.data(), n, b, want.data());
  for (const Variant& v : AllVariants()) {
    VariantScope scope(v);
    for (int threads : {1, 3}) {
      ThreadPool pool(threads);
      std::vector<float> got(want.size(), -1.0f);
      GgmlBlockGemm(w, x.data(), n, b, got.data(), pool);
      EXPECT_TRUE(BitEqual(got, want)) << (kind == GgmlBlockKind::kQ4_0 ? "Q4_0" : "Q8_0") << " " << v.Name()
                                       << " threads " << threads << " rows " << rows << " cols " << cols << " n "
                                       << n;
    }
  }
}

TEST(GgmlBlockGemm, RandomShapesBitEqualReference) {
  uint64_t seed = 1;
  for (GgmlBlockKind kind : {GgmlBlockKind::kQ4_0, GgmlBlockKind::kQ8_0}) {
    // cols: one block, an odd number of blocks (the 256-bit tail), even.
    for (int64_t cols : {32, 96, 160, 512}) {
      for (int64_t rows : {1, 3, 17, 38}) {
        for (int64_t n : {1, 2, 5, 9}) ExpectAllVariantsEqualReference(kind, rows, cols, n, Fill::kRandom, ++seed, n % 2);
      }
    }
  }
}

TEST(GgmlBlockGemm, AdversarialBlocksAndLongTokenTiles) {
  uint64_t seed = 100;
  for (GgmlBlockKind kind : {GgmlBlockKind::kQ4_0, GgmlBlockKind::kQ8_0}) {
    for (Fill fill : {Fill::kExtreme, Fill::kZeroScales}) {
      ExpectAllVariantsEqualReference(kind, 21, 224, 7, fill, ++seed, true);
    }
    // More tokens than one 64-token tile, with a token tail.
    ExpectAllVariantsEqualReference(kind, 19, 128, 70, Fill::kRandom, ++seed, false);
  }
}

// The reference computes the product of the dequantized operands: the
// double-precision sum of d_w q_w * da qa differs only by fp32 rounding.
TEST(GgmlBlockGemm, ReferenceIsTheProductOfTheDequantizedOperands) {
  for (GgmlBlockKind kind : {GgmlBlockKind::kQ4_0, GgmlBlockKind::kQ8_0}) {
    const int64_t rows = 9, cols = 320, n = 3;
    const std::vector<uint8_t> blocks = MakeBlocks(kind, rows, cols, Fill::kRandom, 5);
    const GgmlBlockWeights w{kind, rows, cols, blocks.data()};
    const std::vector<float> x = RandomFloats(static_cast<size_t>(n * cols), 6, -2.0f, 2.0f);
    std::vector<float> y(static_cast<size_t>(n * rows)), wd(static_cast<size_t>(rows * cols));
    GgmlBlockGemmReference(w, x.data(), n, nullptr, y.data());
    GgmlBlockDequantizeRows(w, 0, rows, wd.data());
    Q8_0Activations a;
    QuantizeActivationsQ8_0(x.data(), n, cols, &a);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t r = 0; r < rows; ++r) {
        double exact = 0.0, mag = 0.0, fp32 = 0.0, amag = 0.0;
        for (int64_t c = 0; c < cols; ++c) {
          const double xa = double{a.da[i * (cols / 32) + c / 32]} * a.qa[i * cols + c];
          exact += double{wd[r * cols + c]} * xa;
          mag += std::fabs(double{wd[r * cols + c]} * xa);
          fp32 += double{wd[r * cols + c]} * x[i * cols + c];
          amag += std::fabs(double{wd[r * cols + c]}) * a.da[i * (cols / 32) + c / 32];
        }
        EXPECT_NEAR(y[i * rows + r], exact, 1e-6 * mag + 1e-6) << i << "," << r;
        // Activation rounding: |x - da qa| <= da / 2 (+ the fp16 rounding of da).
        EXPECT_NEAR(y[i * rows + r], fp32, 0.51 * amag + 1e-3 * mag + 1e-5) << i << "," << r;
      }
    }
  }
}

TEST(GgmlBlockGemm, DecodingMatchesGgmlBlocks) {
  const int64_t rows = 4, cols = 128;
  for (GgmlBlockKind kind : {GgmlBlockKind::kQ4_0, GgmlBlockKind::kQ8_0}) {
    const std::vector<uint8_t> blocks = MakeBlocks(kind, rows, cols, Fill::kRandom, 11);
    const GgmlBlockWeights w{kind, rows, cols, blocks.data()};
    std::vector<float> ours(static_cast<size_t>(rows * cols)), theirs(ours.size());
    GgmlBlockDequantizeRows(w, 0, rows, ours.data());
    const GgmlType type = kind == GgmlBlockKind::kQ4_0 ? GgmlType::kQ4_0 : GgmlType::kQ8_0;
    for (int64_t r = 0; r < rows; ++r) {
      DequantizeRow(type, blocks.data() + r * w.RowBytes(), cols, theirs.data() + r * cols);
    }
    EXPECT_TRUE(BitEqual(ours, theirs));
  }
}

TEST(GgmlBlockGemm, ActivationQuantizationFollowsQ8_0) {
  const int64_t cols = 64;
  std::vector<float> x = RandomFloats(cols, 3, -4.0f, 4.0f);
  std::fill(x.begin() + 32, x.end(), 0.0f);  // an all-zero block
  x[5] = 6.0f;                               // the block's amax
  Q8_0Activations a;
  QuantizeActivationsQ8_0(x.data(), 1, cols, &a);
  EXPECT_EQ(a.qa[5], 127);
  EXPECT_EQ(a.da[0], F16ToFloat(FloatToF16(6.0f / 127.0f)));
  EXPECT_EQ(a.da[1], 0.0f);
  for (int64_t c = 0; c < 32; ++c) {
    EXPECT_LE(std::fabs(x[c] - a.qa[c] * (6.0f / 127.0f)), 0.5f * 6.0f / 127.0f + 1e-6f) << c;
  }
  for (int64_t c = 32; c < cols; ++c) EXPECT_EQ(a.qa[c], 0);
  for (int64_t k = 0; k < cols / 4; ++k) {
    EXPECT_EQ(a.quad_sums[k], a.qa[4 * k] + a.qa[4 * k + 1] + a.qa[4 * k + 2] + a.qa[4 * k + 3]);
  }
}

}  // namespace
}  // namespace squeeze::kernels
