// Q4_0 / Q8_0 block GEMV/GEMM (q8_0_gemm.h): every variant bit-identical to
// the plain reference on random and adversarial blocks and shapes (odd block
// counts, row and token tails, tiles > 64 tokens), for several pool sizes;
// the reference against an independent double-precision product of the
// dequantized operands; the block decoding against ggml_blocks.h.
#include "workers/kernels/cpu/q8_0_gemm.h"

#include <cmath>
#include <cstring>
#include <string>
#include <random>

#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"
#include "workers/engine/core/half.h"
#include "workers/engine/formats/ggml_blocks.h"
#include "workers/kernels/cpu/q8_0_gemm_panel.h"

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
    for (int threads : {1, 2, 3}) {
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
    // cols: one block, an odd number of blocks (the 256-bit tail), even, and
    // 16 blocks then a partial chunk of 9 (the decode kernel's 4-row chain).
    for (int64_t cols : {32, 96, 160, 512, 800}) {
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

// The chain definition of q8_0_gemm.h written out independently from the raw
// block bytes (codes decoded here, not through GgmlBlockCode): per output,
// acc = fma(fp32(p_b), fp32(d_w) * da, acc) over blocks in order, + bias.
std::vector<float> ChainFromBytes(GgmlBlockKind kind, const std::vector<uint8_t>& blocks, int64_t rows,
                                  int64_t cols, const Q8_0Activations& a, const float* bias) {
  const int64_t bb = GgmlBlockBytes(kind), nb = cols / 32;
  std::vector<float> y(static_cast<size_t>(a.n * rows));
  for (int64_t i = 0; i < a.n; ++i) {
    for (int64_t r = 0; r < rows; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = blocks.data() + (r * nb + b) * bb;
        int32_t p = 0;
        for (int c = 0; c < 32; ++c) {
          const int32_t q = kind == GgmlBlockKind::kQ8_0 ? static_cast<int8_t>(blk[2 + c])
                                                        : ((c < 16 ? blk[2 + c] & 0xF : blk[2 + c - 16] >> 4) - 8);
          p += q * a.qa[i * cols + 32 * b + c];
        }
        const float dw = F16ToFloat(static_cast<uint16_t>(blk[0] | (blk[1] << 8)));
        acc = std::fma(static_cast<float>(p), dw * a.da[i * nb + b], acc);
      }
      y[i * rows + r] = bias != nullptr ? acc + bias[r] : acc;
    }
  }
  return y;
}

TEST(GgmlBlockGemm, ReferenceIsTheBlockChain) {
  uint64_t seed = 300;
  for (GgmlBlockKind kind : {GgmlBlockKind::kQ4_0, GgmlBlockKind::kQ8_0}) {
    for (Fill fill : {Fill::kRandom, Fill::kExtreme, Fill::kZeroScales}) {
      const int64_t rows = 7, cols = 800, n = 4;  // 25 blocks
      const std::vector<uint8_t> blocks = MakeBlocks(kind, rows, cols, fill, ++seed);
      const GgmlBlockWeights w{kind, rows, cols, blocks.data()};
      const std::vector<float> x = MakeActivations(n, cols, seed + 1);
      const std::vector<float> bias = RandomFloats(static_cast<size_t>(rows), seed + 2);
      Q8_0Activations a;
      QuantizeActivationsQ8_0(x.data(), n, cols, &a);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t b = 0; b < cols / 32; ++b) {
          int32_t s = 0;
          for (int c = 0; c < 32; ++c) s += a.qa[i * cols + 32 * b + c];
          ASSERT_EQ(a.block_sums[i * (cols / 32) + b], s) << i << "," << b;
        }
      }
      for (const float* b : {static_cast<const float*>(nullptr), bias.data()}) {
        std::vector<float> got(static_cast<size_t>(n * rows));
        GgmlBlockGemmReference(w, x.data(), n, b, got.data());
        EXPECT_TRUE(BitEqual(got, ChainFromBytes(kind, blocks, rows, cols, a, b)));
      }
    }
  }
}

