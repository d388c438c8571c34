#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/train/train_model.h"

namespace squeeze::train {

std::vector<NamedParam> TrainModel::Params() {
  std::vector<NamedParam> out;
  if (!freeze_embedding) out.push_back({"model.embed_tokens.weight", &embedding});
  for (size_t l = 0; l < blocks.size(); ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    if (!freeze_norms) {
      out.push_back({p + "input_layernorm.weight", &blocks[l].attn_norm});
      out.push_back({p + "post_attention_layernorm.weight", &blocks[l].ffn_norm});
    }
    for (int w = 0; w < kNumBlockLinears; ++w) {
      for (auto& [name, param] : blocks[l].linears[w]->Params()) {
        out.push_back({absl::StrCat(p, BlockLinearSuffix(static_cast<BlockLinear>(w)), ".", name), param});
      }
    }
  }
  if (!freeze_norms) out.push_back({"model.norm.weight", &final_norm});
  if (lm_head) {
    for (auto& [name, param] : lm_head->Params()) out.push_back({"lm_head." + name, param});
  }
  return out;
}

void TrainModel::ZeroGrad() {
  // Frozen parameters too (their gradients are computed but never used).
  embedding.ZeroGrad();
  final_norm.ZeroGrad();
  for (TrainBlock& b : blocks) {
    b.attn_norm.ZeroGrad();
    b.ffn_norm.ZeroGrad();
    for (auto& l : b.linears)
      for (auto& [n, p] : l->Params()) p->ZeroGrad();
  }
  if (lm_head)
    for (auto& [n, p] : lm_head->Params()) p->ZeroGrad();
}

Model TrainModel::ToModel() const {
  Model m;
  m.config = config;
  m.config.n_layers = static_cast<int>(blocks.size());
  m.embedding = ConstMapMatrixRM(embedding.value.data(), config.vocab_size, config.dim);
  for (const TrainBlock& tb : blocks) {
    TransformerBlock b;
    b.attn_norm = tb.attn_norm.value;
    b.ffn_norm = tb.ffn_norm.value;
    b.q_proj = tb.lin(BlockLinear::kQ).ToInference();
    b.k_proj = tb.lin(BlockLinear::kK).ToInference();
    b.v_proj = tb.lin(BlockLinear::kV).ToInference();
    b.o_proj = tb.lin(BlockLinear::kO).ToInference();
    b.gate_proj = tb.lin(BlockLinear::kGate).ToInference();
    b.up_proj = tb.lin(BlockLinear::kUp).ToInference();
    b.down_proj = tb.lin(BlockLinear::kDown).ToInference();
    m.blocks.push_back(std::move(b));
  }
  m.final_norm = final_norm.value;
  if (lm_head) m.lm_head = lm_head->ToInference();
  return m;
}

LinearConverter DenseConverter(bool keep_sparsity) {
  return [keep_sparsity](const std::string&, const LinearLayer& layer)
             -> absl::StatusOr<std::unique_ptr<TrainableLinear>> {
    return DenseTrainableFrom(layer, keep_sparsity);
  };
}

absl::StatusOr<TrainModel> FromModel(const Model& model, const LinearConverter& convert) {
  SQ_RETURN_IF_ERROR(ValidateModel(model));
  TrainModel t;
  t.config = model.config;
  t.config.n_layers = static_cast<int>(model.blocks.size());
  t.embedding.Init({model.embedding.rows(), model.embedding.cols()},
                   std::vector<float>(model.embedding.data(), model.embedding.data() + model.embedding.size()),
                   false);
  for (size_t l = 0; l < model.blocks.size(); ++l) {
    const TransformerBlock& b = model.blocks[l];
    TrainBlock tb;
    tb.attn_norm.Init({static_cast<int64_t>(b.attn_norm.size())}, b.attn_norm, false);
    tb.ffn_norm.Init({static_cast<int64_t>(b.ffn_norm.size())}, b.ffn_norm, false);
    const LinearLayer* layers[kNumBlockLinears] = {b.q_proj.get(),    b.k_proj.get(),  b.v_proj.get(),
                                                   b.o_proj.get(),    b.gate_proj.get(), b.up_proj.get(),
                                                   b.down_proj.get()};
    for (int w = 0; w < kNumBlockLinears; ++w) {
      const std::string name = absl::StrCat("model.layers.", l, ".", BlockLinearSuffix(static_cast<BlockLinear>(w)));
      SQ_ASSIGN_OR_RETURN(tb.linears[w], convert(name, *layers[w]));
    }
    t.blocks.push_back(std::move(tb));
  }
  t.final_norm.Init({static_cast<int64_t>(model.final_norm.size())}, model.final_norm, false);
  if (model.lm_head) {
    SQ_ASSIGN_OR_RETURN(t.lm_head, convert("lm_head", *model.lm_head));
  }
  return t;
}

TrainModel InitTrainModel(const ModelConfig& config, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto matrix = [&rng](int64_t rows, int64_t cols, float stddev) {
    std::normal_distribution<float> dist(0.0f, stddev);
    MatrixRM m(rows, cols);
    for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = dist(rng);
    return m;
  };
  const int64_t dim = config.dim, hd = config.head_dim;
  const float std0 = 0.02f, std_out = 0.02f / std::sqrt(2.0f * std::max(1, config.n_layers));
  TrainModel t;
  t.config = config;
  MatrixRM e = matrix(config.vocab_size, dim, std0);
  t.embedding.Init({config.vocab_size, dim}, std::vector<float>(e.data(), e.data() + e.size()), false);
  for (int l = 0; l < config.n_layers; ++l) {
    TrainBlock b;
    b.attn_norm.Init({dim}, std::vector<float>(dim, 1.0f), false);
    b.ffn_norm.Init({dim}, std::vector<float>(dim, 1.0f), false);
    const int64_t qo = config.n_heads * hd, kvo = config.n_kv_heads * hd, ffn = config.hidden_dim;
    const int64_t shapes[kNumBlockLinears][2] = {{qo, dim}, {kvo, dim}, {kvo, dim}, {dim, qo},
                                                 {ffn, dim}, {ffn, dim}, {dim, ffn}};
    for (int w = 0; w < kNumBlockLinears; ++w) {
      const bool out_proj = w == static_cast<int>(BlockLinear::kO) || w == static_cast<int>(BlockLinear::kDown);
      std::vector<float> bias;
      if (config.attention_bias && w <= static_cast<int>(BlockLinear::kV)) bias.assign(shapes[w][0], 0.0f);
      b.linears[w] = MakeDenseTrainable(matrix(shapes[w][0], shapes[w][1], out_proj ? std_out : std0),
                                        std::move(bias), false);
    }
    t.blocks.push_back(std::move(b));
  }
  t.final_norm.Init({dim}, std::vector<float>(dim, 1.0f), false);
  if (!config.tie_word_embeddings) t.lm_head = MakeDenseTrainable(matrix(config.vocab_size, dim, std0), {}, false);
  return t;
}

}  // namespace squeeze::train
