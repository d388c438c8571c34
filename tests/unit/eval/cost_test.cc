// Analytic parameter / byte / FLOP counts checked by hand on a tiny config.
#include "workers/engine/eval/cost.h"

#include <gtest/gtest.h>

#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

ModelConfig Tiny() {
  ModelConfig c;
  c.dim = 8;
  c.hidden_dim = 12;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 16;
  c.max_seq_len = 32;
  c.tie_word_embeddings = true;
  return c;
}

TEST(CostTest, DenseTinyModelByHand) {
  const Model m = MakeRandomModel(Tiny(), 1);
  const ModelCost c = ComputeModelCost(m, 10);
  // Per layer: q 8x8, k 4x8, v 4x8, o 8x8, gate/up 12x8, down 8x12 = 64+32+32+64+96+96+96 = 480.
  EXPECT_EQ(c.macs_linears, 2 * 480);
  EXPECT_EQ(c.macs_linears_ideal, 2 * 480);
  EXPECT_EQ(c.macs_head, 16 * 8);  // tied head
  // QK^T + AV: 2 heads * 4 dims * 10 keys each, 2 layers.
  EXPECT_EQ(c.macs_attention, 2 * (2 * 2 * 4 * 10));
  EXPECT_EQ(c.macs_per_token, 960 + 128 + 320);
  EXPECT_EQ(c.flops_per_token, 2 * 1408);
  EXPECT_EQ(c.ideal_flops_per_token, 2 * 1408);
  // Prefill of 10 tokens: mean keys per token = 5.5 -> attention 2 * 2 * 8 * 5.5 = 176.
  EXPECT_DOUBLE_EQ(c.prefill_flops_per_token, 2.0 * (960 + 128 + 176));
  // Parameters: embedding 128 + norms (2 layers * 2 * 8 + 8 = 40) + linears 960.
  EXPECT_EQ(c.params_total, 128 + 40 + 960);
  EXPECT_EQ(c.params_nonzero, c.params_total);
  EXPECT_EQ(c.bytes_total, 4 * (128 + 40 + 960));
  ASSERT_EQ(c.by_kind.count("dense_f32"), 1u);
  EXPECT_EQ(c.by_kind.at("dense_f32").layers, 14);
  EXPECT_EQ(ComputeModelCost(m).context_len, 32);
}

// A layer kind with structural zeros (or a factorized one) for the counting rules.
class FakeLinear final : public LinearLayer {
 public:
  FakeLinear(int64_t in, int64_t out, int64_t nonzero, std::string kind)
      : in_(in), out_(out), nz_(nonzero), kind_(std::move(kind)) {}
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void Forward(const float*, int64_t, float*, ThreadPool&) const override {}
  MatrixRM DenseWeight() const override { return MatrixRM::Zero(out_, in_); }
  absl::Span<const float> bias() const override { return {}; }
  std::string kind() const override { return kind_; }
  int64_t StorageBytes() const override { return nz_; }
  std::vector<std::pair<std::string, TensorView>> StoredTensors() const override { return {}; }
  int64_t NonZeroWeights() const override { return nz_; }

 private:
  int64_t in_, out_, nz_;
  std::string kind_;
};

