#include "workers/engine/model/forward.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/kernels/cpu/gemm_f32.h"
#include "workers/kernels/cpu/transformer_ops.h"

namespace squeeze {
namespace {

absl::Status CheckLinear(const std::string& name, const LinearLayer* l, int64_t in, int64_t out_multiple,
                         int64_t out_exact = -1) {
  if (l == nullptr) return absl::InvalidArgumentError(absl::StrCat(name, ": missing"));
  if (l->in_features() != in) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": in_features ", l->in_features(), ", expected ", in));
  }
  if (out_exact >= 0 && l->out_features() != out_exact) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": out_features ", l->out_features(), ", expected ", out_exact));
  }
  if (l->out_features() <= 0 || l->out_features() % out_multiple != 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": out_features ", l->out_features(),
                                                   " is not a positive multiple of ", out_multiple));
  }
  return absl::OkStatus();
}

}  // namespace

const char* BlockLinearSuffix(BlockLinear which) {
  switch (which) {
    case BlockLinear::kQ: return "self_attn.q_proj";
    case BlockLinear::kK: return "self_attn.k_proj";
    case BlockLinear::kV: return "self_attn.v_proj";
    case BlockLinear::kO: return "self_attn.o_proj";
    case BlockLinear::kGate: return "mlp.gate_proj";
    case BlockLinear::kUp: return "mlp.up_proj";
    case BlockLinear::kDown: return "mlp.down_proj";
  }
  return "?";
}

