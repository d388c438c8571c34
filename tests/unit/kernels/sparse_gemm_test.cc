// Sparse GEMV / small GEMM (kernels/cpu/sparse_gemm.h): every variant against
// the plain references on random and adversarial layouts (tails, odd sizes,
// empty rows, all-zero and fully dense rows, padded N:M groups, layouts with
// no SIMD version), the densified prefill path, and independence of the
// results from n and the pool size; bitmask values ending right before an
// unmapped page (no variant may read past the last stored value).
#include "workers/kernels/cpu/sparse_gemm.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"
#include "tests/unit/kernels/sparse_test_util.h"

namespace squeeze::kernels {
namespace {

using testing::AllVariants;
using testing::BitEqual;
using testing::DenseMagnitudes;
using testing::Near;
using testing::RandomFloats;
using testing::Variant;
using testing::VariantScope;

enum class Pattern { kRandom, kEmptyRows, kAllZero, kDenseRows };

// A dense [rows, cols] weight; zeros as the pattern says (N:M encodes it).
std::vector<float> DenseWeight(int64_t rows, int64_t cols, double density, Pattern p, uint64_t seed) {
  std::vector<float> w = RandomFloats(rows * cols, seed);
  std::mt19937_64 rng(seed + 7);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      float& v = w[r * cols + c];
      if (v == 0.0f) v = 0.5f;
      bool keep = u(rng) < density;
      if (p == Pattern::kAllZero) keep = false;
      if (p == Pattern::kEmptyRows && r % 3 == 1) keep = false;
      if (p == Pattern::kDenseRows && r % 3 == 0) keep = true;
      if (!keep) v = 0.0f;
    }
  }
  return w;
}

// Owns an N:M layout encoded from a dense weight in which each group of M
// has at most K nonzeros (it keeps the K largest |w| first).
struct NMOwned {
  std::vector<float> values;
  std::vector<uint8_t> indices;
  std::vector<float> dense;  // the weight the layout holds
  SparseNMWeights view;
};

NMOwned MakeNM(int64_t rows, int64_t cols, int keep, int group, Pattern p, uint64_t seed) {
  NMOwned o;
  o.dense = DenseWeight(rows, cols, p == Pattern::kRandom ? 0.8 : 1.0, p, seed);
  SparseNMWeights& v = o.view;
  v.rows = rows;
  v.cols = cols;
  v.keep = keep;
  v.group = group;
  const int64_t per_row = v.values_per_row();
  o.values.assign(rows * per_row, 0.0f);
  o.indices.assign(rows * v.index_row_bytes(), 0);
  for (int64_t r = 0; r < rows; ++r) {
    float* wr = o.dense.data() + r * cols;
    int64_t k = 0;
    for (int64_t g = 0; g < cols / group; ++g) {
      std::vector<int> order(group);
      for (int i = 0; i < group; ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(),
                       [&](int a, int b) { return std::fabs(wr[g * group + a]) > std::fabs(wr[g * group + b]); });
      for (int i = keep; i < group; ++i) wr[g * group + order[i]] = 0.0f;
      std::vector<int> kept(order.begin(), order.begin() + keep);  // zeros among them are stored as padding
      std::sort(kept.begin(), kept.end());
      for (int pos : kept) {
        o.values[r * per_row + k] = wr[g * group + pos];
        o.indices[r * v.index_row_bytes() + k / 2] |= static_cast<uint8_t>(pos << (4 * (k % 2)));
        ++k;
      }
    }
  }
  v.values = o.values.data();
  v.indices = o.indices.data();
  return o;
}

using MaskOwned = testing::BitmaskTestWeights;

MaskOwned MakeMask(int64_t rows, int64_t cols, double density, Pattern p, uint64_t seed) {
  return testing::BitmaskFromDense(DenseWeight(rows, cols, density, p, seed), rows, cols);
}

// Dense reference from the dense weight (checks the references themselves).
std::vector<float> DenseGemm(const std::vector<float>& dense, int64_t rows, int64_t cols, const float* x, int64_t n,
                             const std::vector<float>& bias) {
  std::vector<float> y(n * rows);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < rows; ++r) {
      double acc = bias[r];
      for (int64_t c = 0; c < cols; ++c) acc += double{x[i * cols + c]} * dense[r * cols + c];
      y[i * rows + r] = static_cast<float>(acc);
    }
  }
  return y;
}

