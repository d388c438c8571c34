#include "workers/engine/model/synthetic_model.h"

#include <cmath>
#include <random>

#include "workers/engine/model/dense_linear.h"

namespace squeeze {
namespace {

MatrixRM RandomMatrix(int64_t rows, int64_t cols, float stddev, std::mt19937_64& rng) {
  std::normal_distribution<float> dist(0.0f, stddev);
  MatrixRM m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = dist(rng);
  return m;
}

std::unique_ptr<LinearLayer> RandomLinear(int64_t out, int64_t in, bool bias, std::mt19937_64& rng) {
  MatrixRM w = RandomMatrix(out, in, 1.0f / std::sqrt(static_cast<float>(in)), rng);
  std::vector<float> b;
  if (bias) {
    std::normal_distribution<float> dist(0.0f, 0.1f);
    for (int64_t i = 0; i < out; ++i) b.push_back(dist(rng));
  }
  return DenseLinear::FromMatrix(std::move(w), std::move(b));
}

std::vector<float> RandomNorm(int64_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> dist(1.0f, 0.1f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace

Model MakeRandomModel(const ModelConfig& config, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Model m;
  m.config = config;
  const int64_t dim = config.dim, hd = config.head_dim;
  m.embedding = RandomMatrix(config.vocab_size, dim, 1.0f, rng);
  for (int l = 0; l < config.n_layers; ++l) {
    TransformerBlock b;
    b.attn_norm = RandomNorm(dim, rng);
    b.ffn_norm = RandomNorm(dim, rng);
    b.q_proj = RandomLinear(config.n_heads * hd, dim, config.attention_bias, rng);
    b.k_proj = RandomLinear(config.n_kv_heads * hd, dim, config.attention_bias, rng);
    b.v_proj = RandomLinear(config.n_kv_heads * hd, dim, config.attention_bias, rng);
    b.o_proj = RandomLinear(dim, config.n_heads * hd, false, rng);
    b.gate_proj = RandomLinear(config.hidden_dim, dim, false, rng);
    b.up_proj = RandomLinear(config.hidden_dim, dim, false, rng);
    b.down_proj = RandomLinear(dim, config.hidden_dim, false, rng);
    m.blocks.push_back(std::move(b));
  }
  m.final_norm = RandomNorm(dim, rng);
  if (!config.tie_word_embeddings) m.lm_head = RandomLinear(config.vocab_size, dim, false, rng);
  return m;
}

}  // namespace squeeze
