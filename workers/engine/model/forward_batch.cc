#include "workers/engine/model/forward_batch.h"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/model/forward.h"
#include "workers/kernels/cpu/transformer_ops.h"

namespace squeeze {
namespace {

// Every check that can fail, done before any cache is written.
absl::Status ValidateBatch(const Model& model, absl::Span<const BatchSequence> batch) {
  if (batch.empty()) return absl::InvalidArgumentError("ForwardBatch: empty batch");
  const int n_layers = static_cast<int>(model.blocks.size());
  std::unordered_map<const KVCache*, size_t> owner;
  for (size_t b = 0; b < batch.size(); ++b) {
    const BatchSequence& s = batch[b];
    const std::string who = absl::StrCat("ForwardBatch: sequence ", b);
    if (s.tokens.empty()) return absl::InvalidArgumentError(absl::StrCat(who, ": no tokens"));
    if (s.cache == nullptr) return absl::InvalidArgumentError(absl::StrCat(who, ": no KV cache"));
    auto [it, fresh] = owner.emplace(s.cache, b);
    if (!fresh) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": shares its KV cache with sequence ", it->second, " (each needs its own)"));
    }
    if (s.cache->n_layers() != n_layers) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": KV cache has ", s.cache->n_layers(), " layers, model has ", n_layers));
    }
    for (int l = 0; l < n_layers; ++l) {
      if (s.cache->kv_width(l) != model.blocks[l].k_proj->out_features()) {
        return absl::InvalidArgumentError(absl::StrCat(who, ": KV cache does not match layer ", l));
      }
    }
    const int64_t end = int64_t{s.start_pos} + static_cast<int64_t>(s.tokens.size());
    if (s.start_pos < 0 || end > s.cache->max_seq()) {
      return absl::OutOfRangeError(absl::StrCat(who, ": positions [", s.start_pos, ", ", end,
                                                ") exceed the context length ", s.cache->max_seq()));
    }
    const int64_t vocab = model.embedding.rows();
    for (size_t i = 0; i < s.tokens.size(); ++i) {
      if (s.tokens[i] < 0 || s.tokens[i] >= vocab) {
        return absl::InvalidArgumentError(absl::StrCat(who, ": token id ", s.tokens[i], " at index ", i,
                                                       " is outside the vocabulary [0, ", vocab, ")"));
      }
    }
  }
  return absl::OkStatus();
}

// A row-major [rows, cols] view of `buf`, grown to fit (never shrunk).
Eigen::Map<MatrixRM> View(std::vector<float>& buf, int64_t rows, int64_t cols) {
  if (static_cast<int64_t>(buf.size()) < rows * cols) buf.resize(rows * cols);
  return Eigen::Map<MatrixRM>(buf.data(), rows, cols);
}