// Runs `run(x, n, pool, y)` for every variant and n and checks it against
// `ref`, n = 1 row by row, and a 3-thread pool.
template <typename Run, typename Ref>
void CheckAllVariants(const std::string& what, const std::vector<float>& dense, int64_t rows, int64_t cols,
                      const std::vector<float>& bias, const Run& run, const Ref& ref) {
  ThreadPool one(1), three(3);
  for (int64_t n : {1, 2, 3, 5, 8, 13, 16, 17, 40}) {
    const std::vector<float> x = RandomFloats(n * cols, 1000 + n * 7 + cols);
    std::vector<float> want(n * rows);
    ref(x.data(), n, want.data());
    const std::vector<double> mag = DenseMagnitudes(dense, rows, cols, x.data(), n, bias);
    // The format references equal the dense product (double sums both).
    ASSERT_TRUE(Near(want, DenseGemm(dense, rows, cols, x.data(), n, bias), mag, 1e-6)) << what << " n=" << n;
    for (const Variant& var : AllVariants()) {
      VariantScope scope(var);
      std::vector<float> y1(n * rows, -7.0f), y3(n * rows, -9.0f);
      run(x.data(), n, one, y1.data());
      run(x.data(), n, three, y3.data());
      EXPECT_TRUE(Near(y1, want, mag, 1e-5)) << what << " " << var.Name() << " n=" << n;
      EXPECT_TRUE(BitEqual(y1, y3)) << what << " " << var.Name() << " n=" << n << " (pool size)";
      if (n <= kSparseGemvMaxRows) {
        // Each x row gives the same bits alone as inside the batch.
        std::vector<float> rowwise(n * rows);
        for (int64_t i = 0; i < n; ++i) run(x.data() + i * cols, 1, one, rowwise.data() + i * rows);
        EXPECT_TRUE(BitEqual(y1, rowwise)) << what << " " << var.Name() << " n=" << n << " (row by row)";
      }
    }
  }
}

struct NMCase {
  int keep, group;
  int64_t rows, cols;
  Pattern pattern;
};

TEST(SparseGemm, NMEveryVariantMatchesTheReference) {
  const std::vector<NMCase> cases = {
      {2, 4, 13, 64, Pattern::kRandom},    {2, 4, 33, 36, Pattern::kRandom},    // 36: tail of 2 groups
      {2, 4, 17, 4, Pattern::kRandom},     {2, 4, 5, 100, Pattern::kEmptyRows}, {2, 4, 7, 68, Pattern::kAllZero},
      {2, 4, 9, 132, Pattern::kDenseRows}, {4, 8, 11, 72, Pattern::kRandom},    {4, 8, 3, 8, Pattern::kRandom},
      {1, 2, 19, 50, Pattern::kRandom},    {8, 16, 6, 80, Pattern::kRandom},    {2, 3, 7, 57, Pattern::kRandom},
      {1, 4, 5, 44, Pattern::kRandom},     {3, 4, 6, 40, Pattern::kRandom},     {2, 8, 4, 48, Pattern::kRandom},
      {6, 16, 3, 112, Pattern::kRandom},
  };
  for (const NMCase& c : cases) {
    const NMOwned w = MakeNM(c.rows, c.cols, c.keep, c.group, c.pattern, c.rows * 31 + c.cols);
    std::vector<float> dense(c.rows * c.cols);
    SparseNMDensifyRows(w.view, 0, c.rows, dense.data());
    ASSERT_EQ(dense, w.dense) << "densify";
    const std::vector<float> bias = RandomFloats(c.rows, 5);
    const std::string what = std::to_string(c.keep) + ":" + std::to_string(c.group) + " " +
                             std::to_string(c.rows) + "x" + std::to_string(c.cols) + " pattern " +
                             std::to_string(static_cast<int>(c.pattern));
    CheckAllVariants(
        what, w.dense, c.rows, c.cols, bias,
        [&](const float* x, int64_t n, ThreadPool& pool, float* y) {
          SparseNMGemm(w.view, x, n, bias.data(), y, pool);
        },
        [&](const float* x, int64_t n, float* y) { SparseNMGemmReference(w.view, x, n, bias.data(), y); });
  }
}

