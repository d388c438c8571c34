// The int8 panel GEMM core (int8_panel_gemm.h) and the prefill panel path of
// PackedIntGemmQ8 (packed_int_panel.h): bit-identical to the references on
// random and adversarial shapes, codes, zero points and activations, for
// every kernel variant and pool size.
#include "workers/kernels/cpu/int8_panel_gemm.h"

#include <cstring>
#include <limits>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "tests/unit/kernels/int8_panel_test_util.h"
#include "tests/unit/kernels/kernel_test_util.h"
#include "tests/unit/kernels/packed_test_weights.h"
#include "workers/kernels/cpu/packed_int_gemm.h"
#include "workers/kernels/cpu/packed_int_panel.h"
#include "workers/methods/quant/packed_int_linear.h"

namespace squeeze::kernels {
namespace {

using testing::AllVariants;
using testing::BitEqual;
using testing::RandomFloats;
using testing::RandomInt8;
using testing::Variant;
using testing::VariantScope;

// ------------------------------------------------------------------ the core

using CorePanel = testing::TestPanel;

// A random panel: codes over the whole u8 range, scales with some zeros,
// offsets (or a constant) up to 255.
void MakeCorePanel(int64_t rows, int64_t chunks, int64_t cpg, bool with_zo, uint64_t seed, CorePanel* p) {
  testing::MakeTestPanel({.rows = rows, .chunks = chunks, .chunks_per_group = cpg, .with_zo = with_zo}, seed, p);
}

// n tokens of random panel activations (x points into the vectors; moving
// keeps it valid): qa in [-127, 127] with row stride `stride`, a in
// [0, 0.05) and qsum in [-10000, 10000] with group stride gs; three seeds
// from `seed` on.
struct Activations {
  std::vector<int8_t> qa;
  std::vector<float> a;
  std::vector<int32_t> qsum;
  Int8PanelActivations x;
};

Activations RandomActivations(int64_t n, int64_t stride, int64_t gs, uint64_t& seed) {
  Activations t;
  t.qa = RandomInt8(n * stride, seed++, -127, 127);
  t.a = RandomFloats(n * gs, seed++, 0.0f, 0.05f);
  t.qsum.resize(n * gs);
  std::mt19937_64 rng(seed++);
  for (int32_t& q : t.qsum) q = static_cast<int32_t>(rng() % 20001) - 10000;
  t.x = Int8PanelActivations{n, t.qa.data(), stride, t.a.data(), t.qsum.data(), gs};
  return t;
}

TEST(Int8PanelCore, EveryVariantEqualsTheReferenceBitForBit) {
  uint64_t seed = 1;
  for (int64_t rows : {1, 7, 16}) {
    for (int64_t chunks : {1, 3, 8}) {
      for (int64_t cpg : {int64_t{1}, int64_t{2}, chunks}) {
        for (bool with_zo : {false, true}) {
          CorePanel p;
          MakeCorePanel(rows, chunks, cpg, with_zo, seed++, &p);
          for (int64_t n : {1, 2, 3, 5, 7, 8, 9, 16, 17}) {
            const int64_t stride = chunks * kPanelChunkCols + 4 * (n % 3);  // stride past the codes
            const int64_t gs = p.panel.groups + n % 2;
            const Activations act = RandomActivations(n, stride, gs, seed);
            const std::vector<int32_t>& qsum = act.qsum;
            Int8PanelActivations x = act.x;
            // The optional -zo_const * qsum: right for the constant panels
            // (n % 3 == 1), or garbage meant for another offset (n % 3 == 2,
            // must be ignored).
            std::vector<int32_t> nzq(n * gs);
            for (size_t i = 0; i < nzq.size(); ++i) nzq[i] = n % 3 == 1 ? -128 * qsum[i] : 12345;
            if (n % 3 != 0) {
              x.nzq = nzq.data();
              x.nzq_for = n % 3 == 1 ? 128 : 8;
            }
            const auto bias = RandomFloats(rows, seed++);
            const float* b = n % 2 == 0 ? bias.data() : nullptr;
            const int64_t ldy = rows + 3;
            std::vector<float> ref(n * ldy, 7.0f);
            Int8PanelGemmReference(p.panel, x, b, ref.data(), ldy);
            for (const Variant& var : AllVariants()) {
              VariantScope scoped(var);
              SCOPED_TRACE("rows=" + std::to_string(rows) + " chunks=" + std::to_string(chunks) +
                           " cpg=" + std::to_string(cpg) + (with_zo ? " zo" : " const") + " n=" +
                           std::to_string(n) + " isa=" + var.Name());
              std::vector<float> y(n * ldy, 7.0f);  // lanes >= rows must stay untouched
              Int8PanelGemm(p.panel, x, b, y.data(), ldy);
              EXPECT_TRUE(BitEqual(y, ref));
            }
          }
        }
      }
    }
  }
}

TEST(Int8PanelCore, PairEqualsTheReferenceOnEachPanel) {
  uint64_t seed = 700;
  for (int64_t rows1 : {1, 9, 16}) {
    for (int64_t chunks : {1, 4, 5}) {
      for (int64_t cpg : {int64_t{1}, int64_t{4}, chunks}) {
        for (int zo_mix = 0; zo_mix < 3; ++zo_mix) {  // both constant, both per row, one of each
          CorePanel p0, p1;
          MakeCorePanel(16, chunks, cpg, zo_mix != 0, seed++, &p0);
          MakeCorePanel(rows1, chunks, cpg, zo_mix == 1, seed++, &p1);
          for (int64_t n : {1, 4, 5, 6, 7, 12, 13, 19}) {
            const int64_t stride = chunks * kPanelChunkCols;
            const int64_t gs = p0.panel.groups;
            const Activations act = RandomActivations(n, stride, gs, seed);
            const std::vector<int32_t>& qsum = act.qsum;
            Int8PanelActivations x = act.x;
            std::vector<int32_t> nzq(n * gs);
            for (size_t i = 0; i < nzq.size(); ++i) nzq[i] = -128 * qsum[i];
            if (n % 2 == 1) {
              x.nzq = nzq.data();
              x.nzq_for = 128;
            }
            const auto bias = RandomFloats(32, seed++);
            const float* b = n % 2 == 0 ? bias.data() : nullptr;
            const int64_t ldy = 16 + rows1 + 2;
            std::vector<float> ref(n * ldy, 7.0f);
            Int8PanelGemmReference(p0.panel, x, b, ref.data(), ldy);
            Int8PanelGemmReference(p1.panel, x, b != nullptr ? b + 16 : nullptr, ref.data() + 16, ldy);
            for (const Variant& var : AllVariants()) {
              VariantScope scoped(var);
              SCOPED_TRACE("rows1=" + std::to_string(rows1) + " chunks=" + std::to_string(chunks) + " cpg=" +
                           std::to_string(cpg) + " zo_mix=" + std::to_string(zo_mix) + " n=" + std::to_string(n) +
                           " isa=" + var.Name());
              std::vector<float> y(n * ldy, 7.0f);
              Int8PanelGemmPair(p0.panel, p1.panel, x, b, y.data(), ldy);
              EXPECT_TRUE(BitEqual(y, ref));
            }
          }
        }
      }
    }
  }
}

TEST(Int8PanelCore, ReferenceComputesTheDocumentedChain) {
  // One lane, two groups of one chunk, worked by hand: d_g = sum u * qa - zo * qsum.
  CorePanel p;
  MakeCorePanel(1, 2, 1, true, 5, &p);
  std::memset(p.buffers.codes(), 0, 2 * kPanelChunkBytes);
  uint8_t* codes = p.buffers.codes();
  codes[0] = 200;                                    // chunk 0, quad 0, lane 0, byte 0
  codes[(1 * kPanelQuads + 7) * kPanelRows * 4 + 3] = 5;  // chunk 1, quad 7, lane 0, byte 3
  p.buffers.zo()[0] = 3;                             // group 0, lane 0
  p.buffers.zo()[kPanelRows] = 0;                    // group 1, lane 0
  p.buffers.scales()[0] = 0.5f;
  p.buffers.scales()[kPanelRows] = 0.25f;
  std::vector<int8_t> qa(64, 0);
  qa[0] = -7;
  qa[32 + 31] = 11;
  const std::vector<float> a = {2.0f, 4.0f};
  const std::vector<int32_t> qsum = {10, 0};
  Int8PanelActivations x{1, qa.data(), 64, a.data(), qsum.data(), 2};
  float y = 0.0f;
  const float bias = 1.5f;
  Int8PanelGemmReference(p.panel, x, &bias, &y, 1);
  const float d0 = 200 * -7 - 3 * 10, d1 = 5 * 11;
  EXPECT_EQ(y, std::fma(d1, 0.25f * 4.0f, std::fma(d0, 0.5f * 2.0f, 0.0f)) + 1.5f);
}

// ------------------------------------------------------ packed-int panel path

using TestWeights = testing::PackedTestWeights;

using Zp = testing::ZeroPoints;  // kNone, kRandom, kExtreme here

// group = cols for one group per row. Codes random or at the extremes,
// every fifth scale zero; zero points in q units, the extremes make the
// code offset 0 and 2^bits - 1.
TestWeights MakeWeights(int bits, int64_t rows, int64_t cols, int64_t group, Zp zp, bool extreme_codes,
                        uint64_t seed) {
  return testing::MakePackedTestWeights({.bits = bits,
                                         .rows = rows,
                                         .cols = cols,
                                         .group = group,
                                         .codes = extreme_codes ? testing::Codes::kExtreme : testing::Codes::kRandom,
                                         .zeros = zp,
                                         .zero_scale_every = 5},
                                        seed);
}

// x with an all-zero row (token 1) and, in token 2, one group much larger
// than the rest.
std::vector<float> MakeX(int64_t n, int64_t cols, uint64_t seed) {
  auto x = RandomFloats(n * cols, seed, -2.0f, 2.0f);
  if (n > 1) std::fill(x.begin() + cols, x.begin() + 2 * cols, 0.0f);
  if (n > 2) {
    for (int64_t c = 0; c < std::min<int64_t>(cols, 32); ++c) x[2 * cols + c] *= 1000.0f;
  }
  return x;
}

// The panel path (forced from 1 row of x), the public entry, the panel
// driver and the pool sizes 1, 2 and 3 against PackedIntGemmQ8Reference,
// every variant.
void CheckPanels(const TestWeights& t, int64_t n, bool with_bias, uint64_t seed, const std::string& what) {
  const PackedIntWeights& w = t.view;
  ASSERT_TRUE(PackedIntFastPathApplies(w)) << what;
  const auto x = MakeX(n, w.cols, seed);
  const auto bias = RandomFloats(w.rows, seed + 1);
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> ref(n * w.rows);
  PackedIntGemmQ8Reference(w, x.data(), n, b, ref.data());
  ThreadPool p1(1), p2(2), p3(3);
  for (const Variant& var : AllVariants()) {
    VariantScope scoped(var);
    SCOPED_TRACE(what + " n=" + std::to_string(n) + " isa=" + var.Name());
    std::vector<float> y1(n * w.rows, 99.0f), y2(n * w.rows, -99.0f), y3(n * w.rows, 5.0f);
    internal::PackedIntGemmQ8WithTileRows(w, x.data(), n, b, y1.data(), p1, 1);
    EXPECT_TRUE(BitEqual(y1, ref));
    internal::PackedIntGemmQ8WithTileRows(w, x.data(), n, b, y2.data(), p2, 1);
    EXPECT_TRUE(BitEqual(y2, ref));
    PackedIntGemmQ8(w, x.data(), n, b, y3.data(), p3);
    EXPECT_TRUE(BitEqual(y3, ref));
    // The panel driver itself on every variant (without VNNI it runs the
    // reference core and the scalar quantizer / repacker).
    std::vector<float> y4(n * w.rows, 3.0f);
    PackedIntGemmQ8Panels(w, x.data(), n, b, y4.data(), p2);
    EXPECT_TRUE(BitEqual(y4, ref));
  }
}

std::string Name(int bits, int64_t rows, int64_t cols, int64_t group, Zp zp) {
  return "bits=" + std::to_string(bits) + " rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
         " group=" + std::to_string(group) + (zp == Zp::kNone ? " sym" : zp == Zp::kRandom ? " zp" : " zp-extreme");
}

TEST(PackedIntTile, SmallShapesEveryRowCount) {
  struct Shape {
    int64_t rows, cols, group;
  };
  // rows not a multiple of 16; cols 32 / 64 / 96; g32, g64 (last group of
  // 32), one group per row including odd widths (a partial last chunk).
  const Shape shapes[] = {{1, 32, 32}, {15, 64, 32}, {17, 96, 64}, {40, 96, 32}, {17, 33, 33}, {16, 100, 100}};
  uint64_t seed = 10;
  for (int bits : {4, 8}) {
    for (const Shape& s : shapes) {
      const Zp zp = seed % 3 == 0 ? Zp::kNone : (seed % 3 == 1 ? Zp::kRandom : Zp::kExtreme);
      const TestWeights t = MakeWeights(bits, s.rows, s.cols, s.group, zp, false, seed++);
      for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 33}) {
        CheckPanels(t, n, n % 2 == 1, seed++, Name(bits, s.rows, s.cols, s.group, zp));
      }
    }
  }
}

