// ggml block layouts (formats/ggml_blocks.h): sizes, byte layout of
// hand-built blocks, exact dequantization, and round-trip error bounds.
#include "workers/engine/formats/ggml_blocks.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

#include "tests/unit/formats/test_util.h"
#include "workers/engine/core/half.h"

namespace squeeze {
namespace {

using testing_util::RandomFloats;

TEST(GgmlBlocksTest, BlockSizesAndFieldOffsetsMatchTheSpecification) {
  EXPECT_EQ(sizeof(BlockQ8_0), 34u);
  EXPECT_EQ(sizeof(BlockQ4_0), 18u);
  EXPECT_EQ(sizeof(BlockQ4_1), 20u);
  EXPECT_EQ(sizeof(BlockQ4_K), 144u);
  EXPECT_EQ(sizeof(BlockQ6_K), 210u);
  EXPECT_EQ(offsetof(BlockQ4_1, m), 2u);
  EXPECT_EQ(offsetof(BlockQ4_1, qs), 4u);
  EXPECT_EQ(offsetof(BlockQ4_K, scales), 4u);
  EXPECT_EQ(offsetof(BlockQ4_K, qs), 16u);
  EXPECT_EQ(offsetof(BlockQ6_K, qh), 128u);
  EXPECT_EQ(offsetof(BlockQ6_K, scales), 192u);
  EXPECT_EQ(offsetof(BlockQ6_K, d), 208u);
  EXPECT_EQ(static_cast<uint32_t>(GgmlType::kQ4_0), 2u);
  EXPECT_EQ(static_cast<uint32_t>(GgmlType::kQ8_0), 8u);
  EXPECT_EQ(static_cast<uint32_t>(GgmlType::kQ4_K), 12u);
  EXPECT_EQ(static_cast<uint32_t>(GgmlType::kQ6_K), 14u);
  EXPECT_EQ(*GgmlRowBytes(GgmlType::kQ4_K, 512), 288);
  EXPECT_EQ(*GgmlRowBytes(GgmlType::kF16, 172), 344);
  EXPECT_FALSE(GgmlRowBytes(GgmlType::kQ4_0, 172).ok());
  EXPECT_FALSE(GgmlRowBytes(GgmlType::kQ6_K, 64).ok());
}

TEST(GgmlBlocksTest, TypeNamesParseAndUnsupportedIdsAreNamed) {
  EXPECT_EQ(*ParseGgmlTypeName("q4_k"), GgmlType::kQ4_K);
  EXPECT_EQ(*ParseGgmlTypeName("F16"), GgmlType::kF16);
  EXPECT_FALSE(ParseGgmlTypeName("Q5_0").ok());
  const absl::Status s = GgmlTypeInfoOf(13).status();
  EXPECT_NE(s.message().find("Q5_K (13)"), std::string::npos) << s;
  EXPECT_NE(GgmlTypeInfoOf(999).status().message().find("unknown ggml type id 999"), std::string::npos);
}

TEST(GgmlBlocksTest, HandBuiltQ4_0BlockDequantizesExactly) {
  // Bytes as a file holds them: fp16 d = 0.5 (0x3800), then nibbles.
  uint8_t raw[18] = {0x00, 0x38};
  for (int i = 0; i < 16; ++i) raw[2 + i] = static_cast<uint8_t>((i & 0xF) | ((15 - i) << 4));
  float y[32];
  DequantizeRow(GgmlType::kQ4_0, raw, 32, y);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(y[i], 0.5f * (i - 8)) << i;
    EXPECT_EQ(y[i + 16], 0.5f * (15 - i - 8)) << i;
  }
}

TEST(GgmlBlocksTest, HandBuiltQ4_1AndQ8_0BlocksDequantizeExactly) {
  uint8_t q41[20] = {0x00, 0x3C, 0x00, 0xC0};  // d = 1, m = -2
  for (int i = 0; i < 16; ++i) q41[4 + i] = static_cast<uint8_t>(i | (3 << 4));
  float y[32];
  DequantizeRow(GgmlType::kQ4_1, q41, 32, y);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(y[i], i - 2.0f);
    EXPECT_EQ(y[i + 16], 1.0f);
  }
  uint8_t q80[34] = {0x00, 0x34};  // d = 0.25
  for (int i = 0; i < 32; ++i) q80[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(i * 8 - 128));
  DequantizeRow(GgmlType::kQ8_0, q80, 32, y);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 0.25f * (i * 8 - 128));
}