absl::Status ValidateModel(const Model& model) {
  const ModelConfig& c = model.config;
  const int64_t dim = c.dim, hd = c.head_dim;
  if (dim <= 0 || hd <= 0 || hd % 2 != 0 || c.vocab_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("model config: dim ", dim, ", head_dim ", hd, ", vocab ",
                                                   c.vocab_size, " are not usable (head_dim must be even)"));
  }
  if (model.embedding.rows() != c.vocab_size || model.embedding.cols() != dim) {
    return absl::InvalidArgumentError(absl::StrCat("model.embed_tokens.weight: shape [", model.embedding.rows(),
                                                   ", ", model.embedding.cols(), "], expected [", c.vocab_size,
                                                   ", ", dim, "]"));
  }
  if (static_cast<int64_t>(model.final_norm.size()) != dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.norm.weight: ", model.final_norm.size(), " values, expected ", dim));
  }
  if (model.lm_head) {
    if (auto s = CheckLinear("lm_head", model.lm_head.get(), dim, 1, c.vocab_size); !s.ok()) return s;
  }
  for (size_t i = 0; i < model.blocks.size(); ++i) {
    const TransformerBlock& b = model.blocks[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    if (static_cast<int64_t>(b.attn_norm.size()) != dim || static_cast<int64_t>(b.ffn_norm.size()) != dim) {
      return absl::InvalidArgumentError(absl::StrCat(p, "input_layernorm/post_attention_layernorm: sizes ",
                                                     b.attn_norm.size(), "/", b.ffn_norm.size(), ", expected ", dim));
    }
    if (auto s = CheckLinear(p + "self_attn.q_proj", b.q_proj.get(), dim, hd); !s.ok()) return s;
    if (auto s = CheckLinear(p + "self_attn.k_proj", b.k_proj.get(), dim, hd); !s.ok()) return s;
    const int64_t q_out = b.q_proj->out_features(), kv_out = b.k_proj->out_features();
    if (auto s = CheckLinear(p + "self_attn.v_proj", b.v_proj.get(), dim, hd, kv_out); !s.ok()) return s;
    if ((q_out / hd) % (kv_out / hd) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(p, "self_attn: ", q_out / hd, " query heads are not a multiple of ",
                                                     kv_out / hd, " key/value heads"));
    }
    if (auto s = CheckLinear(p + "self_attn.o_proj", b.o_proj.get(), q_out, 1, dim); !s.ok()) return s;
    if (auto s = CheckLinear(p + "mlp.gate_proj", b.gate_proj.get(), dim, 1); !s.ok()) return s;
    const int64_t hidden = b.gate_proj->out_features();
    if (auto s = CheckLinear(p + "mlp.up_proj", b.up_proj.get(), dim, 1, hidden); !s.ok()) return s;
    if (auto s = CheckLinear(p + "mlp.down_proj", b.down_proj.get(), hidden, 1, dim); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status RunBlock(const Model& model, int layer, MatrixRM& hidden, int start_pos, KVCache* cache,
                      BlockObserver* observer, ThreadPool& pool) {
  if (layer < 0 || layer >= static_cast<int>(model.blocks.size())) {
    return absl::OutOfRangeError(absl::StrCat("RunBlock: layer ", layer, " of ", model.blocks.size()));
  }
  const ModelConfig& c = model.config;
  const TransformerBlock& b = model.blocks[layer];
  const int64_t n = hidden.rows(), dim = c.dim, hd = c.head_dim;
  if (hidden.cols() != dim) {
    return absl::InvalidArgumentError(absl::StrCat("RunBlock: hidden has ", hidden.cols(), " columns, expected ", dim));
  }
  if (n == 0) return absl::OkStatus();
  const int64_t q_width = b.q_proj->out_features(), kv_width = b.k_proj->out_features();
  const int64_t ffn = b.gate_proj->out_features();
  kernels::AttentionShape shape;
  shape.n_heads = static_cast<int>(q_width / hd);
  shape.n_kv_heads = static_cast<int>(kv_width / hd);
  shape.head_dim = static_cast<int>(hd);
  shape.sliding_window = c.sliding_window;
  if (cache != nullptr) {
    if (layer >= cache->n_layers() || cache->kv_width(layer) != kv_width) {
      return absl::InvalidArgumentError(absl::StrCat("RunBlock: KV cache does not match layer ", layer));
    }
    if (start_pos < 0 || start_pos + n > cache->max_seq()) {
      return absl::OutOfRangeError(absl::StrCat("positions [", start_pos, ", ", start_pos + n,
                                                ") exceed the KV cache length ", cache->max_seq()));
    }
  }
  std::vector<int32_t> pos(n), rel(n);
  std::iota(pos.begin(), pos.end(), start_pos);
  std::iota(rel.begin(), rel.end(), 0);

  // Attention.
  MatrixRM a(n, dim);
  kernels::RmsNorm(hidden.data(), b.attn_norm.data(), n, dim, c.norm_eps, a.data());
  if (observer) {
    for (BlockLinear w : {BlockLinear::kQ, BlockLinear::kK, BlockLinear::kV}) {
      observer->OnLinearInput(layer, w, a.data(), n, dim);
    }
  }
  MatrixRM q(n, q_width), k(n, kv_width), v(n, kv_width);
  b.q_proj->Forward(a.data(), n, q.data(), pool);
  b.k_proj->Forward(a.data(), n, k.data(), pool);
  b.v_proj->Forward(a.data(), n, v.data(), pool);
  kernels::ApplyRope(q.data(), n, shape.n_heads, shape.head_dim, pos.data(), c.rope_theta);
  kernels::ApplyRope(k.data(), n, shape.n_kv_heads, shape.head_dim, pos.data(), c.rope_theta);
  MatrixRM attn(n, q_width);
  if (cache != nullptr) {
    std::copy(k.data(), k.data() + k.size(), cache->k(layer) + int64_t{start_pos} * kv_width);
    std::copy(v.data(), v.data() + v.size(), cache->v(layer) + int64_t{start_pos} * kv_width);
    kernels::CausalAttention(q.data(), n, pos.data(), cache->k(layer), cache->v(layer), start_pos + n, shape,
                             attn.data(), pool);
  } else {
    kernels::CausalAttention(q.data(), n, rel.data(), k.data(), v.data(), n, shape, attn.data(), pool);
  }
  if (observer) observer->OnLinearInput(layer, BlockLinear::kO, attn.data(), n, q_width);
  MatrixRM o(n, dim);
  b.o_proj->Forward(attn.data(), n, o.data(), pool);
  hidden += o;

  // MLP.
  kernels::RmsNorm(hidden.data(), b.ffn_norm.data(), n, dim, c.norm_eps, a.data());
  if (observer) {
    observer->OnLinearInput(layer, BlockLinear::kGate, a.data(), n, dim);
    observer->OnLinearInput(layer, BlockLinear::kUp, a.data(), n, dim);
  }
  MatrixRM g(n, ffn), u(n, ffn);
  b.gate_proj->Forward(a.data(), n, g.data(), pool);
  b.up_proj->Forward(a.data(), n, u.data(), pool);
  kernels::Swiglu(g.data(), u.data(), g.size(), g.data());
  if (observer) observer->OnLinearInput(layer, BlockLinear::kDown, g.data(), n, ffn);
  b.down_proj->Forward(g.data(), n, o.data(), pool);
  hidden += o;
  return absl::OkStatus();
}

absl::Status Embed(const Model& model, absl::Span<const int> tokens, MatrixRM& hidden) {
  const int64_t vocab = model.embedding.rows();
  hidden.resize(static_cast<int64_t>(tokens.size()), model.embedding.cols());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", tokens[i], " at index ", i, " is outside the vocabulary [0, ", vocab, ")"));
    }
    hidden.row(i) = model.embedding.row(tokens[i]);
  }
  return absl::OkStatus();
}

