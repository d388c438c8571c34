// The AVX2 int8 panel cores (int8_panel_gemm_avx2.inc: plain AVX2 maddubs
// and AVX-VNNI) and the AVX2 panel repackers: bit-identical to the reference
// core / repackers, on 4-bit and 8-bit codes, odd rows (1, 8, 9, 16 lanes),
// token tails, per-row offsets, constant offsets with and without the nzq
// hint, activations at -128 / 127; and the packed-int / ggml prefill paths
// end to end under both AVX2 cores. kernel_test_util.h's AllVariants runs
// the "avx2" variant without VNNI; the AVX-VNNI core is run here explicitly.
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/kernels/int8_panel_test_util.h"
#include "tests/unit/kernels/kernel_test_util.h"
#include "tests/unit/kernels/packed_test_weights.h"
#include "workers/engine/core/half.h"
#include "workers/kernels/cpu/cpu_features.h"
#include "workers/kernels/cpu/int8_panel_gemm.h"
#include "workers/kernels/cpu/packed_int_gemm.h"
#include "workers/kernels/cpu/packed_int_panel.h"
#include "workers/kernels/cpu/q8_0_gemm.h"
#include "workers/kernels/cpu/q8_0_gemm_panel.h"
#include "workers/methods/quant/packed_int_linear.h"

