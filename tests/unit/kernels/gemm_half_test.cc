// kernels::GemmHalfNTStrided (F16 / BF16 weights widened in registers,
// gemm_half.h) under every variant this CPU has, against the double
// reference GemmHalfNTReference, on odd shapes: x rows 1..17 (every tile
// size and remainder), k not a multiple of 8 / 16 / 32, m not a multiple of
// the 4-row W tile; plus batch / split invariance (bit for bit) and a tail
// that ends right before an unmapped page.
//
// Stated tolerance: |y - y_double| <= 1e-5 * sum_c |x_c w_c| + 1e-6.
#include "workers/kernels/cpu/gemm_half.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "tests/unit/kernels/kernel_test_util.h"
#include "workers/engine/core/half.h"

namespace squeeze::kernels {
namespace {

using testing::AllVariants;
using testing::BitEqual;
using testing::Near;
using testing::RandomFloats;
using testing::Variant;
using testing::VariantScope;

// `count` 16-bit weights of `type`: random finite values in [-2, 2], with a
// few extremes mixed in (F16: subnormals and +-65504; BF16: +-1e30 and tiny
// normals), so the widening is exercised beyond the easy range.
std::vector<uint16_t> RandomHalf(HalfType type, size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(-2.0f, 2.0f);
  std::vector<uint16_t> w(count);
  for (size_t i = 0; i < count; ++i) {
    float v = d(rng);
    if (i % 37 == 5) v = type == HalfType::kF16 ? 3.0e-6f : 1.0e-30f;     // F16 subnormal / tiny
    if (i % 53 == 7) v = type == HalfType::kF16 ? -65504.0f : -1.0e30f;  // largest magnitudes
    w[i] = type == HalfType::kF16 ? FloatToF16(v) : FloatToBf16(v);
  }
  return w;
}

// sum_c |x_c w_c| per output (the tolerance's magnitude).
std::vector<double> Magnitudes(HalfType type, const std::vector<float>& x, int64_t n, int64_t k,
                               const std::vector<uint16_t>& w, int64_t m) {
  std::vector<double> mag(n * m, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      double a = 0.0;
      for (int64_t c = 0; c < k; ++c) {
        const uint16_t h = w[j * k + c];
        a += std::fabs(double{x[i * k + c]} * (type == HalfType::kF16 ? F16ToFloat(h) : Bf16ToFloat(h)));
      }
      mag[i * m + j] = a;
    }
  }
  return mag;
}

TEST(GemmHalf, EveryVariantMatchesTheDoubleReferenceOnOddShapes) {
  const int64_t ks[] = {1, 7, 15, 16, 17, 31, 33, 100, 257};
  const int64_t ms[] = {1, 3, 4, 5, 9};
  for (HalfType type : {HalfType::kF16, HalfType::kBF16}) {
    for (int64_t n = 1; n <= 17; ++n) {
      const int64_t k = ks[n % 9], m = ms[n % 5];
      const std::vector<float> x = RandomFloats(n * k, 10 + n);
      const std::vector<uint16_t> w = RandomHalf(type, m * k, 20 + n);
      std::vector<float> want(n * m);
      GemmHalfNTReference(type, x.data(), n, k, w.data(), m, want.data(), m);
      const std::vector<double> mag = Magnitudes(type, x, n, k, w, m);
      for (const Variant& var : AllVariants()) {
        VariantScope scope(var);
        std::vector<float> got(n * m, -7.0f);
        GemmHalfNTStrided(type, x.data(), n, k, w.data(), m, got.data(), m);
        EXPECT_TRUE(Near(got, want, mag, 1e-5)) << HalfTypeName(type) << " " << var.Name() << " n=" << n
                                                << " k=" << k << " m=" << m;
      }
    }
  }
}

TEST(GemmHalf, LlamaWidthsMatchTheDoubleReference) {
  // The widths of Llama-7B layers (4096, 11008) and a 7-row tail of outputs.
  for (HalfType type : {HalfType::kF16, HalfType::kBF16}) {
    for (const auto& [n, k, m] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 4096, 7}, {5, 11008, 6}}) {
      const std::vector<float> x = RandomFloats(n * k, 31 + n);
      const std::vector<uint16_t> w = RandomHalf(type, m * k, 41 + n);
      std::vector<float> want(n * m);
      GemmHalfNTReference(type, x.data(), n, k, w.data(), m, want.data(), m);
      const std::vector<double> mag = Magnitudes(type, x, n, k, w, m);
      for (const Variant& var : AllVariants()) {
        VariantScope scope(var);
        std::vector<float> got(n * m);
        GemmHalfNTStrided(type, x.data(), n, k, w.data(), m, got.data(), m);
        EXPECT_TRUE(Near(got, want, mag, 1e-5)) << HalfTypeName(type) << " " << var.Name() << " k=" << k;
      }
    }
  }
}

