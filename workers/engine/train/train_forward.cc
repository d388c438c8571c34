// Training forward / backward of the whole model (see train_model.h).
#include <numeric>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/train/ops.h"
#include "workers/engine/train/train_model.h"
#include "workers/kernels/cpu/transformer_ops.h"

namespace squeeze::train {
namespace {

struct BlockShape {
  int n_heads, n_kv_heads, head_dim;
  int64_t q_width, kv_width, ffn;
};

BlockShape ShapeOf(const TrainModel& model, const TrainBlock& b) {
  BlockShape s;
  s.head_dim = model.config.head_dim;
  s.q_width = b.lin(BlockLinear::kQ).out_features();
  s.kv_width = b.lin(BlockLinear::kK).out_features();
  s.ffn = b.lin(BlockLinear::kGate).out_features();
  s.n_heads = static_cast<int>(s.q_width / s.head_dim);
  s.n_kv_heads = static_cast<int>(s.kv_width / s.head_dim);
  return s;
}

std::vector<int32_t> Positions(int batch, int seq) {
  std::vector<int32_t> pos(int64_t{batch} * seq);
  for (int64_t i = 0; i < static_cast<int64_t>(pos.size()); ++i) pos[i] = static_cast<int32_t>(i % seq);
  return pos;
}

// Runs block `b` on act.x_in, filling every activation of `act`; returns the
// block output in `out`.
void BlockForward(const TrainModel& model, const TrainBlock& b, int batch, int seq, BlockActivations& act,
                  MatrixRM& out, ThreadPool& pool) {
  const ModelConfig& c = model.config;
  const BlockShape s = ShapeOf(model, b);
  const int64_t n = act.x_in.rows(), dim = c.dim;
  const std::vector<int32_t> pos = Positions(batch, seq);
  act.a.resize(n, dim);
  act.r1.resize(n);
  RmsNormForward(act.x_in.data(), b.attn_norm.value.data(), n, dim, c.norm_eps, act.a.data(), act.r1.data());
  act.q.resize(n, s.q_width);
  act.k.resize(n, s.kv_width);
  act.v.resize(n, s.kv_width);
  b.lin(BlockLinear::kQ).Forward(act.a.data(), n, act.q.data(), pool);
  b.lin(BlockLinear::kK).Forward(act.a.data(), n, act.k.data(), pool);
  b.lin(BlockLinear::kV).Forward(act.a.data(), n, act.v.data(), pool);
  kernels::ApplyRope(act.q.data(), n, s.n_heads, s.head_dim, pos.data(), c.rope_theta);
  kernels::ApplyRope(act.k.data(), n, s.n_kv_heads, s.head_dim, pos.data(), c.rope_theta);
  act.attn.resize(n, s.q_width);
  act.probs.resize(int64_t{batch} * s.n_heads * seq * seq);
  AttentionForward(act.q.data(), act.k.data(), act.v.data(), batch, seq, s.n_heads, s.n_kv_heads, s.head_dim,
                   c.sliding_window, act.attn.data(), act.probs.data(), pool);
  MatrixRM o(n, dim);
  b.lin(BlockLinear::kO).Forward(act.attn.data(), n, o.data(), pool);
  act.h_mid = act.x_in + o;
  act.m.resize(n, dim);
  act.r2.resize(n);
  RmsNormForward(act.h_mid.data(), b.ffn_norm.value.data(), n, dim, c.norm_eps, act.m.data(), act.r2.data());
  act.g.resize(n, s.ffn);
  act.u.resize(n, s.ffn);
  b.lin(BlockLinear::kGate).Forward(act.m.data(), n, act.g.data(), pool);
  b.lin(BlockLinear::kUp).Forward(act.m.data(), n, act.u.data(), pool);
  act.s.resize(n, s.ffn);
  kernels::Swiglu(act.g.data(), act.u.data(), act.g.size(), act.s.data());
  b.lin(BlockLinear::kDown).Forward(act.s.data(), n, o.data(), pool);
  out = act.h_mid + o;
}

void DropActivations(BlockActivations& act) {
  for (MatrixRM* m : {&act.a, &act.q, &act.k, &act.v, &act.attn, &act.h_mid, &act.m, &act.g, &act.u, &act.s})
    m->resize(0, 0);
  act.r1 = {};
  act.r2 = {};
  act.probs = {};
}

// dh [n, dim]: gradient w.r.t. the block output on entry, w.r.t. its input on exit.
void BlockBackward(TrainModel& model, TrainBlock& b, int batch, int seq, BlockActivations& act, MatrixRM& dh,
                   ThreadPool& pool) {
  const ModelConfig& c = model.config;
  const BlockShape s = ShapeOf(model, b);
  const int64_t n = act.x_in.rows(), dim = c.dim;
  const std::vector<int32_t> pos = Positions(batch, seq);
  // MLP: out = h_mid + down(silu(g) * u), g = gate(m), u = up(m), m = norm(h_mid).
  MatrixRM ds(n, s.ffn), dg(n, s.ffn), du(n, s.ffn), dm(n, dim), dm2(n, dim), dx(n, dim);
  b.lin(BlockLinear::kDown).Backward(act.s.data(), dh.data(), n, ds.data(), pool);
  SwigluBackward(act.g.data(), act.u.data(), ds.data(), ds.size(), dg.data(), du.data());
  b.lin(BlockLinear::kGate).Backward(act.m.data(), dg.data(), n, dm.data(), pool);
  b.lin(BlockLinear::kUp).Backward(act.m.data(), du.data(), n, dm2.data(), pool);
  dm += dm2;
  RmsNormBackward(act.h_mid.data(), b.ffn_norm.value.data(), act.r2.data(), dm.data(), n, dim, dx.data(),
                  b.ffn_norm.grad.data());
  dh += dx;  // dh is now dLoss/dh_mid
  // Attention: h_mid = x_in + o(attn(rope(q(a)), rope(k(a)), v(a))), a = norm(x_in).
  MatrixRM dattn(n, s.q_width), dq(n, s.q_width), dk(n, s.kv_width), dv(n, s.kv_width);
  b.lin(BlockLinear::kO).Backward(act.attn.data(), dh.data(), n, dattn.data(), pool);
  AttentionBackward(act.q.data(), act.k.data(), act.v.data(), act.probs.data(), dattn.data(), batch, seq,
                    s.n_heads, s.n_kv_heads, s.head_dim, dq.data(), dk.data(), dv.data(), pool);
  RopeBackward(dq.data(), n, s.n_heads, s.head_dim, pos.data(), c.rope_theta);
  RopeBackward(dk.data(), n, s.n_kv_heads, s.head_dim, pos.data(), c.rope_theta);
  MatrixRM da(n, dim);
  b.lin(BlockLinear::kQ).Backward(act.a.data(), dq.data(), n, da.data(), pool);
  b.lin(BlockLinear::kK).Backward(act.a.data(), dk.data(), n, dm.data(), pool);
  da += dm;
  b.lin(BlockLinear::kV).Backward(act.a.data(), dv.data(), n, dm.data(), pool);
  da += dm;
  RmsNormBackward(act.x_in.data(), b.attn_norm.value.data(), act.r1.data(), da.data(), n, dim, dx.data(),
                  b.attn_norm.grad.data());
  dh += dx;
}

}  // namespace

absl::Status TrainForward(const TrainModel& model, const std::vector<int>& tokens, int batch, int seq,
                          bool checkpointing, ForwardState* state, ThreadPool& pool) {
  const ModelConfig& c = model.config;
  if (batch <= 0 || seq <= 0 || static_cast<int64_t>(tokens.size()) != int64_t{batch} * seq) {
    return absl::InvalidArgumentError(
        absl::StrCat("TrainForward: ", tokens.size(), " tokens for batch ", batch, " x seq ", seq));
  }
  if (c.max_seq_len > 0 && seq > c.max_seq_len) {
    return absl::InvalidArgumentError(absl::StrCat("TrainForward: seq ", seq, " exceeds max_seq_len ", c.max_seq_len));
  }
  const int64_t n = tokens.size(), dim = c.dim;
  state->batch = batch;
  state->seq = seq;
  state->tokens = tokens;
  state->checkpointing = checkpointing;
  state->blocks.assign(model.blocks.size(), BlockActivations{});
  MatrixRM h(n, dim);
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", tokens[i], " at index ", i, " is outside the vocabulary [0, ", c.vocab_size, ")"));
    }
    h.row(i) = ConstMapMatrixRM(model.embedding.value.data() + int64_t{tokens[i]} * dim, 1, dim);
  }
  for (size_t l = 0; l < model.blocks.size(); ++l) {
    BlockActivations& act = state->blocks[l];
    act.x_in = h;
    BlockForward(model, model.blocks[l], batch, seq, act, h, pool);
    if (checkpointing) DropActivations(act);
  }
  state->h_final = h;
  state->normed.resize(n, dim);
  state->r_final.resize(n);
  RmsNormForward(h.data(), model.final_norm.value.data(), n, dim, c.norm_eps, state->normed.data(),
                 state->r_final.data());
  state->logits.resize(n, c.vocab_size);
  if (model.lm_head) {
    model.lm_head->Forward(state->normed.data(), n, state->logits.data(), pool);
  } else {
    MatMulNT(state->normed.data(), n, dim, model.embedding.value.data(), c.vocab_size, state->logits.data(), pool);
  }
  return absl::OkStatus();
}