namespace squeeze::kernels {
namespace {

using testing::BitEqual;
using testing::RandomFloats;

// The AVX2 cores this CPU runs: (allow_vnni, expected core).
std::vector<std::pair<bool, Int8PanelCore>> Avx2Cores() {
  std::vector<std::pair<bool, Int8PanelCore>> v;
  if (!CpuHasAvx2Fma()) return v;
  v.push_back({false, Int8PanelCore::kAvx2});
  if (CpuHasAvxVnni()) v.push_back({true, Int8PanelCore::kAvxVnni});
  return v;
}

TEST(Int8PanelAvx2, DispatchFollowsTheVariant) {
  {
    ScopedKernelIsa isa(KernelIsa::kReference);
    EXPECT_EQ(ActiveInt8PanelCore(), Int8PanelCore::kReference);
    EXPECT_FALSE(Int8PanelGemmFast());
  }
  if (!CpuHasAvx2Fma()) GTEST_SKIP() << "no AVX2 + FMA on this CPU";
  {
    ScopedKernelIsa isa(KernelIsa::kAvx2, /*allow_vnni=*/false);
    EXPECT_EQ(ActiveInt8PanelCore(), Int8PanelCore::kAvx2);
    EXPECT_FALSE(UseAvxVnni());
    EXPECT_TRUE(Int8PanelGemmFast());
  }
  {
    ScopedKernelIsa isa(KernelIsa::kAvx2, /*allow_vnni=*/true);
    EXPECT_EQ(UseAvxVnni(), CpuHasAvxVnni());
    EXPECT_EQ(ActiveInt8PanelCore(), CpuHasAvxVnni() ? Int8PanelCore::kAvxVnni : Int8PanelCore::kAvx2);
  }
  if (CpuHasAvx512Vnni()) {
    ScopedKernelIsa isa(KernelIsa::kAvx512, true);
    EXPECT_EQ(ActiveInt8PanelCore(), Int8PanelCore::kAvx512Vnni);
    EXPECT_FALSE(UseAvxVnni());  // AVX-512 kernels use their own VNNI
  }
  if (CpuHasAvx512()) {  // AVX-512 without VNNI: the plain AVX2 core
    ScopedKernelIsa isa(KernelIsa::kAvx512, /*allow_vnni=*/false);
    EXPECT_EQ(ActiveInt8PanelCore(), Int8PanelCore::kAvx2);
    EXPECT_TRUE(Int8PanelGemmFast());
  }
}

using CorePanel = testing::TestPanel;

// Random panel with codes < 2^bits (lanes past rows too, as the contract
// asks), offsets up to 255 (or a constant), some zero scales.
void MakePanel(int bits, int64_t rows, int64_t chunks, int64_t cpg, bool with_zo, bool extreme, uint64_t seed,
               CorePanel* p) {
  testing::MakeTestPanel({.bits = bits,
                          .rows = rows,
                          .chunks = chunks,
                          .chunks_per_group = cpg,
                          .with_zo = with_zo,
                          .extreme_codes = extreme,
                          .zero_scale_period = 5,
                          .zero_scale_phase = 2},
                         seed, p);
}

TEST(Int8PanelAvx2, CoresEqualTheReferenceOn4And8BitCodes) {
  if (Avx2Cores().empty()) GTEST_SKIP() << "no AVX2 + FMA on this CPU";
  uint64_t seed = 1000;
  for (int bits : {4, 8}) {
    for (int64_t rows : {1, 8, 9, 16}) {
      for (int64_t chunks : {1, 3, 4}) {
        for (int64_t cpg : {int64_t{1}, int64_t{2}, chunks}) {
          for (int zo_mode = 0; zo_mode < 3; ++zo_mode) {  // per-row, constant, constant + nzq hint
            CorePanel p;
            const bool extreme = seed % 4 == 0;
            MakePanel(bits, rows, chunks, cpg, zo_mode == 0, extreme, seed++, &p);
            for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 11, 13}) {
              const int64_t stride = chunks * kPanelChunkCols + 4 * (n % 2);
              const int64_t gs = p.panel.groups + n % 2;
              // Activations over the whole int8 range, -128 included (the
              // int16 sums must still be exact), or only the extremes.
              std::vector<int8_t> qa(n * stride);
              std::mt19937_64 rng(seed++);
              for (int8_t& v : qa) v = static_cast<int8_t>(extreme ? (rng() % 2 ? 127 : -128) : int(rng() % 256) - 128);
              const auto a = RandomFloats(n * gs, seed++, 0.0f, 0.05f);
              std::vector<int32_t> qsum(n * gs), nzq(n * gs);
              for (int32_t& q : qsum) q = static_cast<int32_t>(rng() % 20001) - 10000;
              for (size_t i = 0; i < nzq.size(); ++i) nzq[i] = -p.panel.zo_const * qsum[i];
              Int8PanelActivations x{n, qa.data(), stride, a.data(), qsum.data(), gs};
              if (zo_mode == 2) {
                x.nzq = nzq.data();
                x.nzq_for = p.panel.zo_const;
              }
              const auto bias = RandomFloats(32, seed++);
              const float* b = n % 2 == 0 ? bias.data() : nullptr;
              const int64_t ldy = 16 + rows + 3;
              std::vector<float> ref(n * ldy, 7.0f);
              Int8PanelGemmReference(p.panel, x, b, ref.data(), ldy);
              // The pair: p0 = a full 16-row panel of the same shape.
              CorePanel p0;
              MakePanel(bits, 16, chunks, cpg, zo_mode == 0, extreme, seed++, &p0);
              std::vector<float> ref_pair(n * ldy, 7.0f);
              Int8PanelGemmReference(p0.panel, x, b, ref_pair.data(), ldy);
              Int8PanelGemmReference(p.panel, x, b != nullptr ? b + 16 : nullptr, ref_pair.data() + 16, ldy);
              for (const auto& [vnni, core] : Avx2Cores()) {
                ScopedKernelIsa isa(KernelIsa::kAvx2, vnni);
                ASSERT_EQ(ActiveInt8PanelCore(), core);
                SCOPED_TRACE("bits=" + std::to_string(bits) + " rows=" + std::to_string(rows) + " chunks=" +
                             std::to_string(chunks) + " cpg=" + std::to_string(cpg) + " zo_mode=" +
                             std::to_string(zo_mode) + " n=" + std::to_string(n) + " core=" + Int8PanelCoreName(core));
                std::vector<float> y(n * ldy, 7.0f);  // lanes >= rows stay untouched
                Int8PanelGemm(p.panel, x, b, y.data(), ldy);
                EXPECT_TRUE(BitEqual(y, ref));
                std::vector<float> y2(n * ldy, 7.0f);
                Int8PanelGemmPair(p0.panel, p.panel, x, b, y2.data(), ldy);
                EXPECT_TRUE(BitEqual(y2, ref_pair));
              }
            }
          }
        }
      }
    }
  }
}

