// DenseLinear::Forward (our fp32 GEMM, kernels::GemmF32NTStrided over the
// pool) against its reference path ForwardReference (Eigen per column chunk)
// and against a double-precision x W^T + b, on odd shapes: 1..17 rows (decode
// and batched decode, the pack-free path), > 32 rows (the packed path), `in`
// not a multiple of 16, odd `out`, with and without bias, F32 / F16 / BF16
// weights, under every kernel variant this CPU has.
//
// Tolerance (different summation order, fp32 accumulation):
//   |y - y_double| <= 1e-5 * (sum_c |x_c w_c| + |b|) + 1e-6 per output,
// and Forward vs ForwardReference within twice that.
#include "workers/engine/model/dense_linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/unit/kernels/kernel_test_util.h"
#include "tests/unit/model/dense_reference.h"
#include "workers/engine/core/half.h"

namespace squeeze {
namespace {

using kernels::testing::AllVariants;
using kernels::testing::BitEqual;
using kernels::testing::Near;
using kernels::testing::RandomFloats;
using kernels::testing::Variant;
using kernels::testing::VariantScope;
using test_inputs::DoubleReference;

// A [out, in] weight view of `dtype` holding `w` rounded to that dtype.
TensorView WeightView(const std::vector<float>& w, int64_t out, int64_t in, DType dtype) {
  if (dtype == DType::kF32) return OwnedF32(w, {out, in});
  auto bits = std::make_shared<std::vector<uint16_t>>(w.size());
  for (size_t i = 0; i < w.size(); ++i) (*bits)[i] = dtype == DType::kF16 ? FloatToF16(w[i]) : FloatToBf16(w[i]);
  TensorView v;
  v.dtype = dtype;
  v.shape = {out, in};
  v.data = bits->data();
  v.nbytes = bits->size() * sizeof(uint16_t);
  v.owner = std::move(bits);
  return v;
}

struct Case {
  int64_t n, in, out;
};

std::vector<Case> OddCases() {
  std::vector<Case> cases;
  // 1..17 rows: decode and batched decode (pack-free path), odd widths.
  const Case widths[] = {{0, 1, 1}, {0, 7, 5}, {0, 33, 17}, {0, 100, 31}, {0, 257, 65}, {0, 300, 97}};
  for (int64_t n = 1; n <= 17; ++n) {
    const Case& w = widths[n % 6];
    cases.push_back({n, w.in, w.out});
  }
  // Around the path switch (32 rows) and prefill-sized row counts.
  cases.push_back({31, 129, 33});
  cases.push_back({32, 64, 48});
  cases.push_back({33, 129, 33});
  cases.push_back({40, 300, 301});
  cases.push_back({70, 513, 65});
  cases.push_back({130, 257, 300});
  return cases;
}

TEST(DenseLinearTest, ForwardMatchesReferenceOnOddShapes) {
  ThreadPool pool(3);
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (const Case& s : OddCases()) {
      for (bool with_bias : {false, true}) {
        const uint64_t seed = s.n * 1000 + s.in * 7 + s.out + (with_bias ? 1 : 0);
        const auto w = RandomFloats(s.out * s.in, seed + 1);
        const auto x = RandomFloats(s.n * s.in, seed + 2);
        std::vector<float> bias = with_bias ? RandomFloats(s.out, seed + 3, -2.0f, 2.0f) : std::vector<float>{};
        auto layer = DenseLinear::Create(WeightView(w, s.out, s.in, dtype), bias);
        ASSERT_TRUE(layer.ok()) << layer.status();
        std::vector<float> want;
        std::vector<double> mag;
        DoubleReference(x, (*layer)->DenseWeight(), bias, s.n, want, mag);
        std::vector<double> mag2(mag.size());
        for (size_t i = 0; i < mag.size(); ++i) mag2[i] = 2 * mag[i];

        std::vector<float> ref(s.n * s.out, 77.0f);
        (*layer)->ForwardReference(x.data(), s.n, ref.data(), pool);
        EXPECT_TRUE(Near(ref, want, mag, 1e-5));
        for (const Variant& var : AllVariants()) {
          VariantScope scoped(var);
          SCOPED_TRACE(std::string(DTypeName(dtype)) + " " + var.Name() + " n=" + std::to_string(s.n) +
                       " in=" + std::to_string(s.in) + " out=" + std::to_string(s.out) +
                       (with_bias ? " bias" : ""));
          std::vector<float> y(s.n * s.out, -99.0f);  // Forward overwrites every output
          (*layer)->Forward(x.data(), s.n, y.data(), pool);
          EXPECT_TRUE(Near(y, want, mag, 1e-5));
          EXPECT_TRUE(Near(y, ref, mag2, 1e-5));
        }
      }
    }
  }
}

TEST(DenseLinearTest, PoolSizeDoesNotChangeForward) {
  ThreadPool one(1), three(3);
  // 9 rows take the pack-free path, 45 the packed one; out spans many chunks.
  for (int64_t n : {9, 45}) {
    const int64_t in = 200, out = 1100;
    const auto w = RandomFloats(out * in, 5);
    const auto x = RandomFloats(n * in, 6);
    auto layer = DenseLinear::FromMatrix(ConstMapMatrixRM(w.data(), out, in), RandomFloats(out, 7));
    std::vector<float> y1(n * out), y3(n * out), r1(n * out), r3(n * out);
    layer->Forward(x.data(), n, y1.data(), one);
    layer->Forward(x.data(), n, y3.data(), three);
    EXPECT_TRUE(BitEqual(y1, y3)) << "n=" << n;
    layer->ForwardReference(x.data(), n, r1.data(), one);
    layer->ForwardReference(x.data(), n, r3.data(), three);
    EXPECT_TRUE(BitEqual(r1, r3)) << "n=" << n;
  }
}

// A Llama-7B attention row width (in = 4096) at decode and batched-decode row
// counts, against the double reference.
TEST(DenseLinearTest, LlamaWidthDecodeRowsMatchReference) {
  ThreadPool pool(2);
  const int64_t in = 4096, out = 67;
  const auto w = RandomFloats(out * in, 11);
  auto layer = DenseLinear::FromMatrix(ConstMapMatrixRM(w.data(), out, in));
  for (int64_t n : {1, 8, 16}) {
    const auto x = RandomFloats(n * in, 12 + n);
    std::vector<float> want, y(n * out);
    std::vector<double> mag;
    DoubleReference(x, layer->DenseWeight(), {}, n, want, mag);
    layer->Forward(x.data(), n, y.data(), pool);
    EXPECT_TRUE(Near(y, want, mag, 1e-5)) << "n=" << n;
  }
}

TEST(DenseLinearTest, ZeroRowsAndZeroInputsAreHandled) {
  ThreadPool pool(2);
  // in = 0: every output is the bias (an empty sum).
  auto empty_in = DenseLinear::FromMatrix(MatrixRM(3, 0), {1.0f, -2.0f, 0.5f});
  std::vector<float> y(2 * 3, 9.0f);
  const float x_unused = 0.0f;
  empty_in->Forward(&x_unused, 2, y.data(), pool);
  EXPECT_EQ(y, (std::vector<float>{1.0f, -2.0f, 0.5f, 1.0f, -2.0f, 0.5f}));
  // n = 0 writes nothing.
  auto layer = DenseLinear::FromMatrix(MatrixRM::Ones(4, 5));
  float sentinel = 42.0f;
  layer->Forward(&x_unused, 0, &sentinel, pool);
  EXPECT_EQ(sentinel, 42.0f);
}

}  // namespace
}  // namespace squeeze