void ComputeLogits(const Model& model, const MatrixRM& hidden, MatrixRM& logits, ThreadPool& pool) {
  const int64_t n = hidden.rows(), dim = hidden.cols();
  MatrixRM normed(n, dim);
  kernels::RmsNorm(hidden.data(), model.final_norm.data(), n, dim, model.config.norm_eps, normed.data());
  if (model.lm_head) {
    logits.resize(n, model.lm_head->out_features());
    model.lm_head->Forward(normed.data(), n, logits.data(), pool);
  } else {
    logits.resize(n, model.embedding.rows());
    // Tied head: our fp32 GEMM (DenseLinear's path; kernels::GemmNT is the Eigen reference).
    kernels::GemmF32NT(normed.data(), n, dim, model.embedding.data(), model.embedding.rows(), logits.data(), pool);
  }
}

absl::Status Forward(const Model& model, absl::Span<const int> tokens, int start_pos, KVCache& cache,
                     MatrixRM& logits, bool all_logits, ThreadPool& pool) {
  if (tokens.empty()) return absl::InvalidArgumentError("Forward: no tokens");
  SQ_RETURN_IF_ERROR(ValidateModel(model));
  if (cache.n_layers() != static_cast<int>(model.blocks.size())) {
    return absl::InvalidArgumentError(absl::StrCat("Forward: KV cache has ", cache.n_layers(), " layers, model has ",
                                                   model.blocks.size()));
  }
  if (start_pos < 0 || start_pos + static_cast<int64_t>(tokens.size()) > cache.max_seq()) {
    return absl::OutOfRangeError(absl::StrCat("Forward: positions [", start_pos, ", ", start_pos + tokens.size(),
                                              ") exceed the context length ", cache.max_seq()));
  }
  MatrixRM hidden;
  SQ_RETURN_IF_ERROR(Embed(model, tokens, hidden));
  for (int layer = 0; layer < static_cast<int>(model.blocks.size()); ++layer) {
    SQ_RETURN_IF_ERROR(RunBlock(model, layer, hidden, start_pos, &cache, nullptr, pool));
  }
  if (all_logits) {
    ComputeLogits(model, hidden, logits, pool);
  } else {
    const MatrixRM last = hidden.bottomRows(1);
    ComputeLogits(model, last, logits, pool);
  }
  return absl::OkStatus();
}

}  // namespace squeeze
