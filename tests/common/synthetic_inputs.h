// Small deterministic inputs for tests that run recipes on synthetic models.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "workers/engine/core/tensor.h"
#include "workers/engine/model/model_config.h"
#include "workers/engine/tokenizer/llama2c_byte_vocab.h"

namespace squeeze::test_inputs {

// A llama2.c tokenizer.bin (llama2c_tokenizer.h) with only <unk>, <s>, </s>
// and the 256 byte pieces: every text encodes byte by byte (vocab 259).
inline std::string ByteTokenizerBin() { return Llama2cByteVocabBin(); }

// The small grouped-query config most synthetic-model tests use: dim 32,
// 4 query heads of 8 dims sharing 2 KV heads; the rest as given.
inline ModelConfig SmallGqaConfig(int hidden_dim, int n_layers, int vocab_size, int max_seq_len, bool tied) {
  ModelConfig c;
  c.dim = 32;
  c.hidden_dim = hidden_dim;
  c.n_layers = n_layers;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = vocab_size;
  c.max_seq_len = max_seq_len;
  c.tie_word_embeddings = tied;
  return c;
}

// The config of the forward-pass tests: dim 48, 6 query heads of 8 dims
// sharing 2 KV heads, hidden 100, 3 layers, vocab 97, context 64.
inline ModelConfig ForwardTestConfig(bool tied, bool bias) {
  ModelConfig c;
  c.dim = 48;
  c.hidden_dim = 100;
  c.n_layers = 3;
  c.n_heads = 6;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 97;
  c.max_seq_len = 64;
  c.rope_theta = 10000.0f;
  c.tie_word_embeddings = tied;
  c.attention_bias = bias;
  return c;
}

// n token ids uniform in [0, vocab) from `seed`.
inline std::vector<int> RandomTokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> t(n);
  for (int& x : t) x = static_cast<int>(rng() % vocab);
  return t;
}

// max |got - want| / max(1, max |want|); 1e30 when the shapes differ.
inline float RelDiff(const MatrixRM& got, const MatrixRM& want) {
  if (got.rows() != want.rows() || got.cols() != want.cols()) return 1e30f;
  const float scale = std::max(1.0f, want.cwiseAbs().maxCoeff());
  return (got - want).cwiseAbs().maxCoeff() / scale;
}

// 200 English-like words drawn by an LCG from `seed`, a sentence every 9
// words (one per line): calibration text for byte-level synthetic models.
inline std::string WordSalad(uint32_t seed) {
  const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "saw", "big", "red", "dog", "run"};
  std::string text;
  uint32_t x = seed;
  for (int i = 0; i < 200; ++i) {
    x = x * 1664525u + 1013904223u;
    text += words[(x >> 16) % 12];
    text += (i % 9 == 8) ? ".\n" : " ";
  }
  return text;
}

}  // namespace squeeze::test_inputs