TEST(PackedIntTile, LlamaWidthsAndGroupSizes) {
  struct Shape {
    int64_t rows, cols, group;
  };
  const Shape shapes[] = {{17, 4096, 128}, {15, 4128, 32}, {40, 4128, 128}, {16, 4096, 4096}, {17, 4128, 64}};
  uint64_t seed = 50;
  for (int bits : {4, 8}) {
    for (const Shape& s : shapes) {
      for (Zp zp : {Zp::kNone, Zp::kRandom}) {
        const TestWeights t = MakeWeights(bits, s.rows, s.cols, s.group, zp, false, seed++);
        for (int64_t n : {5, 16}) CheckPanels(t, n, n == 5, seed++, Name(bits, s.rows, s.cols, s.group, zp));
      }
    }
  }
}

TEST(PackedIntTile, ExtremeCodesAndZeroPoints) {
  uint64_t seed = 90;
  for (int bits : {4, 8}) {
    for (Zp zp : {Zp::kNone, Zp::kExtreme}) {
      const TestWeights t = MakeWeights(bits, 20, 256, 64, zp, /*extreme_codes=*/true, seed++);
      CheckPanels(t, 9, true, seed++, "extreme " + Name(bits, 20, 256, 64, zp));
    }
  }
}

TEST(PackedIntTile, ManyRowsOfX) {
  // Token tiles of 8 and their tails over several panels.
  uint64_t seed = 120;
  for (int bits : {4, 8}) {
    const TestWeights t = MakeWeights(bits, 33, 512, 32, bits == 4 ? Zp::kRandom : Zp::kNone, false, seed++);
    for (int64_t n : {64, 130}) CheckPanels(t, n, true, seed++, Name(bits, 33, 512, 32, Zp::kNone));
  }
}