// ------------------------------------------------------------- repackers

// Random codes, scales in [0.001, 0.1), random zero points when zp.
testing::PackedTestWeights MakePacked(int bits, int64_t rows, int64_t cols, int64_t group, bool zp, uint64_t seed) {
  return testing::MakePackedTestWeights({.bits = bits,
                                         .rows = rows,
                                         .cols = cols,
                                         .group = group,
                                         .zeros = zp ? testing::ZeroPoints::kRandom : testing::ZeroPoints::kNone},
                                        seed);
}

TEST(Int8PanelAvx2, PackedIntRepackerWritesTheReferenceBytes) {
  if (!CpuHasAvx2Fma()) GTEST_SKIP() << "no AVX2 + FMA on this CPU";
  uint64_t seed = 2000;
  for (int bits : {4, 8}) {
    for (int64_t cols : {32, 96, 4128, 33, 100}) {
      const int64_t group = cols % 32 == 0 ? 32 : cols;
      const auto t = MakePacked(bits, 37, cols, group, true, seed++);
      for (int64_t r0 : {0, 16, 32}) {  // the last panel has 5 rows
        testing::RepackedPanels p;
        testing::RepackPanels(t.view, r0, KernelIsa::kAvx2, &p);
        const Int8Panel& rp = p.ref;
        SCOPED_TRACE("bits=" + std::to_string(bits) + " cols=" + std::to_string(cols) + " r0=" + std::to_string(r0));
        ASSERT_TRUE(testing::SamePanelBytes(p.simd, rp, /*with_zo=*/true));
        EXPECT_EQ(rp.code_bits, bits);
        // code_bits is a promise: every code byte is below 2^bits.
        for (int64_t i = 0; i < rp.chunks * kPanelChunkBytes; ++i) ASSERT_LT(rp.codes[i], 1 << bits) << i;
      }
    }
  }
}

// Random ggml blocks: fp16 scales (some zero, some subnormal), random codes.
std::vector<uint8_t> MakeGgml(GgmlBlockKind kind, int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t bb = GgmlBlockBytes(kind), nb = cols / kGgmlBlockCols;
  std::vector<uint8_t> out(static_cast<size_t>(rows * nb * bb));
  for (int64_t blk = 0; blk < rows * nb; ++blk) {
    uint8_t* p = out.data() + blk * bb;
    const float d = blk % 7 == 0 ? 0.0f : (blk % 7 == 1 ? 3e-6f : 0.001f * static_cast<float>(rng() % 500));
    const uint16_t h = FloatToF16(rng() % 2 ? d : -d);
    p[0] = static_cast<uint8_t>(h & 0xff);
    p[1] = static_cast<uint8_t>(h >> 8);
    for (int64_t i = 2; i < bb; ++i) p[i] = static_cast<uint8_t>(rng());
  }
  return out;
}

TEST(Int8PanelAvx2, GgmlRepackerWritesTheReferenceBytes) {
  if (!CpuHasAvx2Fma()) GTEST_SKIP() << "no AVX2 + FMA on this CPU";
  uint64_t seed = 3000;
  for (GgmlBlockKind kind : {GgmlBlockKind::kQ4_0, GgmlBlockKind::kQ8_0}) {
    for (int64_t cols : {32, 96, 4096}) {
      const auto blocks = MakeGgml(kind, 37, cols, seed++);
      const GgmlBlockWeights w{kind, 37, cols, blocks.data()};
      for (int64_t r0 : {0, 16, 32}) {
        testing::RepackedPanels p;
        testing::RepackPanels(w, r0, KernelIsa::kAvx2, &p);
        SCOPED_TRACE(std::string(kind == GgmlBlockKind::kQ4_0 ? "q4_0" : "q8_0") + " cols=" + std::to_string(cols) +
                     " r0=" + std::to_string(r0));
        EXPECT_TRUE(testing::SamePanelBytes(p.simd, p.ref, /*with_zo=*/false));
        EXPECT_EQ(p.simd.code_bits, kind == GgmlBlockKind::kQ4_0 ? 4 : 8);
      }
    }
  }
}