absl::Status TrainBackward(TrainModel& model, ForwardState& state, const MatrixRM& dlogits, ThreadPool& pool) {
  return TrainBackward(model, state, dlogits, pool, {});
}

const MatrixRM& BlockOutput(const ForwardState& state, int layer) {
  return layer + 1 < static_cast<int>(state.blocks.size()) ? state.blocks[layer + 1].x_in : state.h_final;
}

absl::Status TrainBackward(TrainModel& model, ForwardState& state, const MatrixRM& dlogits, ThreadPool& pool,
                           const std::vector<MatrixRM>& dhidden) {
  const ModelConfig& c = model.config;
  if (!dhidden.empty() && dhidden.size() != model.blocks.size()) {
    return absl::InvalidArgumentError(absl::StrCat("TrainBackward: ", dhidden.size(), " hidden gradients for ",
                                                   model.blocks.size(), " blocks"));
  }
  const int64_t n = state.h_final.rows(), dim = c.dim;
  if (dlogits.rows() != n || dlogits.cols() != c.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("TrainBackward: dlogits [", dlogits.rows(), ", ", dlogits.cols(),
                                                   "], expected [", n, ", ", c.vocab_size, "]"));
  }
  MatrixRM dnormed(n, dim);
  if (model.lm_head) {
    model.lm_head->Backward(state.normed.data(), dlogits.data(), n, dnormed.data(), pool);
  } else {
    AccumulateTN(dlogits.data(), n, c.vocab_size, state.normed.data(), dim, model.embedding.grad.data(), pool);
    MatMulNN(dlogits.data(), n, c.vocab_size, model.embedding.value.data(), dim, dnormed.data(), pool);
  }
  MatrixRM dh(n, dim);
  RmsNormBackward(state.h_final.data(), model.final_norm.value.data(), state.r_final.data(), dnormed.data(), n, dim,
                  dh.data(), model.final_norm.grad.data());
  for (int l = static_cast<int>(model.blocks.size()) - 1; l >= 0; --l) {
    BlockActivations& act = state.blocks[l];
    if (!dhidden.empty() && dhidden[l].size() > 0) {
      if (dhidden[l].rows() != n || dhidden[l].cols() != dim) {
        return absl::InvalidArgumentError(absl::StrCat("TrainBackward: hidden gradient of block ", l, " is [",
                                                       dhidden[l].rows(), ", ", dhidden[l].cols(), "], expected [", n,
                                                       ", ", dim, "]"));
      }
      dh += dhidden[l];  // dh is dLoss/d(output of block l) here
    }
    if (state.checkpointing) {
      MatrixRM unused;
      BlockForward(model, model.blocks[l], state.batch, state.seq, act, unused, pool);
    }
    BlockBackward(model, model.blocks[l], state.batch, state.seq, act, dh, pool);
    DropActivations(act);
  }
  // Embedding rows, accumulated in token order (deterministic).
  for (int64_t i = 0; i < n; ++i) {
    float* g = model.embedding.grad.data() + int64_t{state.tokens[i]} * dim;
    for (int64_t j = 0; j < dim; ++j) g[j] += dh(i, j);
  }
  return absl::OkStatus();
}

}  // namespace squeeze::train