TEST(GemmHalf, RowsAreBitIdenticalWhateverTheBatchAndColumnSplit) {
  // One call with 17 rows into a strided y, each row alone, and the columns
  // in two calls (split at 5, not a multiple of the 4-row W tile): the same
  // bits for every x row, per variant.
  const int64_t n = 17, k = 203, m = 11, ldy = 13;
  for (HalfType type : {HalfType::kF16, HalfType::kBF16}) {
    const std::vector<float> x = RandomFloats(n * k, 50);
    const std::vector<uint16_t> w = RandomHalf(type, m * k, 51);
    for (const Variant& var : AllVariants()) {
      VariantScope scope(var);
      std::vector<float> all(n * ldy, 0.0f), single(n * ldy, 0.0f), split(n * ldy, 0.0f);
      GemmHalfNTStrided(type, x.data(), n, k, w.data(), m, all.data(), ldy);
      for (int64_t i = 0; i < n; ++i) {
        GemmHalfNTStrided(type, x.data() + i * k, 1, k, w.data(), m, single.data() + i * ldy, ldy);
      }
      GemmHalfNTStrided(type, x.data(), n, k, w.data(), 5, split.data(), ldy);
      GemmHalfNTStrided(type, x.data(), n, k, w.data() + 5 * k, m - 5, split.data() + 5, ldy);
      EXPECT_TRUE(BitEqual(all, single)) << HalfTypeName(type) << " " << var.Name();
      EXPECT_TRUE(BitEqual(all, split)) << HalfTypeName(type) << " " << var.Name();
    }
  }
}

TEST(GemmHalf, WeightsEndingBeforeAnUnmappedPageAreNotReadPast) {
  // The last weight row ends exactly where a PROT_NONE page starts; a kernel
  // that loads a full block past k crashes here.
  const int64_t page = sysconf(_SC_PAGESIZE);
  for (const auto& [n, k, m] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 9, 3}, {3, 45, 5}, {6, 70, 1}}) {
    for (HalfType type : {HalfType::kF16, HalfType::kBF16}) {
      const std::vector<uint16_t> w = RandomHalf(type, m * k, 60 + k);
      const size_t bytes = w.size() * sizeof(uint16_t);
      const size_t pages = (bytes + page - 1) / page + 1;
      void* map = mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      ASSERT_NE(map, MAP_FAILED);
      uint8_t* guard = static_cast<uint8_t*>(map) + (pages - 1) * page;
      ASSERT_EQ(mprotect(guard, page, PROT_NONE), 0);
      auto* edge = reinterpret_cast<uint16_t*>(guard - bytes);
      std::memcpy(edge, w.data(), bytes);
      const std::vector<float> x = RandomFloats(n * k, 70 + k);
      for (const Variant& var : AllVariants()) {
        VariantScope scope(var);
        std::vector<float> want(n * m), got(n * m);
        GemmHalfNTStrided(type, x.data(), n, k, w.data(), m, want.data(), m);
        GemmHalfNTStrided(type, x.data(), n, k, edge, m, got.data(), m);
        EXPECT_TRUE(BitEqual(got, want)) << HalfTypeName(type) << " " << var.Name() << " k=" << k;
      }
      munmap(map, pages * page);
    }
  }
}

TEST(GemmHalf, WidenHalfIsExactForEveryBitPattern) {
  // All 65536 patterns (zeros, subnormals, normals, infinities; NaNs compared
  // as NaN), at a length with a tail for every variant, and offset by one
  // element so the SIMD loads are unaligned.
  std::vector<uint16_t> all(65536 + 1 + 13);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i - 1);
  const int64_t count = static_cast<int64_t>(all.size()) - 1;
  for (HalfType type : {HalfType::kF16, HalfType::kBF16}) {
    std::vector<float> want(count);
    WidenHalfReference(type, all.data() + 1, count, want.data());
    for (const Variant& var : AllVariants()) {
      VariantScope scope(var);
      std::vector<float> got(count + 1, -3.0f);
      WidenHalf(type, all.data() + 1, count, got.data());
      EXPECT_EQ(got[count], -3.0f) << "wrote past count";
      int64_t bad = 0;
      for (int64_t i = 0; i < count; ++i) {
        const bool same = std::isnan(want[i]) ? std::isnan(got[i]) : std::memcmp(&want[i], &got[i], 4) == 0;
        if (!same && bad++ < 3) {
          ADD_FAILURE() << HalfTypeName(type) << " " << var.Name() << " pattern " << all[i + 1] << ": " << got[i]
                        << " vs " << want[i];
        }
      }
      EXPECT_EQ(bad, 0) << HalfTypeName(type) << " " << var.Name();
    }
  }
}

}  // namespace
}  // namespace squeeze::kernels
