// The small random-model configs the eval tests share (one definition, so the
// latency and generation tests that pair up run on the same shapes).
#pragma once

#include "workers/engine/model/model_config.h"

namespace squeeze::testing {

// The latency tests' model: dim 16, 2 query heads of 8 dims sharing 1 KV
// head, hidden 32, 2 layers, vocab 24, context 32, tied embeddings.
inline ModelConfig TinyLatencyConfig() {
  ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 32;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 8;
  c.vocab_size = 24;
  c.max_seq_len = 32;
  c.tie_word_embeddings = true;
  return c;
}

// The generation tests' model over ByteTokenizer's ids (vocab 259): dim 32,
// 4 query heads of 8 dims sharing 1 KV head, hidden 48, 2 layers, context 40.
inline ModelConfig ByteGenerateConfig(bool tied) {
  ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 1;
  c.head_dim = 8;
  c.vocab_size = 259;
  c.max_seq_len = 40;
  c.tie_word_embeddings = tied;
  return c;
}

}  // namespace squeeze::testing