TEST(PackedIntTile, SimdRepackWritesTheReferenceBytes) {
  uint64_t seed = 200;
  for (int bits : {4, 8}) {
    for (int64_t cols : {32, 96, 4128, 33, 100}) {
      const int64_t group = cols % 32 == 0 ? 32 : cols;
      const TestWeights t = MakeWeights(bits, 37, cols, group, Zp::kRandom, false, seed++);
      for (int64_t r0 : {0, 16, 32}) {  // the last panel has 5 rows
        testing::RepackedPanels p;
        testing::RepackPanels(t.view, r0, KernelIsa::kAvx512, &p);
        const Int8Panel& rp = p.ref;
        SCOPED_TRACE(Name(bits, 37, cols, group, Zp::kRandom) + " r0=" + std::to_string(r0));
        ASSERT_TRUE(testing::SamePanelBytes(p.simd, rp, /*with_zo=*/true));
        // Spot-check the documented layout on the reference bytes.
        const int64_t l = rp.rows - 1, c = cols - 1;
        const int per_word = 32 / bits;
        const uint32_t word = t.view.packed[(r0 + l) * t.view.words_per_row + c / per_word];
        const uint8_t u = static_cast<uint8_t>((word >> ((c % per_word) * bits)) & ((1u << bits) - 1u));
        EXPECT_EQ(u, rp.codes[((c / 32 * kPanelQuads + (c % 32) / 4) * kPanelRows + l) * 4 + c % 4]);
        EXPECT_EQ(rp.zo[l], t.zero_points[(r0 + l) * t.view.groups_per_row] + (1 << (bits - 1)));
      }
    }
  }
}