// Scales at the fp16 extremes: 0, -0, the smallest subnormal, the largest
// subnormal, the largest finite (65504), and their negatives, with extreme
// codes, against activations with an all-zero row and +-amax rows.
std::vector<uint8_t> MakeEdgeScaleBlocks(GgmlBlockKind kind, int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<uint8_t> out = MakeBlocks(kind, rows, cols, Fill::kExtreme, seed);
  const uint16_t edges[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x83ff, 0x7bff, 0xfbff, 0x3c00, 0x0400};
  const int64_t bb = GgmlBlockBytes(kind), nb = rows * (cols / 32);
  std::mt19937_64 rng(seed);
  for (int64_t blk = 0; blk < nb; ++blk) {
    const uint16_t h = edges[rng() % (sizeof(edges) / sizeof(edges[0]))];
    out[blk * bb] = static_cast<uint8_t>(h & 0xff);
    out[blk * bb + 1] = static_cast<uint8_t>(h >> 8);
  }
  return out;
}

// Every variant and pool size (1, 2, 3) equal to the reference on the
// shapes of q8_0_gemm.h's tiers: decode (n 1..9) and prefill (16, 17, 64
// tokens), row counts around the 4-row and 16-row blocks, and columns from
// one block to 129 blocks (odd counts, 16-block chunks and their tails).
TEST(GgmlBlockGemm, EveryVariantAndPoolEqualsTheChainOnTierShapes) {
  uint64_t seed = 500;
  const int64_t col_list[] = {32, 64, 96, 480, 512, 544, 1056, 4128};
  const int64_t row_list[] = {1, 3, 15, 17, 40};
  const int64_t n_list[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 64};
  int k = 0;
  for (GgmlBlockKind kind : {GgmlBlockKind::kQ4_0, GgmlBlockKind::kQ8_0}) {
    for (int64_t cols : col_list) {
      for (int64_t rows : row_list) {
        // A rotating subset of n per (cols, rows) keeps the test fast while
        // every n meets every cols and every rows value.
        for (int t = 0; t < 3; ++t) {
          const int64_t n = n_list[(k++) % 12];
          if (cols >= 4128 && n > 17) continue;
          const Fill fill = (k % 3 == 0) ? Fill::kExtreme : ((k % 3 == 1) ? Fill::kZeroScales : Fill::kRandom);
          ExpectAllVariantsEqualReference(kind, rows, cols, n, fill, ++seed, k % 2 == 0);
        }
      }
    }
  }
}

TEST(GgmlBlockGemm, EdgeScalesAndZeroActivationRowsBitEqualReference) {
  uint64_t seed = 900;
  for (GgmlBlockKind kind : {GgmlBlockKind::kQ4_0, GgmlBlockKind::kQ8_0}) {
    for (int64_t n : {1, 3, 17}) {
      for (int64_t cols : {544, 1056}) {
        const int64_t rows = 17;
        const std::vector<uint8_t> blocks = MakeEdgeScaleBlocks(kind, rows, cols, ++seed);
        const GgmlBlockWeights w{kind, rows, cols, blocks.data()};
        std::vector<float> x = MakeActivations(n, cols, seed + 3);
        std::fill(x.begin(), x.begin() + cols, 0.0f);  // row 0 all zero too (the decode path's first row)
        std::vector<float> want(static_cast<size_t>(n * rows));
        GgmlBlockGemmReference(w, x.data(), n, nullptr, want.data());
        for (const Variant& v : AllVariants()) {
          VariantScope scope(v);
          for (int threads : {1, 2, 3}) {
            ThreadPool pool(threads);
            std::vector<float> got(want.size(), -1.0f);
            GgmlBlockGemm(w, x.data(), n, nullptr, got.data(), pool);
            EXPECT_TRUE(BitEqual(got, want)) << v.Name() << " threads " << threads << " n " << n << " cols " << cols;
          }
        }
        // All-zero activation rows give +0 exactly (the chain starts at +0).
        for (int64_t r = 0; r < rows; ++r) {
          EXPECT_EQ(want[r], 0.0f);
          EXPECT_FALSE(std::signbit(want[r])) << r;
        }
      }
    }
  }
}

