// DenseLinear with F16 / BF16 weights on the direct kernel
// (kernels::GemmHalfNTStrided, n_rows <= DenseLinear::kHalfDirectMaxRows)
// and on the widen-then-GEMM path above it (kernels::WidenHalf): against a
// double x W^T + b, row-by-row and pool-size invariance of the direct path
// (bit for bit), Llama widths, and an odd-addressed weight view.
//
// Tolerance: |y - y_double| <= 1e-5 * (sum_c |x_c w_c| + |b|) + 1e-6.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "tests/unit/kernels/kernel_test_util.h"
#include "tests/unit/model/dense_reference.h"
#include "workers/engine/core/half.h"
#include "workers/engine/model/dense_linear.h"

namespace squeeze {
namespace {

using kernels::testing::AllVariants;
using kernels::testing::BitEqual;
using kernels::testing::Near;
using kernels::testing::RandomFloats;
using kernels::testing::Variant;
using kernels::testing::VariantScope;

// [out, in] 16-bit weights of `dtype` at byte offset `offset` of their buffer.
TensorView HalfView(const std::vector<float>& w, int64_t out, int64_t in, DType dtype, size_t offset = 0) {
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.size() * 2 + offset + 2);
  for (size_t i = 0; i < w.size(); ++i) {
    const uint16_t h = dtype == DType::kF16 ? FloatToF16(w[i]) : FloatToBf16(w[i]);
    std::memcpy(bytes->data() + offset + 2 * i, &h, 2);
  }
  TensorView v;
  v.dtype = dtype;
  v.shape = {out, in};
  v.data = bytes->data() + offset;
  v.nbytes = w.size() * 2;
  v.owner = std::move(bytes);
  return v;
}

// The double reference on the layer's stored weight and bias.
void DoubleForward(const DenseLinear& layer, const std::vector<float>& x, int64_t n, std::vector<float>& y,
                   std::vector<double>& mag) {
  const absl::Span<const float> b = layer.bias();
  test_inputs::DoubleReference(x, layer.DenseWeight(), std::vector<float>(b.begin(), b.end()), n, y, mag);
}

TEST(DenseLinearHalf, DirectAndWidenPathsMatchTheDoubleReference) {
  // Rows on both sides of kHalfDirectMaxRows, odd in / out, with bias.
  const int64_t max_direct = DenseLinear::kHalfDirectMaxRows;
  for (DType dtype : {DType::kF16, DType::kBF16}) {
    for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{8}, max_direct, max_direct + 1, int64_t{40}}) {
      const int64_t in = 77 + n, out = 37;
      auto layer = DenseLinear::Create(HalfView(RandomFloats(out * in, n), out, in, dtype), RandomFloats(out, 9));
      ASSERT_TRUE(layer.ok()) << layer.status();
      const std::vector<float> x = RandomFloats(n * in, 100 + n);
      std::vector<float> want;
      std::vector<double> mag;
      DoubleForward(**layer, x, n, want, mag);
      ThreadPool pool(2);
      for (const Variant& var : AllVariants()) {
        VariantScope scope(var);
        std::vector<float> got(n * out, -5.0f);
        (*layer)->Forward(x.data(), n, got.data(), pool);
        EXPECT_TRUE(Near(got, want, mag, 1e-5)) << DTypeName(dtype) << " " << var.Name() << " n=" << n;
      }
    }
  }
}

TEST(DenseLinearHalf, DirectPathRowsAndPoolSizesGiveTheSameBits) {
  const int64_t n = DenseLinear::kHalfDirectMaxRows, in = 333, out = 301;
  for (DType dtype : {DType::kF16, DType::kBF16}) {
    auto layer = DenseLinear::Create(HalfView(RandomFloats(out * in, 3), out, in, dtype), RandomFloats(out, 4));
    ASSERT_TRUE(layer.ok()) << layer.status();
    const std::vector<float> x = RandomFloats(n * in, 5);
    ThreadPool one(1), three(3);
    for (const Variant& var : AllVariants()) {
      VariantScope scope(var);
      std::vector<float> all1(n * out), all3(n * out), rows(n * out);
      (*layer)->Forward(x.data(), n, all1.data(), one);
      (*layer)->Forward(x.data(), n, all3.data(), three);
      for (int64_t i = 0; i < n; ++i) (*layer)->Forward(x.data() + i * in, 1, rows.data() + i * out, three);
      EXPECT_TRUE(BitEqual(all1, all3)) << DTypeName(dtype) << " " << var.Name() << " (pool size)";
      // Under the reference variant DenseLinear widens and runs Eigen, whose
      // blocking depends on n; the direct kernel's does not.
      if (var.isa != kernels::KernelIsa::kReference) {
        EXPECT_TRUE(BitEqual(all1, rows)) << DTypeName(dtype) << " " << var.Name() << " (row by row)";
      }
    }
  }
}

TEST(DenseLinearHalf, LlamaWidthDecodeMatchesTheDoubleReference) {
  // in = 11008 (the down projection), decode and a short batch.
  const int64_t in = 11008, out = 45;
  for (DType dtype : {DType::kF16, DType::kBF16}) {
    auto layer = DenseLinear::Create(HalfView(RandomFloats(out * in, 21), out, in, dtype));
    ASSERT_TRUE(layer.ok()) << layer.status();
    for (int64_t n : {1, 6}) {
      const std::vector<float> x = RandomFloats(n * in, 22 + n);
      std::vector<float> want;
      std::vector<double> mag;
      DoubleForward(**layer, x, n, want, mag);
      ThreadPool pool(2);
      for (const Variant& var : AllVariants()) {
        VariantScope scope(var);
        std::vector<float> got(n * out);
        (*layer)->Forward(x.data(), n, got.data(), pool);
        EXPECT_TRUE(Near(got, want, mag, 1e-5)) << DTypeName(dtype) << " " << var.Name() << " n=" << n;
      }
    }
  }
}

TEST(DenseLinearHalf, OddAddressedWeightsAreCopiedAndGiveTheSameResult) {
  // A 16-bit view at an odd address (a packed file could put it there) is
  // copied at Create; results equal those of the aligned view bit for bit.
  const int64_t in = 50, out = 9, n = 3;
  const std::vector<float> w = RandomFloats(out * in, 31);
  for (DType dtype : {DType::kF16, DType::kBF16}) {
    auto odd = DenseLinear::Create(HalfView(w, out, in, dtype, 1));
    auto even = DenseLinear::Create(HalfView(w, out, in, dtype, 0));
    ASSERT_TRUE(odd.ok() && even.ok());
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*odd)->weight_view().data) % 2, 0u);
    const std::vector<float> x = RandomFloats(n * in, 32);
    ThreadPool pool(2);
    std::vector<float> a(n * out), b(n * out);
    (*odd)->Forward(x.data(), n, a.data(), pool);
    (*even)->Forward(x.data(), n, b.data(), pool);
    EXPECT_TRUE(BitEqual(a, b)) << DTypeName(dtype);
  }
}

}  // namespace
}  // namespace squeeze