TEST(CostTest, SparseAndFactorizedKindsAndUntiedHead) {
  ModelConfig cfg = Tiny();
  cfg.tie_word_embeddings = false;
  Model m = MakeRandomModel(cfg, 2);
  // 2:4 sparse gate (half the weights): the sparse kernel runs its 48 stored values.
  m.blocks[0].gate_proj = std::make_unique<FakeLinear>(8, 12, 48, "sparse_2of4");
  // Rank-2 factorization of up: r*(in+out) = 2*20 = 40 really run.
  m.blocks[0].up_proj = std::make_unique<FakeLinear>(8, 12, 40, "lowrank_r2");
  const ModelCost c = ComputeModelCost(m, 4);
  EXPECT_EQ(c.macs_linears, 960 - 96 - 96 + 48 + 40);
  EXPECT_EQ(c.macs_linears_ideal, 960 - 96 - 96 + 48 + 40);
  EXPECT_EQ(c.macs_head, 128);  // untied lm_head [16, 8]
  EXPECT_EQ(c.params_total, 128 + 40 + 960 + 128);
  EXPECT_EQ(c.params_nonzero, c.params_total - 48 - 56);
  EXPECT_EQ(c.by_kind.at("sparse_2of4").kernel_macs, 48);
  EXPECT_EQ(c.by_kind.at("sparse_2of4").ideal_macs, 48);
  EXPECT_EQ(c.by_kind.at("lowrank_r2").kernel_macs, 40);
  EXPECT_EQ(c.bytes_linears, 4 * (960 - 192 + 128) + 48 + 40);
  EXPECT_EQ(c.ideal_flops_per_token, c.flops_per_token);  // both kinds run only what they store
  // A bitmask-stored gate keeps its 48 values but its kernel runs full width.
  m.blocks[0].gate_proj = std::make_unique<FakeLinear>(8, 12, 48, "sparse_bitmask");
  const ModelCost b = ComputeModelCost(m, 4);
  EXPECT_EQ(b.by_kind.at("sparse_bitmask").kernel_macs, 96);
  EXPECT_EQ(b.by_kind.at("sparse_bitmask").ideal_macs, 48);
  EXPECT_EQ(b.macs_linears, c.macs_linears + 48);
  EXPECT_EQ(b.macs_linears_ideal, c.macs_linears_ideal);
  // Sliding window caps the keys.
  m.config.sliding_window = 3;
  EXPECT_EQ(ComputeModelCost(m, 10).macs_attention, 2 * (2 * 8 * 3));
}

}  // namespace
}  // namespace squeeze

namespace squeeze {
namespace {

// Pruning by masking leaves zeros in a dense matrix: non-zero parameters and
// ideal MACs count them, kernel MACs and bytes do not change.
TEST(CostTest, MaskedDenseLayerCountsItsZeros) {
  const ModelConfig cfg = Tiny();
  Model m = MakeRandomModel(cfg, 4);
  const ModelCost before = ComputeModelCost(m, 4);
  MatrixRM w = m.blocks[1].down_proj->DenseWeight();  // [8, 12]
  for (int64_t r = 0; r < w.rows(); ++r) {
    for (int64_t c = 0; c < 5; ++c) w(r, c) = 0.0f;  // 40 zeros
  }
  m.blocks[1].down_proj = DenseLinear::FromMatrix(w);
  EXPECT_EQ(LinearNonZeroWeights(*m.blocks[1].down_proj), 96 - 40);
  const ModelCost after = ComputeModelCost(m, 4);
  EXPECT_EQ(after.params_nonzero, before.params_nonzero - 40);
  EXPECT_EQ(after.macs_linears_ideal, before.macs_linears_ideal - 40);
  EXPECT_EQ(after.ideal_flops_per_token, before.ideal_flops_per_token - 80);
  EXPECT_EQ(after.macs_linears, before.macs_linears);
  EXPECT_EQ(after.params_total, before.params_total);
  EXPECT_EQ(after.bytes_total, before.bytes_total);
}

}  // namespace
}  // namespace squeeze

#include "workers/methods/lowrank/factorized_linear.h"

namespace squeeze {
namespace {

// A real rank-2 FactorizedLinear (not a stand-in) counts r*(in+out) MACs and
// non-zero parameters, so a low-rank job's report shows its FLOPs drop.
TEST(CostTest, RealFactorizedLayerCountsItsRank) {
  Model m = MakeRandomModel(Tiny(), 5);
  const ModelCost before = ComputeModelCost(m, 4);
  auto up = FactorizedLinear::Create(MatrixRM::Random(12, 2), MatrixRM::Random(2, 8));
  ASSERT_TRUE(up.ok()) << up.status();
  m.blocks[0].up_proj = std::move(*up);
  const ModelCost after = ComputeModelCost(m, 4);
  EXPECT_EQ(after.macs_linears, before.macs_linears - 96 + 2 * (8 + 12));
  EXPECT_EQ(after.params_nonzero, before.params_nonzero - 96 + 40);
  EXPECT_EQ(after.by_kind.at("lowrank_r2").kernel_macs, 40);
  EXPECT_LT(after.flops_per_token, before.flops_per_token);
}

}  // namespace
}  // namespace squeeze
