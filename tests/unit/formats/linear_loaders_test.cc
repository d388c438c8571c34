#include "workers/engine/formats/linear_loaders.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/formats/test_util.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/formats/safetensors.h"
#include "workers/engine/model/dense_linear.h"

namespace squeeze {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A stand-in for a compressed kind: W = scale * M, saved as "mat" + "scale".
class ScaledLinear final : public LinearLayer {
 public:
  ScaledLinear(TensorView mat, float scale) : mat_(std::move(mat)), scale_(scale) {
    scale_view_ = OwnedF32({scale_}, {1});
  }
  int64_t in_features() const override { return mat_.shape[1]; }
  int64_t out_features() const override { return mat_.shape[0]; }
  void Forward(const float* x, int64_t n, float* y, ThreadPool& pool) const override {
    DenseLinear::FromMatrix(DenseWeight())->Forward(x, n, y, pool);
  }
  MatrixRM DenseWeight() const override {
    auto v = ToFloat32(mat_);
    return ConstMapMatrixRM(v->data(), out_features(), in_features()) * scale_;
  }
  absl::Span<const float> bias() const override { return {}; }
  std::string kind() const override { return "scaled_test_v1"; }
  int64_t StorageBytes() const override { return static_cast<int64_t>(mat_.nbytes) + 4; }
  std::vector<std::pair<std::string, TensorView>> StoredTensors() const override {
    return {{"mat", mat_}, {"scale", scale_view_}};
  }

 private:
  TensorView mat_;
  float scale_;
  TensorView scale_view_;
};

Model SmallModel() {
  ModelConfig c;
  c.dim = 8;
  c.hidden_dim = 12;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 10;
  c.max_seq_len = 16;
  c.tie_word_embeddings = true;
  Model m;
  m.config = c;
  auto mat = [](int64_t r, int64_t k, uint32_t seed) {
    auto v = testing_util::RandomFloats(static_cast<size_t>(r * k), seed);
    return MatrixRM(ConstMapMatrixRM(v.data(), r, k));
  };
  m.embedding = mat(10, 8, 1);
  TransformerBlock b;
  b.attn_norm = testing_util::RandomFloats(8, 2);
  b.ffn_norm = testing_util::RandomFloats(8, 3);
  b.q_proj = DenseLinear::FromMatrix(mat(8, 8, 4));
  b.k_proj = DenseLinear::FromMatrix(mat(4, 8, 5));
  b.v_proj = DenseLinear::FromMatrix(mat(4, 8, 6));
  b.o_proj = DenseLinear::FromMatrix(mat(8, 8, 7));
  b.gate_proj = std::make_unique<ScaledLinear>(OwnedF32(testing_util::RandomFloats(96, 8), {12, 8}), 0.5f);
  b.up_proj = DenseLinear::FromMatrix(mat(12, 8, 9));
  b.down_proj = DenseLinear::FromMatrix(mat(8, 12, 10));
  m.blocks.push_back(std::move(b));
  m.final_norm = testing_util::RandomFloats(8, 11);
  return m;
}

TEST(LinearLoadersTest, CompressedKindRoundTripsThroughItsLoader) {
  const std::string dir = testing_util::FreshTestDir() + "/m";
  Model m = SmallModel();
  SaveOptions opts;
  opts.dtype = DType::kBF16;  // converts dense tensors only
  ASSERT_TRUE(SaveModel(m, dir, opts).ok());
  auto st = ReadSafetensors(dir + "/model.safetensors");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->tensors.at("model.layers.0.mlp.gate_proj.mat").dtype, DType::kF32);  // kept as given
  EXPECT_EQ(st->tensors.at("model.layers.0.mlp.up_proj.weight").dtype, DType::kBF16);

  // No loader registered yet: a clear error naming module and kind.
  auto missing = LoadModel(dir);
  EXPECT_THAT(missing.status().message(),
              AllOf(HasSubstr("model.safetensors"), HasSubstr("module model.layers.0.mlp.gate_proj"),
                    HasSubstr("kind scaled_test_v1"), HasSubstr("no loader is registered")));

  RegisterLinearLoader(
      "scaled_test_",
      [](const std::string& kind,
         const std::map<std::string, TensorView>& t) -> absl::StatusOr<std::unique_ptr<LinearLayer>> {
        auto mat = t.find("mat");
        auto scale = t.find("scale");
        if (mat == t.end() || scale == t.end()) return absl::InvalidArgumentError("needs mat and scale");
        auto s = ToFloat32(scale->second);
        if (!s.ok()) return s.status();
        return std::unique_ptr<LinearLayer>(std::make_unique<ScaledLinear>(mat->second, (*s)[0]));
      });
  auto loaded = LoadModel(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const LinearLayer& g = *loaded->blocks[0].gate_proj;
  EXPECT_EQ(g.kind(), "scaled_test_v1");
  EXPECT_EQ(g.DenseWeight(), m.blocks[0].gate_proj->DenseWeight());
  EXPECT_EQ(loaded->blocks[0].up_proj->kind(), "dense_bf16");

  // A loader whose layer has the wrong shape is rejected with the expected shape.
  RegisterLinearLoader(
      "scaled_test_v",
      [](const std::string&,
         const std::map<std::string, TensorView>&) -> absl::StatusOr<std::unique_ptr<LinearLayer>> {
        return std::unique_ptr<LinearLayer>(
            std::make_unique<ScaledLinear>(OwnedF32(std::vector<float>(14 * 8), {14, 8}), 1));
      });
  EXPECT_THAT(LoadModel(dir).status().message(),
              AllOf(HasSubstr("gate_proj"), HasSubstr("shape [14, 8], expected [12, 8]")));
}

TEST(LinearLoadersTest, LongestPrefixWins) {
  auto make = [](int id) {
    return [id](const std::string&,
                const std::map<std::string, TensorView>&) -> absl::StatusOr<std::unique_ptr<LinearLayer>> {
      return absl::InternalError(absl::StrCat(id));
    };
  };
  RegisterLinearLoader("lp_test_int", make(1));
  RegisterLinearLoader("lp_test_int4_g", make(2));
  EXPECT_EQ(FindLinearLoader("lp_test_int4_g128")("", {}).status().message(), "2");
  EXPECT_EQ(FindLinearLoader("lp_test_int8")("", {}).status().message(), "1");
  EXPECT_EQ(FindLinearLoader("lp_other"), nullptr);
}

}  // namespace
}  // namespace squeeze