// The AVX-512 panel repacker writes the reference's bytes (codes, scales,
// zero lanes past the last row) for full and ragged panels.
TEST(GgmlBlockPanel, RepackerWritesTheReferenceBytes) {
  uint64_t seed = 1200;
  for (GgmlBlockKind kind : {GgmlBlockKind::kQ4_0, GgmlBlockKind::kQ8_0}) {
    for (Fill fill : {Fill::kRandom, Fill::kExtreme}) {
      for (int64_t rows : {1, 3, 15, 16, 17, 40}) {
        const int64_t cols = 288;  // 9 blocks
        const std::vector<uint8_t> blocks = kind == GgmlBlockKind::kQ4_0 && fill == Fill::kExtreme
                                                ? MakeEdgeScaleBlocks(kind, rows, cols, ++seed)
                                                : MakeBlocks(kind, rows, cols, fill, ++seed);
        const GgmlBlockWeights w{kind, rows, cols, blocks.data()};
        for (int64_t r0 = 0; r0 < rows; r0 += kPanelRows) {
          Int8PanelBuffers ref_buf, buf;
          Int8Panel ref, got;
          RepackGgmlBlockPanelReference(w, r0, &ref_buf, &ref);
          for (const Variant& v : AllVariants()) {
            VariantScope scope(v);
            RepackGgmlBlockPanel(w, r0, &buf, &got);
            const std::string where = v.Name() + " rows " + std::to_string(rows) + " r0 " + std::to_string(r0);
            EXPECT_EQ(got.rows, ref.rows) << where;
            EXPECT_EQ(got.chunks, 9) << where;
            EXPECT_EQ(got.groups, 9) << where;
            EXPECT_EQ(got.chunks_per_group, 1) << where;
            EXPECT_EQ(got.zo_const, kind == GgmlBlockKind::kQ4_0 ? 8 : 128) << where;
            EXPECT_EQ(got.zo, nullptr) << where;
            EXPECT_EQ(std::memcmp(got.codes, ref.codes, 9 * kPanelChunkBytes), 0) << where;
            EXPECT_EQ(std::memcmp(got.scales, ref.scales, 9 * kPanelRows * sizeof(float)), 0) << where;
          }
          // The reference's codes are u = w_q + zo in the panel's [block][quad][lane][4] order.
          for (int64_t l = 0; l < ref.rows; ++l) {
            for (int64_t c = 0; c < cols; ++c) {
              const int64_t b = c / 32, j = (c % 32) / 4, t = c % 4;
              ASSERT_EQ(int32_t{ref.codes[((b * kPanelQuads + j) * kPanelRows + l) * 4 + t]} - ref.zo_const,
                        GgmlBlockCode(w, r0 + l, c));
            }
          }
        }
      }
    }
  }
}

// Both paths of GgmlBlockGemmQ8 at every n: the panel path forced from one
// activation row and the row kernels forced for every n, each equal to the
// reference for every variant and pool size.
TEST(GgmlBlockPanel, PanelAndRowPathsEqualTheReferenceAtEveryN) {
  uint64_t seed = 1500;
  for (GgmlBlockKind kind : {GgmlBlockKind::kQ4_0, GgmlBlockKind::kQ8_0}) {
    for (int64_t n : {1, 2, 3, 4, 5, 8, 13}) {
      for (int64_t rows : {3, 17, 40}) {
        const int64_t cols = n % 2 == 0 ? 544 : 1056;
        const std::vector<uint8_t> blocks = MakeBlocks(kind, rows, cols, n % 3 == 0 ? Fill::kExtreme : Fill::kRandom, ++seed);
        const GgmlBlockWeights w{kind, rows, cols, blocks.data()};
        const std::vector<float> x = MakeActivations(n, cols, seed + 1);
        const std::vector<float> bias = RandomFloats(static_cast<size_t>(rows), seed + 2);
        std::vector<float> want(static_cast<size_t>(n * rows));
        GgmlBlockGemmReference(w, x.data(), n, bias.data(), want.data());
        Q8_0Activations a;
        QuantizeActivationsQ8_0(x.data(), n, cols, &a);
        for (const Variant& v : AllVariants()) {
          VariantScope scope(v);
          for (int threads : {1, 2, 3}) {
            ThreadPool pool(threads);
            for (int64_t min_rows : {int64_t{1}, int64_t{1} << 40}) {
              std::vector<float> got(want.size(), -1.0f);
              internal::GgmlBlockGemmQ8WithPanelRows(w, a, bias.data(), got.data(), pool, min_rows);
              EXPECT_TRUE(BitEqual(got, want)) << v.Name() << " threads " << threads << " n " << n << " rows " << rows
                                               << (min_rows == 1 ? " panels" : " row kernels");
            }
          }
        }
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
  for (int64_t b = 0; b < cols / 32; ++b) {
    int32_t sum = 0;
    for (int64_t c = 0; c < 32; ++c) sum += a.qa[32 * b + c];
    EXPECT_EQ(a.block_sums[b], sum) << b;
  }
}

}  // namespace
}  // namespace squeeze::kernels