TEST(GgmlBlocksTest, HandBuiltQ4_KBlockDequantizesExactly) {
  BlockQ4_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = FloatToF16(0.5f);
  b.dmin = FloatToF16(0.25f);
  // Sub-block j: scale 1 + j (j < 4 direct; j >= 4 uses the split layout),
  // min 60 - j, both 6-bit.
  uint8_t sc[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>(j < 4 ? 1 + j : 40 + j);  // > 15 exercises the top 2 bits
    mn[j] = static_cast<uint8_t>(60 - j);
  }
  for (int j = 0; j < 4; ++j) {
    b.scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    b.scales[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    b.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    ScaleMinK4(j, b.scales, &s, &m);
    EXPECT_EQ(s, sc[j]);
    EXPECT_EQ(m, mn[j]);
  }
  // Value index v: chunk c = v / 64, sub-block 2c (low nibble) or 2c+1 (high).
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) b.qs[32 * c + l] = static_cast<uint8_t>((l % 16) | ((15 - l % 16) << 4));
  }
  std::vector<float> y(256);
  DequantizeRowQ4_K(&b, 256, y.data());
  for (int v = 0; v < 256; ++v) {
    const int j = v / 32, l = v % 32;
    const int q = (j % 2 == 0) ? l % 16 : 15 - l % 16;
    EXPECT_EQ(y[v], 0.5f * sc[j] * q - 0.25f * mn[j]) << v;
  }
}

TEST(GgmlBlocksTest, HandBuiltQ6_KBlockDequantizesExactly) {
  BlockQ6_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = FloatToF16(0.125f);
  for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(j - 8);
  // Code of value v: (v * 7) % 64. Place it by the documented layout.
  auto code = [](int v) { return (v * 7) % 64; };
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const int base = 128 * h;
      const int q0 = code(base + l), q1 = code(base + l + 32), q2 = code(base + l + 64), q3 = code(base + l + 96);
      b.ql[64 * h + l] = static_cast<uint8_t>((q0 & 0xF) | ((q2 & 0xF) << 4));
      b.ql[64 * h + l + 32] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
      b.qh[32 * h + l] = static_cast<uint8_t>((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
    }
  }
  std::vector<float> y(256);
  DequantizeRowQ6_K(&b, 256, y.data());
  for (int v = 0; v < 256; ++v) EXPECT_EQ(y[v], 0.125f * (v / 16 - 8) * (code(v) - 32)) << v;
}

TEST(GgmlBlocksTest, Q4_0QuantizationFollowsTheReferenceRounding) {
  // max-magnitude value -4 -> d = 0.5, nibble = trunc(x / d + 8.5).
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = (i % 16) * 0.5f - 4.0f;
  BlockQ4_0 b;
  QuantizeRowQ4_0(x, 32, &b);
  EXPECT_EQ(F16ToFloat(b.d), 0.5f);
  float y[32];
  DequantizeRowQ4_0(&b, 32, y);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], x[i]) << i;  // on the grid: exact
  EXPECT_EQ(b.qs[0], 0x00);  // x[0] = x[16] = -4 -> nibble 0
  EXPECT_EQ(b.qs[15], 0xFF);  // x[15] = x[31] = 3.5 -> nibble 15
}

// Round trip of random rows: per-element error within the type's step.
struct RoundTripCase {
  GgmlType type;
  int n;
  double max_rel_rms;  // RMS error / RMS value on N(0, 1) data
};

class GgmlRoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(GgmlRoundTripTest, ErrorStaysWithinTheQuantizationStep) {
  const RoundTripCase c = GetParam();
  const std::vector<float> x = RandomFloats(static_cast<size_t>(c.n), 7 + static_cast<uint32_t>(c.type));
  std::string bytes = *QuantizeMatrix(c.type, x.data(), 1, c.n);
  ASSERT_EQ(static_cast<int64_t>(bytes.size()), *GgmlRowBytes(c.type, c.n));
  std::vector<float> y(c.n);
  DequantizeRow(c.type, reinterpret_cast<const uint8_t*>(bytes.data()), c.n, y.data());
  double se = 0, sx = 0;
  const int blk = static_cast<int>((*GgmlTypeInfoOf(static_cast<uint32_t>(c.type))).block_elems);
  for (int b = 0; b < c.n / blk; ++b) {
    float amax = 0, lo = 0, hi = 0;
    for (int i = b * blk; i < (b + 1) * blk; ++i) {
      amax = std::max(amax, std::fabs(x[i]));
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    // Per-element bound: half a step of the coarsest sub-block scale the type
    // can pick for this block (+ fp16 rounding of the scales).
    double bound = 0;
    // (fp16 scales add up to 15 * 2^-11 of a step: the 1.03 factors.)
    switch (c.type) {
      case GgmlType::kF32: bound = 0; break;
      case GgmlType::kF16: bound = amax * 1e-3; break;
      case GgmlType::kQ8_0: bound = amax / 127 * 0.5 * 1.03; break;
      case GgmlType::kQ4_0: bound = amax / 8 * 1.03; break;  // the end opposite the max clips at 7 * d
      case GgmlType::kQ4_1: bound = (hi - lo) / 15 * 0.5 * 1.03 + std::fabs(lo) * 1e-3; break;
      case GgmlType::kQ4_K: bound = (hi - lo) / 15 * (0.5 + 1.0 / 63 * 8) + (-lo) / 63; break;
      case GgmlType::kQ6_K: bound = amax / 32 + amax / 256; break;  // one step + scale rounding
    }
    for (int i = b * blk; i < (b + 1) * blk; ++i) {
      ASSERT_LE(std::fabs(y[i] - x[i]), bound + 1e-6) << GgmlTypeName(c.type) << " element " << i;
      se += (y[i] - x[i]) * (y[i] - x[i]);
      sx += x[i] * x[i];
    }
  }
  EXPECT_LE(std::sqrt(se / sx), c.max_rel_rms) << GgmlTypeName(c.type);
  // Quantization is deterministic.
  EXPECT_EQ(bytes, *QuantizeMatrix(c.type, x.data(), 1, c.n));
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GgmlRoundTripTest,
                         ::testing::Values(RoundTripCase{GgmlType::kF32, 512, 0.0},
                                           RoundTripCase{GgmlType::kF16, 512, 1e-3},
                                           RoundTripCase{GgmlType::kQ8_0, 512, 0.01},
                                           RoundTripCase{GgmlType::kQ4_0, 512, 0.15},
                                           RoundTripCase{GgmlType::kQ4_1, 512, 0.12},
                                           RoundTripCase{GgmlType::kQ4_K, 1024, 0.12},
                                           RoundTripCase{GgmlType::kQ6_K, 1024, 0.04}),
                         [](const ::testing::TestParamInfo<RoundTripCase>& info) {
                           return std::string(GgmlTypeName(info.param.type));
                         });

TEST(GgmlBlocksTest, AllZeroAndConstantBlocksRoundTrip) {
  for (GgmlType t : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    for (float v : {0.0f, -0.75f, 0.5f}) {
      std::vector<float> x(256, v);
      std::string bytes = *QuantizeMatrix(t, x.data(), 1, 256);
      std::vector<float> y(256);
      DequantizeRow(t, reinterpret_cast<const uint8_t*>(bytes.data()), 256, y.data());
      for (int i = 0; i < 256; ++i) ASSERT_NEAR(y[i], v, std::fabs(v) * 2e-3) << GgmlTypeName(t) << " " << v;
    }
  }
}

}  // namespace
}  // namespace squeeze