// Block `layer` on the stacked hidden rows (see forward_batch.h). `ws.pos`
// holds each row's position, `off` the row offsets. Assumes ValidateModel
// and ValidateBatch passed.
void RunBlockBatch(const Model& model, int layer, absl::Span<const BatchSequence> batch,
                   const std::vector<int64_t>& off, ForwardBatchScratch& ws, ThreadPool& pool) {
  const ModelConfig& c = model.config;
  const TransformerBlock& blk = model.blocks[layer];
  const int64_t n = off.back(), dim = c.dim, hd = c.head_dim;
  auto hidden = View(ws.hidden, n, dim);
  const int64_t q_width = blk.q_proj->out_features(), kv_width = blk.k_proj->out_features();
  const int64_t ffn = blk.gate_proj->out_features();
  kernels::AttentionShape shape;
  shape.n_heads = static_cast<int>(q_width / hd);
  shape.n_kv_heads = static_cast<int>(kv_width / hd);
  shape.head_dim = static_cast<int>(hd);
  shape.sliding_window = c.sliding_window;
  const int32_t* pos = ws.pos.data();

  // Attention: the projections run once over all N rows.
  auto a = View(ws.a, n, dim);
  kernels::RmsNorm(hidden.data(), blk.attn_norm.data(), n, dim, c.norm_eps, a.data());
  auto q = View(ws.q, n, q_width);
  auto k = View(ws.k, n, kv_width);
  auto v = View(ws.v, n, kv_width);
  blk.q_proj->Forward(a.data(), n, q.data(), pool);
  blk.k_proj->Forward(a.data(), n, k.data(), pool);
  blk.v_proj->Forward(a.data(), n, v.data(), pool);
  kernels::ApplyRope(q.data(), n, shape.n_heads, shape.head_dim, pos, c.rope_theta);
  kernels::ApplyRope(k.data(), n, shape.n_kv_heads, shape.head_dim, pos, c.rope_theta);
  auto attn = View(ws.attn, n, q_width);
  // Per sequence, against its own cache. Each CausalAttention splits its
  // (head, query block) items over the pool itself (inline when tiny).
  for (size_t b = 0; b < batch.size(); ++b) {
    KVCache& cache = *batch[b].cache;
    const int64_t r0 = off[b], nb = off[b + 1] - off[b];
    const int64_t p0 = batch[b].start_pos;
    std::copy(k.data() + r0 * kv_width, k.data() + (r0 + nb) * kv_width, cache.k(layer) + p0 * kv_width);
    std::copy(v.data() + r0 * kv_width, v.data() + (r0 + nb) * kv_width, cache.v(layer) + p0 * kv_width);
    kernels::CausalAttention(q.data() + r0 * q_width, nb, pos + r0, cache.k(layer), cache.v(layer), p0 + nb, shape,
                             attn.data() + r0 * q_width, pool);
  }
  auto o = View(ws.o, n, dim);
  blk.o_proj->Forward(attn.data(), n, o.data(), pool);
  hidden += o;

  // MLP, all rows at once.
  kernels::RmsNorm(hidden.data(), blk.ffn_norm.data(), n, dim, c.norm_eps, a.data());
  auto g = View(ws.g, n, ffn);
  auto u = View(ws.u, n, ffn);
  blk.gate_proj->Forward(a.data(), n, g.data(), pool);
  blk.up_proj->Forward(a.data(), n, u.data(), pool);
  kernels::Swiglu(g.data(), u.data(), n * ffn, g.data());
  blk.down_proj->Forward(g.data(), n, o.data(), pool);
  hidden += o;
}

}  // namespace

std::vector<int64_t> BatchRowOffsets(absl::Span<const BatchSequence> batch) {
  std::vector<int64_t> off(batch.size() + 1, 0);
  for (size_t b = 0; b < batch.size(); ++b) off[b + 1] = off[b] + static_cast<int64_t>(batch[b].tokens.size());
  return off;
}

absl::Status ForwardBatch(const Model& model, absl::Span<const BatchSequence> batch, MatrixRM& logits,
                          bool all_logits, ThreadPool& pool, ForwardBatchScratch* scratch) {
  SQ_RETURN_IF_ERROR(ValidateModel(model));
  SQ_RETURN_IF_ERROR(ValidateBatch(model, batch));
  ForwardBatchScratch local;
  ForwardBatchScratch& ws = scratch != nullptr ? *scratch : local;
  const std::vector<int64_t> off = BatchRowOffsets(batch);
  const int64_t n = off.back(), dim = model.config.dim;
  auto hidden = View(ws.hidden, n, dim);
  ws.pos.resize(n);
  for (size_t b = 0; b < batch.size(); ++b) {
    for (int64_t i = 0; i < off[b + 1] - off[b]; ++i) {
      hidden.row(off[b] + i) = model.embedding.row(batch[b].tokens[i]);
      ws.pos[off[b] + i] = static_cast<int32_t>(batch[b].start_pos + i);
    }
  }
  for (int layer = 0; layer < static_cast<int>(model.blocks.size()); ++layer) {
    RunBlockBatch(model, layer, batch, off, ws, pool);
  }
  if (all_logits) {
    ComputeLogits(model, MatrixRM(hidden), logits, pool);
    return absl::OkStatus();
  }
  // The head also runs once, over the B last rows.
  MatrixRM last(static_cast<int64_t>(batch.size()), dim);
  for (size_t b = 0; b < batch.size(); ++b) last.row(b) = hidden.row(off[b + 1] - 1);
  ComputeLogits(model, last, logits, pool);
  return absl::OkStatus();
}

}  // namespace squeeze
