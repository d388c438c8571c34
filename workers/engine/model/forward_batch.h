// Batched forward: B independent sequences through the model in one pass.
//
// Each sequence b has its own token ids (n_b >= 1, lengths may differ), its
// own KVCache and its own start position p_b (its tokens sit at positions
// [p_b, p_b + n_b)). ForwardBatch stacks the token rows of all sequences into
// one activation matrix H [N, dim], N = sum_b n_b, sequence b occupying rows
// [off_b, off_b + n_b) with off_b = n_0 + ... + n_{b-1}. Per block:
//   a = RMSNorm(H)                              (row-wise, all N rows)
//   Q, K, V = q/k/v_proj(a)                     ONE LinearLayer::Forward each, N rows
//   RoPE(Q, K) with each row's own position     (all N rows)
//   for each sequence b: write its K/V rows to cache_b rows [p_b, p_b + n_b),
//     causal attention of its Q rows against cache_b rows [0, p_b + n_b)
//   H += o_proj(attn)                           ONE Forward, N rows
//   H += down_proj(silu(gate_proj(m)) * up_proj(m)), m = RMSNorm(H)   ONE Forward each
// So every linear layer (any storage kind, through linear.h) runs one matmul
// over all rows of the batch, and attention never mixes sequences.
//
// Equivalence: ForwardBatch's logits for sequence b equal Forward(model,
// tokens_b, p_b, cache_b) (forward.h, the plain single-sequence reference)
// up to fp32 summation order inside the linears (a GEMM over N rows may
// block its sums differently from one over n_b rows); the tests bound the
// difference at 1e-5 relative to the logits' magnitude. The exception is a
// layer whose arithmetic by design depends on the other rows of its input:
// llm_int8 picks outlier columns over the whole input (llm_int8_linear.h),
// so in a batch a token's outlier set is the batch's, as in bitsandbytes.
// Results do not depend on the pool size (as Forward).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/model.h"

namespace squeeze {

// One sequence of a batch. `tokens` and `cache` are borrowed for the call.
struct BatchSequence {
  absl::Span<const int> tokens;  // n_b >= 1 token ids
  int start_pos = 0;             // position of tokens[0]; p_b + n_b <= cache->max_seq()
  KVCache* cache = nullptr;      // this sequence's cache; never shared by two sequences
};

// Activation buffers of ForwardBatch, reusable across calls: a caller that
// runs many steps (decode loops, latency) keeps one so the per-block
// activations are not allocated, and their pages not faulted in, on every
// step. Buffers only grow. Not shared between concurrent calls.
struct ForwardBatchScratch {
  // Row-major activations: hidden [N, dim], the rest [N, width of the layer].
  std::vector<float> hidden, a, q, k, v, attn, o, g, u;
  std::vector<int32_t> pos;
};

// Runs the batch through the model, reading and extending each sequence's
// cache exactly as Forward does. `scratch` may be null (buffers are then
// allocated for this call).
// logits:
//  - all_logits: [N, vocab], sequence b's rows at [off_b, off_b + n_b) (the
//    stacking order above);
//  - else [B, vocab], row b = the logits after sequence b's last token.
// Errors (InvalidArgument / OutOfRange naming the sequence index): empty
// batch, a sequence with no tokens, a null cache or one built for another
// model, two sequences sharing a cache, token ids outside the vocabulary,
// positions past the cache length. On error no cache is modified.
absl::Status ForwardBatch(const Model& model, absl::Span<const BatchSequence> batch, MatrixRM& logits,
                          bool all_logits = false, ThreadPool& pool = ThreadPool::Default(),
                          ForwardBatchScratch* scratch = nullptr);

// Row offsets off_b of the stacking order, plus the total N as the last entry
// (B + 1 values).
std::vector<int64_t> BatchRowOffsets(absl::Span<const BatchSequence> batch);

}  // namespace squeeze