TEST(SparseGemm, NMFastPathCoverage) {
  auto applies = [](int k, int m, KernelIsa isa) {
    SparseNMWeights w;
    w.rows = 1;
    w.cols = m * 4;
    w.keep = k;
    w.group = m;
    return SparseNMFastPathApplies(w, isa);
  };
  EXPECT_TRUE(applies(2, 4, KernelIsa::kAvx512));
  EXPECT_TRUE(applies(2, 4, KernelIsa::kAvx2));
  EXPECT_TRUE(applies(4, 8, KernelIsa::kAvx512));
  EXPECT_TRUE(applies(4, 8, KernelIsa::kAvx2));
  EXPECT_FALSE(applies(1, 4, KernelIsa::kAvx512));  // 16 values span 64 inputs
  EXPECT_FALSE(applies(3, 4, KernelIsa::kAvx512));  // 3 does not divide 16
  EXPECT_FALSE(applies(2, 4, KernelIsa::kReference));
}

struct MaskCase {
  int64_t rows, cols;
  double density;
  Pattern pattern;
};

TEST(SparseGemm, BitmaskEveryVariantMatchesTheReference) {
  const std::vector<MaskCase> cases = {
      {7, 1, 0.5, Pattern::kRandom},      {5, 7, 0.5, Pattern::kRandom},     {9, 8, 0.5, Pattern::kRandom},
      {3, 15, 0.5, Pattern::kRandom},     {17, 16, 0.5, Pattern::kRandom},   {6, 17, 0.5, Pattern::kRandom},
      {4, 31, 0.3, Pattern::kRandom},     {33, 33, 0.5, Pattern::kRandom},   {12, 100, 0.1, Pattern::kRandom},
      {8, 257, 0.5, Pattern::kRandom},    {10, 64, 0.9, Pattern::kRandom},   {9, 48, 0.5, Pattern::kEmptyRows},
      {6, 40, 0.5, Pattern::kAllZero},    {9, 71, 0.4, Pattern::kDenseRows}, {5, 96, 1.0, Pattern::kRandom},
      // 64-input steps with 0..3 leftover 16-input steps and a partial one.
      {6, 121, 0.5, Pattern::kRandom},    {5, 145, 0.6, Pattern::kRandom},   {4, 128, 0.5, Pattern::kRandom},
      {7, 176, 0.3, Pattern::kRandom},    {3, 192, 0.05, Pattern::kRandom},  {4, 239, 0.5, Pattern::kDenseRows},
      {5, 320, 0.2, Pattern::kEmptyRows},
  };
  for (const MaskCase& c : cases) {
    const MaskOwned w = MakeMask(c.rows, c.cols, c.density, c.pattern, c.rows * 13 + c.cols);
    for (const Variant& var : AllVariants()) {
      VariantScope scope(var);
      std::vector<float> dense(c.rows * c.cols, -1.0f);
      SparseBitmaskDensifyRows(w.view, 0, c.rows, dense.data());
      ASSERT_EQ(dense, w.dense) << "densify " << var.Name();
      // A row range lands at the start of dst.
      if (c.rows > 2) {
        std::vector<float> part((c.rows - 2) * c.cols);
        SparseBitmaskDensifyRows(w.view, 1, c.rows - 1, part.data());
        ASSERT_TRUE(std::equal(part.begin(), part.end(), w.dense.begin() + c.cols)) << "densify rows " << var.Name();
      }
    }
    const std::vector<float> bias = RandomFloats(c.rows, 6);
    const std::string what = std::to_string(c.rows) + "x" + std::to_string(c.cols) + " density " +
                             std::to_string(c.density) + " pattern " + std::to_string(static_cast<int>(c.pattern));
    CheckAllVariants(
        what, w.dense, c.rows, c.cols, bias,
        [&](const float* x, int64_t n, ThreadPool& pool, float* y) {
          SparseBitmaskGemm(w.view, x, n, bias.data(), y, pool);
        },
        [&](const float* x, int64_t n, float* y) { SparseBitmaskGemmReference(w.view, x, n, bias.data(), y); });
  }
}

