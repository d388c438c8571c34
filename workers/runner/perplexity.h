// Perplexity of a model on a token stream, for report.json.
//
// STOPGAP: workers/engine/eval is being written in parallel; once it exports
// a perplexity API the runner should call it and this file goes away. Until
// then: the tokens are cut into consecutive non-overlapping windows of
// seq_len tokens, each scored as an independent sequence from position 0
// (the first token of a window is context only), and
//   ppl = exp(mean over scored tokens of -log p(token | previous tokens)),
// with log-softmax computed in double.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/model.h"

namespace squeeze {

struct PerplexityResult {
  double perplexity = 0.0;
  double mean_nll = 0.0;    // nats per token
  int64_t tokens_scored = 0;
};

absl::StatusOr<PerplexityResult> WindowedPerplexity(const Model& model, const std::vector<int>& tokens,
                                                    int seq_len, ThreadPool& pool);

}  // namespace squeeze
