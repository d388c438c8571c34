// Perplexity evaluation.
//
// Two protocols:
//  - kRolling (default), lm-evaluation-harness's loglikelihood_rolling: each
//    document is tokenized without BOS and cut by get_rolling_token_windows
//    (prefix_token = BOS, max_seq_len = seq_len, context_len = 1) +
//    make_disjoint_window: the first window is [BOS] + t[0, L-1) scoring
//    t[0, L); each later window is the L tokens before its last target and
//    scores only tokens not scored before. Every token is scored exactly once.
//  - kGptq, the GPTQ paper's protocol: documents joined with "\n\n",
//    tokenized once without BOS, cut into floor(n / L) non-overlapping windows
//    of L tokens (the tail is dropped); each window scores its tokens 1..L-1
//    (GPTQ's script divides by L per window; we report the true count).
// Result: total nll (nats), tokens scored, nll per token, perplexity =
// exp(nll per token), bits per byte = nll / (ln 2 * UTF-8 bytes), where bytes
// = the documents' bytes (rolling) or the decoded bytes of the scored tokens
// (gptq).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/model.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze {

enum class PplProtocol { kRolling, kGptq };
absl::StatusOr<PplProtocol> ParsePplProtocol(absl::string_view name);  // "rolling" | "gptq"

struct PerplexityOptions {
  int seq_len = 0;  // window length L; 0 = model.config.max_seq_len
  PplProtocol protocol = PplProtocol::kRolling;
  // (windows done, windows total), after each window.
  std::function<void(int64_t done, int64_t total)> progress;
};

struct PerplexityResult {
  int64_t tokens = 0;   // tokens scored
  int64_t windows = 0;  // forward passes
  int64_t bytes = 0;    // UTF-8 bytes the scored tokens cover
  double nll = 0;       // total negative log-likelihood, nats
  double nll_per_token = 0;
  double perplexity = 0;
  double bits_per_byte = 0;
};

// One forward pass: logits row first_scored_row + j predicts targets[j].
struct EvalWindow {
  std::vector<int> input;
  int64_t first_scored_row = 0;
  std::vector<int> targets;
};

// lm_eval get_rolling_token_windows(tokens, prefix_token, max_seq_len,
// context_len=1) + make_disjoint_window. Empty for empty tokens.
std::vector<EvalWindow> RollingWindows(const std::vector<int>& tokens, int prefix_token, int max_seq_len);
// GPTQ windows of seq_len tokens, tail dropped.
std::vector<EvalWindow> GptqWindows(const std::vector<int>& tokens, int seq_len);

// Scores windows (adds to *result's tokens/windows/nll; bytes untouched).
absl::Status ScoreWindows(const Model& model, const std::vector<EvalWindow>& windows, int seq_len,
                          PerplexityResult* result, const std::function<void(int64_t, int64_t)>& progress,
                          ThreadPool& pool = ThreadPool::Default());

// Evaluates `documents` (each a separate text; see the protocols above).
absl::StatusOr<PerplexityResult> EvaluatePerplexity(const Model& model, const Tokenizer& tokenizer,
                                                    const std::vector<std::string>& documents,
                                                    const PerplexityOptions& options,
                                                    ThreadPool& pool = ThreadPool::Default());

// Splits `text` at lines equal to `separator` (e.g. "<|endoftext|>"), trims
// newlines around each piece and drops empty pieces. An empty separator
// returns {text}.
std::vector<std::string> SplitDocuments(const std::string& text, const std::string& separator);

}  // namespace squeeze
