// The Llama-family forward pass: embedding -> blocks -> final RMSNorm -> head.
//
// Block i (RunBlock), for hidden states h [n_tokens, dim] at positions p:
//   a = RMSNorm(h, attn_norm)
//   q = RoPE(q_proj(a), p), k = RoPE(k_proj(a), p), v = v_proj(a)
//   h += o_proj(CausalGQA(q, k, v))
//   m = RMSNorm(h, ffn_norm)
//   h += down_proj(silu(gate_proj(m)) * up_proj(m))
// All math is fp32; linears split their output features over the ThreadPool,
// attention splits (head, query block) items. Results do not depend on the
// pool size. Per-layer widths come from the linears (see model.h).
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/model.h"

namespace squeeze {

// The linear layers of a block, in execution order (the order of
// Model::BlockLinears).
enum class BlockLinear : int { kQ = 0, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumBlockLinears = 7;
// HF module suffix, e.g. "self_attn.q_proj", "mlp.down_proj".
const char* BlockLinearSuffix(BlockLinear which);

// Receives the input rows of each linear layer as a block runs (for
// calibration statistics). q/k/v share one input buffer, gate/up another.
class BlockObserver {
 public:
  virtual ~BlockObserver() = default;
  // x: rows x cols, row-major fp32 (cols == the linear's in_features); valid
  // only during the call. Called on the thread that called RunBlock.
  virtual void OnLinearInput(int layer, BlockLinear which, const float* x, int64_t rows, int64_t cols) = 0;
};

// Checks that every block's linears and norms have consistent shapes
// (q.out % head_dim == 0, n_heads % n_kv_heads == 0, o.in == q.out, ...),
// the embedding is [vocab, dim] and the head fits. Errors name the tensor.
absl::Status ValidateModel(const Model& model);

// Runs block `layer` of `model` on hidden [n_tokens, dim] in place. The tokens
// sit at positions start_pos + i.
//  - With a cache: their keys/values are written to the cache rows
//    [start_pos, start_pos + n) and attention sees cache rows [0, pos].
//  - Without (cache == nullptr): attention sees only these tokens (a fresh
//    sequence fragment whose first token sits at start_pos).
// `observer` may be null. Assumes ValidateModel(model) passed.
absl::Status RunBlock(const Model& model, int layer, MatrixRM& hidden, int start_pos, KVCache* cache,
                      BlockObserver* observer, ThreadPool& pool);

// hidden [n, dim] = embedding rows of `tokens`. InvalidArgument for ids
// outside [0, vocab).
absl::Status Embed(const Model& model, absl::Span<const int> tokens, MatrixRM& hidden);

// logits [n, vocab] = head(RMSNorm(hidden, final_norm)); tied heads use the
// embedding matrix.
void ComputeLogits(const Model& model, const MatrixRM& hidden, MatrixRM& logits, ThreadPool& pool);

// Runs `tokens` at positions [start_pos, start_pos + n) through the model,
// reading and extending `cache`. logits: [n, vocab] when all_logits, else
// [1, vocab] for the last token only. Errors: empty tokens, bad ids,
// start_pos + n > cache.max_seq(), a cache built for another model.
absl::Status Forward(const Model& model, absl::Span<const int> tokens, int start_pos, KVCache& cache,
                     MatrixRM& logits, bool all_logits = true, ThreadPool& pool = ThreadPool::Default());

}  // namespace squeeze