// ------------------------------------------------------- the prefill paths

TEST(Int8PanelAvx2, PackedIntAndGgmlPrefillUnderBothAvx2Cores) {
  if (Avx2Cores().empty()) GTEST_SKIP() << "no AVX2 + FMA on this CPU";
  uint64_t seed = 4000;
  ThreadPool pool(2);
  struct Shape {
    int bits;
    int64_t rows, cols, group;
    bool zp;
  };
  const Shape shapes[] = {{4, 41, 4128, 32, false}, {8, 41, 4128, 32, false}, {4, 25, 512, 128, true},
                          {8, 9, 256, 128, true},   {4, 17, 100, 100, false}, {8, 33, 512, 512, false}};
  for (const Shape& s : shapes) {
    const auto t = MakePacked(s.bits, s.rows, s.cols, s.group, s.zp, seed++);
    for (int64_t n : {4, 7, 13}) {
      const auto x = RandomFloats(n * s.cols, seed++, -2.0f, 2.0f);
      const auto bias = RandomFloats(s.rows, seed++);
      std::vector<float> ref(n * s.rows);
      PackedIntGemmQ8Reference(t.view, x.data(), n, bias.data(), ref.data());
      for (const auto& [vnni, core] : Avx2Cores()) {
        ScopedKernelIsa isa(KernelIsa::kAvx2, vnni);
        SCOPED_TRACE("packed bits=" + std::to_string(s.bits) + " rows=" + std::to_string(s.rows) + " cols=" +
                     std::to_string(s.cols) + " n=" + std::to_string(n) + " core=" + Int8PanelCoreName(core));
        std::vector<float> y(n * s.rows, 9.0f);
        internal::PackedIntGemmQ8WithTileRows(t.view, x.data(), n, bias.data(), y.data(), pool, 1);
        EXPECT_TRUE(BitEqual(y, ref));
      }
    }
  }
  for (GgmlBlockKind kind : {GgmlBlockKind::kQ4_0, GgmlBlockKind::kQ8_0}) {
    for (int64_t rows : {9, 40}) {
      const int64_t cols = 256;
      const auto blocks = MakeGgml(kind, rows, cols, seed++);
      const GgmlBlockWeights w{kind, rows, cols, blocks.data()};
      for (int64_t n : {4, 6, 13}) {
        const auto x = RandomFloats(n * cols, seed++, -2.0f, 2.0f);
        const auto bias = RandomFloats(rows, seed++);
        std::vector<float> ref(n * rows);
        GgmlBlockGemmReference(w, x.data(), n, bias.data(), ref.data());
        Q8_0Activations a;
        QuantizeActivationsQ8_0(x.data(), n, cols, &a);
        for (const auto& [vnni, core] : Avx2Cores()) {
          ScopedKernelIsa isa(KernelIsa::kAvx2, vnni);
          SCOPED_TRACE(std::string(kind == GgmlBlockKind::kQ4_0 ? "q4_0" : "q8_0") + " rows=" +
                       std::to_string(rows) + " n=" + std::to_string(n) + " core=" + Int8PanelCoreName(core));
          std::vector<float> y(n * rows, 9.0f);
          internal::GgmlBlockGemmQ8WithPanelRows(w, a, bias.data(), y.data(), pool, 1);
          EXPECT_TRUE(BitEqual(y, ref));
        }
      }
    }
  }
}

}  // namespace
}  // namespace squeeze::kernels
