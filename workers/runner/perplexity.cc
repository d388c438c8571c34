#include "workers/runner/perplexity.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"

namespace squeeze {

absl::StatusOr<PerplexityResult> WindowedPerplexity(const Model& model, const std::vector<int>& tokens,
                                                    int seq_len, ThreadPool& pool) {
  if (seq_len < 2) return absl::InvalidArgumentError("perplexity window must hold at least 2 tokens");
  if (tokens.size() < 2) return absl::InvalidArgumentError("evaluation text has fewer than 2 tokens");
  KVCache cache(model, seq_len);
  MatrixRM logits;
  double nll = 0.0;
  int64_t scored = 0;
  for (size_t start = 0; start + 1 < tokens.size(); start += seq_len) {
    const size_t n = std::min<size_t>(seq_len, tokens.size() - start);
    if (n < 2) break;
    absl::Span<const int> window(tokens.data() + start, n);
    SQ_RETURN_IF_ERROR(Forward(model, window, 0, cache, logits, /*all_logits=*/true, pool));
    for (size_t t = 0; t + 1 < n; ++t) {
      const float* row = logits.data() + t * logits.cols();
      double mx = row[0];
      for (int64_t v = 1; v < logits.cols(); ++v) mx = std::max(mx, static_cast<double>(row[v]));
      double sum = 0.0;
      for (int64_t v = 0; v < logits.cols(); ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
      nll += (mx + std::log(sum)) - static_cast<double>(row[window[t + 1]]);
      ++scored;
    }
  }
  PerplexityResult r;
  r.tokens_scored = scored;
  r.mean_nll = nll / static_cast<double>(scored);
  r.perplexity = std::exp(r.mean_nll);
  return r;
}

}  // namespace squeeze
