// Small deterministic inputs for tests that run recipes on synthetic models.
#pragma once

#include <cstdint>
#include <string>

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