// The values array ends exactly at a page followed by an unmapped one, so
// any read past the last stored value faults. Every variant (GEMV, batches,
// densified path) must equal the run on the ordinary copy.
TEST(SparseGemm, BitmaskValuesEndingBeforeAnUnmappedPageAreNotReadPast) {
  const int64_t page = sysconf(_SC_PAGESIZE);
  for (const MaskCase& c : std::vector<MaskCase>{{9, 200, 0.5, Pattern::kRandom},
                                                 {4, 192, 1.0, Pattern::kRandom},
                                                 {37, 256, 0.3, Pattern::kRandom},
                                                 {5, 77, 0.7, Pattern::kDenseRows}}) {
    const MaskOwned w = MakeMask(c.rows, c.cols, c.density, c.pattern, c.rows * 7 + c.cols);
    const size_t bytes = w.values.size() * sizeof(float);
    const size_t pages = (bytes + page - 1) / page + 1;
    void* map = mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(map, MAP_FAILED);
    uint8_t* guard = static_cast<uint8_t*>(map) + (pages - 1) * page;
    ASSERT_EQ(mprotect(guard, page, PROT_NONE), 0);
    float* values = reinterpret_cast<float*>(guard - bytes);
    std::memcpy(values, w.values.data(), bytes);
    SparseBitmaskWeights edge = w.view;
    edge.values = values;
    const std::vector<float> bias = RandomFloats(c.rows, 8);
    ThreadPool pool(2);
    for (int64_t n : {1, 3, 8, 17}) {
      const std::vector<float> x = RandomFloats(n * c.cols, 300 + n);
      for (const Variant& var : AllVariants()) {
        VariantScope scope(var);
        std::vector<float> want(n * c.rows), got(n * c.rows);
        SparseBitmaskGemm(w.view, x.data(), n, bias.data(), want.data(), pool);
        SparseBitmaskGemm(edge, x.data(), n, bias.data(), got.data(), pool);
        EXPECT_TRUE(BitEqual(got, want)) << c.rows << "x" << c.cols << " " << var.Name() << " n=" << n;
      }
    }
    for (const Variant& var : AllVariants()) {
      VariantScope scope(var);
      std::vector<float> dense(c.rows * c.cols);
      SparseBitmaskDensifyRows(edge, 0, c.rows, dense.data());
      EXPECT_EQ(dense, w.dense) << var.Name();
    }
    munmap(map, pages * page);
  }
}

TEST(SparseGemm, NoBiasAndLargeShapes) {
  // One Llama-like row width with both formats, no bias, n = 1 and 4.
  const int64_t rows = 70, cols = 1024;
  const NMOwned nm = MakeNM(rows, cols, 2, 4, Pattern::kRandom, 3);
  const MaskOwned mask = MakeMask(rows, cols, 0.5, Pattern::kRandom, 4);
  const std::vector<float> zero_bias(rows, 0.0f);
  ThreadPool pool(2);
  for (int64_t n : {1, 4}) {
    const std::vector<float> x = RandomFloats(n * cols, 77 + n);
    for (const Variant& var : AllVariants()) {
      VariantScope scope(var);
      std::vector<float> y(n * rows), want(n * rows);
      SparseNMGemm(nm.view, x.data(), n, nullptr, y.data(), pool);
      SparseNMGemmReference(nm.view, x.data(), n, nullptr, want.data());
      EXPECT_TRUE(Near(y, want, DenseMagnitudes(nm.dense, rows, cols, x.data(), n, zero_bias), 1e-5)) << var.Name();
      SparseBitmaskGemm(mask.view, x.data(), n, nullptr, y.data(), pool);
      SparseBitmaskGemmReference(mask.view, x.data(), n, nullptr, want.data());
      EXPECT_TRUE(Near(y, want, DenseMagnitudes(mask.dense, rows, cols, x.data(), n, zero_bias), 1e-5)) << var.Name();
    }
  }
}

}  // namespace
}  // namespace squeeze::kernels
