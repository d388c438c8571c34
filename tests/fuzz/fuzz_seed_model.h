// The tiny models the fuzz seeds are made of (fuzz_seeds.cc) and that the
// safetensors target loads its inputs against (fixed config.json).
#pragma once

#include <string>

#include "workers/engine/formats/hf_config.h"
#include "workers/engine/model/model_config.h"

namespace squeeze::fuzz {

// HF seed: dim 16, 2 heads of 8 sharing one KV head, hidden 32, 1 layer,
// vocab 16, untied head (about 10 KB of fp32 weights).
inline ModelConfig SeedConfig() {
  ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 32;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 8;
  c.vocab_size = 16;
  c.max_seq_len = 16;
  c.tie_word_embeddings = false;
  return c;
}
inline std::string SeedConfigJson() { return HfConfigJson(SeedConfig()); }

// GGUF seed: rows a multiple of the 32-element ggml blocks, vocab 259 (the
// byte tokenizer's <unk> <s> </s> + 256 bytes, which GGUF's llama tokenizer
// requires).
inline ModelConfig GgufSeedConfig() {
  ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 32;
  c.n_layers = 1;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 259;
  c.max_seq_len = 16;
  c.tie_word_embeddings = true;
  return c;
}

}  // namespace squeeze::fuzz
