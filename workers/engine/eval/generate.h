// Text generation with a KV cache: greedy, or temperature + top-p (nucleus)
// sampling from a seeded std::mt19937_64 (same seed + model + prompt => same
// tokens).
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/model.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze {

struct GenerateOptions {
  int max_tokens = 128;      // new tokens at most (also capped by the context length)
  float temperature = 0.0f;  // <= 0: greedy (argmax, lowest id on ties)
  float top_p = 1.0f;        // nucleus mass in (0, 1]; 1 = the full distribution
  uint64_t seed = 0;
  // Stop when the model emits EOS, or BOS (llama2.c's document separator).
  bool stop_at_eos = true;
};

struct GenerateResult {
  std::vector<int> prompt_ids;
  std::vector<int> ids;       // generated ids (without a final EOS/BOS)
  std::string text;           // decoded generated text
  std::string stop_reason;    // "eos", "bos", "max_tokens", "context_full"
  double prefill_seconds = 0;
  double decode_seconds = 0;  // sum over decode steps (excludes prefill)
};

// Picks the next token from logits[0, vocab). Greedy when temperature <= 0.
// Sampling: p = softmax(logits / T) in double; with top_p < 1 keep the
// smallest set of most likely tokens (ties by lower id) whose mass >= top_p,
// renormalised; draw u = (rng() >> 11) * 2^-53 and walk the cumulative sum.
int SampleToken(const float* logits, int vocab, float temperature, float top_p, std::mt19937_64& rng);

// Generates after `prompt_ids` (non-empty, e.g. [BOS] + encoded prompt).
// on_token(id, piece) streams each generated token's text piece
// (Tokenizer::DecodePiece) as it is produced; may be empty.
absl::StatusOr<GenerateResult> Generate(const Model& model, const Tokenizer& tokenizer,
                                        const std::vector<int>& prompt_ids, const GenerateOptions& options,
                                        const std::function<void(int id, const std::string& piece)>& on_token,
                                        ThreadPool& pool = ThreadPool::Default());

}  // namespace squeeze