TEST(PackedIntTile, SimdQuantizerWritesQuantizeActivationGroupsBytes) {
  // Ties (x * 127 / amax exactly k + 0.5 round to even), signed zeros, tiny
  // and huge values, an all-zero group, NaN / Inf groups, widths that are not
  // a multiple of 16, rows padded to whole chunks.
  uint64_t seed = 300;
  for (int64_t cols : {32, 100, 4128}) {
    for (int64_t group : {int64_t{32}, cols}) {
      if (group != cols && cols % 32 != 0) continue;
      const TestWeights t = MakeWeights(4, 1, cols, group, Zp::kNone, false, seed++);
      const int64_t n = 6, stride = (cols + 31) / 32 * 32 + 32, ng = t.view.groups_per_row;
      auto x = RandomFloats(n * cols, seed++, -3.0f, 3.0f);
      for (int64_t c = 0; c < cols; ++c) {
        x[c] = (c % 5 == 0 ? 127.0f : static_cast<float>(c % 9) - 4.5f);  // amax 127: ties at +-k.5
        x[cols + c] = 0.0f;
        x[2 * cols + c] = c % 2 ? -0.0f : 1e-38f * static_cast<float>(c % 7);
        x[3 * cols + c] *= 1e30f;
      }
      x[4 * cols + 3] = std::numeric_limits<float>::quiet_NaN();
      x[5 * cols + 1] = std::numeric_limits<float>::infinity();
      x[5 * cols + 2] = -std::numeric_limits<float>::infinity();
      std::vector<int8_t> dense(n * cols);
      std::vector<float> a_ref(n * ng);
      std::vector<int32_t> qs_ref(n * ng);
      QuantizeActivationGroups(t.view, x.data(), n, dense.data(), a_ref.data(), qs_ref.data());
      for (const Variant& var : AllVariants()) {
        VariantScope scoped(var);
        SCOPED_TRACE("cols=" + std::to_string(cols) + " group=" + std::to_string(group) + " isa=" + var.Name());
        std::vector<int8_t> qa(n * stride, 55);
        std::vector<float> a(n * ng);
        std::vector<int32_t> qs(n * ng);
        QuantizePanelActivations(t.view, x.data(), n, qa.data(), stride, a.data(), qs.data());
        for (int64_t i = 0; i < n; ++i) {
          EXPECT_EQ(0, std::memcmp(qa.data() + i * stride, dense.data() + i * cols, cols)) << "row " << i;
          for (int64_t c = cols; c < stride; ++c) ASSERT_EQ(qa[i * stride + c], 0) << "padding row " << i;
        }
        EXPECT_EQ(0, std::memcmp(a.data(), a_ref.data(), a.size() * sizeof(float)));
        EXPECT_EQ(qs, qs_ref);
      }
    }
  }
}

}  // namespace
}  // namespace squeeze::kernels
