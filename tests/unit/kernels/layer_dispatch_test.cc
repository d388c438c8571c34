// The engine's quantized layers on top of the kernels: PackedIntLinear's
// Forward (which dispatches to PackedIntGemm) against its own dequantized
// weight under every variant, and the W8A8 kernel against W8A8Linear's
// plain loop (the plug-in contract of int8_gemm.h).
#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"
#include "tests/unit/kernels/packed_test_weights.h"
#include "workers/kernels/cpu/int8_gemm.h"
#include "workers/methods/quant/int8_matmul.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/w8a8_linear.h"

namespace squeeze::kernels {
namespace {

using testing::AllVariants;
using testing::BitEqual;
using testing::Near;
using testing::RandomFloats;
using testing::Variant;
using testing::VariantScope;

using testing::RandomPackedLayer;

TEST(LayerDispatch, PackedIntLinearForwardMatchesItsDenseWeight) {
  using Case = testing::PackedLayerCase;
  const Case cases[] = {{4, true, QuantStrategy::kGroup, 128, false},  {4, false, QuantStrategy::kGroup, 64, false},
                        {8, true, QuantStrategy::kChannel, 0, false},  {8, false, QuantStrategy::kGroup, 32, false},
                        {4, true, QuantStrategy::kGroup, 128, true},   {3, true, QuantStrategy::kGroup, 64, false},
                        {4, true, QuantStrategy::kTensor, 0, false}};
  const int64_t out = 45, in = 320;
  uint64_t seed = 1;
  ThreadPool pool(2);
  for (const Case& c : cases) {
    auto layer = RandomPackedLayer(c.Args(), out, in, seed++, {.g_idx_stride = c.g_idx ? 1 : 0});
    ASSERT_NE(layer, nullptr);
    const MatrixRM w = layer->DenseWeight();
    for (int64_t n : {1, 5, 40}) {
      const auto x = RandomFloats(n * in, seed++);
      std::vector<float> want(n * out);
      std::vector<double> mag(n * out);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t o = 0; o < out; ++o) {
          double s = layer->bias()[o], m = std::fabs(layer->bias()[o]);
          for (int64_t k = 0; k < in; ++k) {
            s += double{x[i * in + k]} * w(o, k);
            m += std::fabs(double{x[i * in + k]} * w(o, k));
          }
          want[i * out + o] = static_cast<float>(s);
          mag[i * out + o] = m;
        }
      }
      for (const Variant& var : AllVariants()) {
        VariantScope scoped(var);
        SCOPED_TRACE(layer->kind() + " n=" + std::to_string(n) + " " + var.Name());
        std::vector<float> y(n * out);
        layer->Forward(x.data(), n, y.data(), pool);
        EXPECT_TRUE(Near(y, want, mag, 1e-5));
      }
    }
  }
}

TEST(LayerDispatch, Int8GemmEqualsW8A8LinearPlainLoop) {
  const int64_t out = 37, in = 200, n = 6;
  const MatrixRM dense = [&] {
    MatrixRM m(out, in);
    const auto v = RandomFloats(out * in, 3);
    std::copy(v.begin(), v.end(), m.data());
    return m;
  }();
  auto layer = W8A8Linear::FromDense(dense, RandomFloats(out, 4));
  ASSERT_TRUE(layer.ok()) << layer.status();
  const Int8Weight& w = (*layer)->weight();
  auto x = RandomFloats(n * in, 5, -4.0f, 4.0f);
  std::fill(x.begin(), x.begin() + in, 0.0f);  // an all-zero token
  std::vector<float> want(n * out);
  ThreadPool pool(2);
  {
    // The layer's plain loop is the reference.
    ScopedKernelIsa reference(KernelIsa::kReference);
    (*layer)->Forward(x.data(), n, want.data(), pool);
  }
  // The same tokens through QuantizeRowsInt8 + Int8GemmNT.
  std::vector<int8_t> qx(n * in), qx_theirs(in);
  std::vector<float> sx(n);
  QuantizeRowsInt8(x.data(), n, in, qx.data(), sx.data());
  for (int64_t i = 0; i < n; ++i) {
    const float s = QuantizeRowInt8(x.data() + i * in, in, qx_theirs.data());
    EXPECT_EQ(s, sx[i]) << i;
    EXPECT_TRUE(std::equal(qx_theirs.begin(), qx_theirs.end(), qx.begin() + i * in)) << i;
  }
  for (const Variant& var : AllVariants()) {
    VariantScope scoped(var);
    SCOPED_TRACE(var.Name());
    std::vector<float> y(n * out);
    Int8GemmNT(qx.data(), n, in, sx.data(), w.q.data(), out, w.scale.data(), w.bias.data(), y.data(), pool);
    EXPECT_TRUE(BitEqual(y, want));
    // And the layer itself, which dispatches to the kernel under this variant.
    std::vector<float> y_layer(n * out);
    (*layer)->Forward(x.data(), n, y_layer.data(), pool);
    EXPECT_TRUE(BitEqual(y_layer, want));
  }
}

}  // namespace
}  // namespace squeeze::kernels
