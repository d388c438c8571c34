// Gradient checks of the trainable linear kinds (dense, bias, masked sparse,
// low-rank, LoRA on dense and packed-int bases).
#include <gtest/gtest.h>

#include "tests/unit/train/grad_check.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/train/trainable_linear.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/rtn.h"

namespace squeeze::train {
namespace {

using testing::CheckDirectional;
using testing::CheckEntries;
using testing::Dot;
using testing::RandomVector;

MatrixRM RandomMatrix(int64_t r, int64_t c, uint64_t seed, float stddev = 0.5f) {
  std::vector<float> v = RandomVector(r * c, seed, stddev);
  return ConstMapMatrixRM(v.data(), r, c);
}

// Checks dx and every param's gradient of f = sum(R o layer(x)).
void CheckLayer(TrainableLinear& layer, int64_t n, uint64_t seed) {
  ThreadPool pool(2);
  const int64_t in = layer.in_features(), out = layer.out_features();
  std::vector<float> x = RandomVector(n * in, seed), r = RandomVector(n * out, seed + 1);
  std::vector<float> y(n * out);
  auto f = [&] {
    layer.Forward(x.data(), n, y.data(), pool);
    return Dot(r.data(), y.data(), y.size());
  };
  std::vector<float> dx(n * in);
  for (auto& [name, p] : layer.Params()) p->ZeroGrad();
  layer.Backward(x.data(), r.data(), n, dx.data(), pool);
  CheckEntries(layer.kind() + " dx", x.data(), dx.data(), dx.size(), f);
  CheckDirectional(layer.kind() + " dx", x.data(), dx.data(), dx.size(), f, seed);
  for (auto& [name, p] : layer.Params()) {
    const uint8_t* mask = p->mask.empty() ? nullptr : p->mask.data();
    CheckEntries(layer.kind() + " " + name, p->value.data(), p->grad.data(), p->numel(), f, 24, 1e-2, 2e-2, 2e-3,
                 mask);
    CheckDirectional(layer.kind() + " " + name, p->value.data(), p->grad.data(), p->numel(), f, seed + 7, 1e-2,
                     2e-2, 1e-3, mask);
  }
  // The inference layer computes the same function.
  std::unique_ptr<LinearLayer> inf = layer.ToInference();
  std::vector<float> y2(n * out);
  inf->Forward(x.data(), n, y2.data(), pool);
  f();
  for (int64_t i = 0; i < n * out; ++i) EXPECT_NEAR(y[i], y2[i], 1e-4) << layer.kind();
}

TEST(LinearGrad, Dense) {
  auto l = MakeDenseTrainable(RandomMatrix(6, 5, 1), {}, false);
  CheckLayer(*l, 4, 10);
}

TEST(LinearGrad, DenseWithBias) {
  auto l = MakeDenseTrainable(RandomMatrix(6, 5, 2), RandomVector(6, 3), false);
  CheckLayer(*l, 4, 20);
}

TEST(LinearGrad, MaskedSparseKeepsGradientOffPrunedWeights) {
  MatrixRM w = RandomMatrix(6, 8, 4);
  for (int64_t i = 0; i < w.size(); i += 2) w.data()[i] = 0.0f;  // 50% pruned
  auto l = MakeDenseTrainable(w, {}, true);
  EXPECT_EQ(l->kind(), "masked_sparse");
  ThreadPool pool(1);
  std::vector<float> x = RandomVector(3 * 8, 5), dy = RandomVector(3 * 6, 6), dx(3 * 8);
  l->Backward(x.data(), dy.data(), 3, dx.data(), pool);
  Param* p = l->Params()[0].second;
  int nonzero_kept = 0;
  for (int64_t i = 0; i < p->numel(); ++i) {
    if (i % 2 == 0) {
      EXPECT_EQ(p->grad[i], 0.0f) << i;
      EXPECT_EQ(p->mask[i], 0);
    } else {
      nonzero_kept += p->grad[i] != 0.0f;
    }
  }
  EXPECT_GT(nonzero_kept, 0);
  // Unpruned entries are still exact gradients.
  CheckLayer(*l, 3, 30);
}

TEST(LinearGrad, LowRank) {
  auto l = MakeLowRankTrainable(RandomMatrix(7, 3, 7), RandomMatrix(3, 5, 8), {});
  CheckLayer(*l, 4, 40);
}

TEST(LinearGrad, LoraOnDenseBase) {
  std::shared_ptr<const LinearLayer> base = DenseLinear::FromMatrix(RandomMatrix(6, 5, 9), RandomVector(6, 19));
  auto l = MakeLoraTrainable(base, 2, 4.0f, 11);
  // B starts at 0: the adapter starts equal to its base.
  ThreadPool pool(1);
  std::vector<float> x = RandomVector(2 * 5, 12), y(2 * 6), yb(2 * 6);
  l->Forward(x.data(), 2, y.data(), pool);
  base->Forward(x.data(), 2, yb.data(), pool);
  EXPECT_EQ(y, yb);
  // Move B off zero so every gradient path is exercised.
  Param* b = l->Params()[1].second;
  b->value = RandomVector(b->numel(), 13, 0.3f);
  CheckLayer(*l, 4, 50);
}

TEST(LinearGrad, LoraOnPackedInt4Base) {
  MatrixRM w = RandomMatrix(8, 16, 14);
  WeightQuantArgs args;
  args.num_bits = 4;
  args.symmetric = true;
  args.strategy = QuantStrategy::kGroup;
  args.group_size = 8;
  auto packed = QuantizeRtn(w, args);  // round-to-nearest codes on the group grid
  ASSERT_TRUE(packed.ok()) << packed.status();
  std::shared_ptr<const LinearLayer> base = std::move(*packed);
  auto l = MakeLoraTrainable(base, 3, 3.0f, 15);
  EXPECT_EQ(l->kind(), "lora_r3_on_" + base->kind());
  Param* b = l->Params()[1].second;
  b->value = RandomVector(b->numel(), 16, 0.3f);
  CheckLayer(*l, 4, 60);
}

}  // namespace
}  // namespace squeeze::train
