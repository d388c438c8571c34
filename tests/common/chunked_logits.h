// The logits of a token sequence run through a model a chunk at a time (one
// KV cache across the chunks): chunk 1 is token-by-token decode, chunk >=
// the length one whole-sequence forward. For tests that compare models (or
// kernel variants) across the decode / small-batch / prefill paths.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"

namespace squeeze::test_inputs {

// [tokens, vocab] logits of every position; a failed Forward is a test
// failure, and the rows from that chunk on are left unset.
inline MatrixRM ChunkedLogits(const Model& m, const std::vector<int>& tokens, int chunk, ThreadPool& pool) {
  KVCache cache(m, static_cast<int>(tokens.size()));
  MatrixRM all(static_cast<int64_t>(tokens.size()), m.config.vocab_size);
  for (size_t p = 0; p < tokens.size(); p += chunk) {
    const size_t n = std::min<size_t>(chunk, tokens.size() - p);
    MatrixRM logits;
    const absl::Status st = Forward(m, absl::MakeConstSpan(tokens).subspan(p, n), static_cast<int>(p), cache, logits,
                                    true, pool);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) return all;
    all.middleRows(static_cast<int64_t>(p), static_cast<int64_t>(n)) = logits;
  }
  return all;
}

}  // namespace squeeze::test_inputs
