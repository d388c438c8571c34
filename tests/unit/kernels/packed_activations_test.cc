// PackedIntLinear's activation option (packed_int_linear.h, PackedActivations):
// fp32 stays the default; with int8 the layer's Forward equals the plain
// int8-activation reference (PackedIntGemmQ8Reference) bit for bit under every
// kernel variant, for every layout (groups 32/64/128, channel, tensor,
// asymmetric, g_idx, 3-bit without SIMD), decode and prefill row counts; the
// option parses and refuses bad names; SetPackedActivations reaches every
// packed layer of a real stories260K model and changes its logits by no more
// than the activation rounding allows.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"
#include "tests/unit/kernels/packed_test_weights.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/kernels/cpu/packed_int_gemm.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/rtn.h"

namespace squeeze::kernels {
namespace {

using testing::AllVariants;
using testing::BitEqual;
using testing::RandomFloats;
using testing::Variant;
using testing::VariantScope;

using testing::RandomPackedLayer;

kernels::PackedIntWeights ViewOf(const PackedIntLinear& l, std::vector<uint32_t>& packed,
                                 std::vector<float>& scales, std::vector<int32_t>& zp) {
  // Rebuild the kernel view from the layer's stored tensors (what Forward passes).
  packed.clear();
  scales.clear();
  zp.clear();
  for (const auto& [name, t] : l.StoredTensors()) {
    if (name == "weight_packed") {
      packed.resize(t.nbytes / 4);
      std::memcpy(packed.data(), t.data, t.nbytes);
    } else if (name == "weight_scale") {
      scales.resize(t.nbytes / 4);
      std::memcpy(scales.data(), t.data, t.nbytes);
    } else if (name == "weight_zero_point") {
      zp.resize(t.nbytes / 4);
      std::memcpy(zp.data(), t.data, t.nbytes);
    }
  }
  kernels::PackedIntWeights w;
  w.num_bits = l.args().num_bits;
  w.rows = l.out_features();
  w.cols = l.in_features();
  w.words_per_row = l.words_per_row();
  w.packed = packed.data();
  w.groups_per_row = l.groups_per_row();
  w.group_size = l.args().EffectiveGroupSize(l.in_features());
  w.scales = scales.data();
  w.zero_points = zp.empty() ? nullptr : zp.data();
  w.g_idx = l.g_idx().empty() ? nullptr : l.g_idx().data();
  return w;
}

TEST(PackedActivations, ParsesNamesAndRefusesOthers) {
  EXPECT_EQ(*ParsePackedActivations("fp32"), PackedActivations::kFp32);
  EXPECT_EQ(*ParsePackedActivations("int8"), PackedActivations::kInt8);
  EXPECT_STREQ(PackedActivationsName(PackedActivations::kInt8), "int8");
  EXPECT_STREQ(PackedActivationsName(PackedActivations::kFp32), "fp32");
  for (const char* bad : {"", "int4", "INT8", "fp16"}) {
    auto a = ParsePackedActivations(bad);
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(a.status()));
    EXPECT_NE(std::string(a.status().message()).find("\"" + std::string(bad) + "\""), std::string::npos)
        << a.status();
  }
}

TEST(PackedActivations, Int8LayerForwardEqualsTheInt8ReferenceBitForBit) {
  using Case = testing::PackedLayerCase;
  const Case cases[] = {
      {4, true, QuantStrategy::kGroup, 32, false, 320},    {4, false, QuantStrategy::kGroup, 64, false, 320},
      {4, true, QuantStrategy::kGroup, 128, false, 300},   {8, true, QuantStrategy::kGroup, 32, false, 320},
      {8, false, QuantStrategy::kGroup, 128, false, 300},  {8, true, QuantStrategy::kChannel, 0, false, 172},
      {4, false, QuantStrategy::kChannel, 0, false, 77},   {4, true, QuantStrategy::kTensor, 0, false, 96},
      {4, true, QuantStrategy::kGroup, 64, true, 256},     {3, false, QuantStrategy::kGroup, 32, false, 96},
  };
  const int64_t out = 37;
  uint64_t seed = 40;
  ThreadPool pool(3);
  for (const Case& c : cases) {
    auto layer =
        RandomPackedLayer(c.Args(), out, c.in, seed++, {.zero_first_scale = true, .g_idx_stride = c.g_idx ? 7 : 0});
    ASSERT_NE(layer, nullptr);
    EXPECT_EQ(layer->activations(), PackedActivations::kFp32);  // the default
    std::vector<uint32_t> packed;
    std::vector<float> scales;
    std::vector<int32_t> zp;
    const PackedIntWeights w = ViewOf(*layer, packed, scales, zp);
    for (int64_t n : {1, 3, 40}) {
      const auto x = RandomFloats(n * c.in, seed++, -3.0f, 3.0f);
      std::vector<float> want(n * out), exact(n * out);
      PackedIntGemmQ8Reference(w, x.data(), n, layer->bias().data(), want.data());
      layer->set_activations(PackedActivations::kFp32);
      layer->Forward(x.data(), n, exact.data(), pool);
      layer->set_activations(PackedActivations::kInt8);
      ASSERT_EQ(layer->activations(), PackedActivations::kInt8);
      // The option really switches the arithmetic: the int8 result is not the fp32 one.
      EXPECT_FALSE(BitEqual(want, exact)) << layer->kind();
      for (const Variant& var : AllVariants()) {
        VariantScope scoped(var);
        SCOPED_TRACE(layer->kind() + " in=" + std::to_string(c.in) + " n=" + std::to_string(n) + " " + var.Name());
        std::vector<float> y(n * out, 99.0f);
        layer->Forward(x.data(), n, y.data(), pool);
        EXPECT_TRUE(BitEqual(y, want));
      }
    }
  }
}

const std::string kStories = std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K";

TEST(PackedActivations, SetOnStories260KReachesEveryPackedLayer) {
  if (!std::filesystem::exists(kStories + "/stories260K.bin")) GTEST_SKIP() << kStories << " is absent (../shared)";
  auto m = LoadModel(kStories + "/stories260K.bin");
  ASSERT_TRUE(m.ok()) << m.status();
  WeightQuantArgs args;
  args.num_bits = 4;
  args.symmetric = true;
  args.strategy = QuantStrategy::kGroup;
  args.group_size = 32;
  int64_t n_packed = 0;
  for (LinearSlot& s : m->AllLinears()) {
    auto q = QuantizeRtn((*s.slot)->DenseWeight(), args);
    ASSERT_TRUE(q.ok()) << q.status();
    *s.slot = std::move(*q);
    ++n_packed;
  }
  EXPECT_EQ(n_packed, 7 * m->config.n_layers);  // tied embeddings: no lm_head
  const std::vector<int> ids = {1, 403, 407, 261, 378, 11, 300, 270, 32, 5, 296, 67, 400, 261, 262, 498};
  auto logits = [&](const Model& model) {
    KVCache cache(model, static_cast<int>(ids.size()));
    MatrixRM l;
    EXPECT_TRUE(Forward(model, ids, 0, cache, l).ok());
    return l;
  };
  const MatrixRM fp32 = logits(*m);
  EXPECT_EQ(SetPackedActivations(*m, PackedActivations::kInt8), n_packed);
  for (LinearSlot& s : m->AllLinears()) {
    EXPECT_EQ(static_cast<const PackedIntLinear&>(**s.slot).activations(), PackedActivations::kInt8) << s.name;
  }
  const MatrixRM int8 = logits(*m);
  // The int8 rounding (half a step of max|x|/127 per group of 32) moves the
  // logits by well under 2% of their range through the 5 layers, and not 0.
  double max_diff = 0.0, range = 0.0;
  int agree = 0;
  for (int64_t t = 0; t < fp32.rows(); ++t) {
    range = std::max<double>(range, fp32.row(t).maxCoeff() - fp32.row(t).minCoeff());
    max_diff = std::max<double>(max_diff, (fp32.row(t) - int8.row(t)).cwiseAbs().maxCoeff());
    Eigen::Index a = 0, b = 0;
    fp32.row(t).maxCoeff(&a);
    int8.row(t).maxCoeff(&b);
    agree += a == b;
  }
  EXPECT_GT(max_diff, 0.0);
  EXPECT_LT(max_diff, 0.02 * range) << "max |diff| " << max_diff << " range " << range;
  EXPECT_GE(agree, static_cast<int>(ids.size()) - 2);
  // And back: fp32 gives the first logits bit for bit.
  EXPECT_EQ(SetPackedActivations(*m, PackedActivations::kFp32), n_packed);
  const MatrixRM again = logits(*m);
  EXPECT_EQ(std::memcmp(again.data(), fp32.data(), sizeof(float) * fp32.size()), 0);
}

}  // namespace
}  // namespace squeeze::kernels
