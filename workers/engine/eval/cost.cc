#include "workers/engine/eval/cost.h"

#include <algorithm>

namespace squeeze {

bool IsFactorizedKind(const std::string& kind) {
  return kind.find("lowrank") != std::string::npos || kind.find("low_rank") != std::string::npos ||
         kind.find("factor") != std::string::npos;
}

int64_t LinearNonZeroWeights(const LinearLayer& l) {
  const int64_t nz = l.NonZeroWeights();
  if (nz < l.in_features() * l.out_features() || l.kind().rfind("dense", 0) != 0) return nz;
  const MatrixRM w = l.DenseWeight();
  return static_cast<int64_t>((w.array() != 0.0f).count());
}

namespace {

void AddLinear(const LinearLayer& l, ModelCost& c, bool is_head) {
  const int64_t dense = l.in_features() * l.out_features();
  const int64_t nz = LinearNonZeroWeights(l);
  const int64_t bias = static_cast<int64_t>(l.bias().size());
  const int64_t kernel = LinearKernelMacs(l);
  c.params_total += dense + bias;
  c.params_nonzero += nz + bias;
  c.bytes_linears += l.StorageBytes();
  if (is_head) {
    c.macs_head += kernel;
  } else {
    c.macs_linears += kernel;
    c.macs_linears_ideal += nz;
  }
  KindCost& k = c.by_kind[l.kind()];
  k.layers += 1;
  k.params += dense + bias;
  k.nonzero += nz + bias;
  k.bytes += l.StorageBytes();
  k.kernel_macs += kernel;
  k.ideal_macs += nz;
}

// Attention MACs of one token that sees t keys, summed over layers.
int64_t AttentionMacs(const Model& model, int64_t t) {
  const int64_t w = model.config.sliding_window;
  const int64_t keys = w > 0 ? std::min(t, w) : t;
  int64_t macs = 0;
  for (const TransformerBlock& b : model.blocks) {
    if (b.q_proj) macs += 2 * b.q_proj->out_features() * keys;  // n_heads * head_dim = q_proj.out
  }
  return macs;
}

}  // namespace

// Factorized layers run U(Vx); N:M sparse kinds (sparse_<K>of<M>, workers/
// methods/prune/sparse_linear.h) multiply only their stored values. Every other
// kind, sparse_bitmask included (its kernel expands values into place), runs
// the dense in x out product, zeros included.
int64_t LinearKernelMacs(const LinearLayer& layer) {
  const std::string kind = layer.kind();
  const bool is_n_of_m = kind.rfind("sparse_", 0) == 0 && kind != "sparse_bitmask";
  const bool runs_stored_only = IsFactorizedKind(kind) || is_n_of_m;
  return runs_stored_only ? layer.NonZeroWeights() : layer.in_features() * layer.out_features();
}

ModelCost ComputeModelCost(const Model& model, int context_len) {
  ModelCost c;
  c.context_len = context_len > 0 ? context_len : model.config.max_seq_len;
  const int64_t emb = model.embedding.rows() * model.embedding.cols();
  c.params_total = c.params_nonzero = emb;
  c.bytes_embedding = emb * static_cast<int64_t>(sizeof(float));
  int64_t norms = static_cast<int64_t>(model.final_norm.size());
  for (const TransformerBlock& b : model.blocks) {
    norms += static_cast<int64_t>(b.attn_norm.size() + b.ffn_norm.size());
    for (const LinearLayer* l : {b.q_proj.get(), b.k_proj.get(), b.v_proj.get(), b.o_proj.get(),
                                 b.gate_proj.get(), b.up_proj.get(), b.down_proj.get()}) {
      if (l != nullptr) AddLinear(*l, c, false);
    }
  }
  c.params_total += norms;
  c.params_nonzero += norms;
  c.bytes_norms = norms * static_cast<int64_t>(sizeof(float));
  int64_t head_ideal;
  if (model.lm_head) {
    AddLinear(*model.lm_head, c, true);
    head_ideal = LinearNonZeroWeights(*model.lm_head);
  } else {
    c.macs_head = emb;  // tied: logits = h * embedding^T
    head_ideal = emb;
  }
  c.bytes_total = c.bytes_linears + c.bytes_embedding + c.bytes_norms;
  c.macs_attention = AttentionMacs(model, c.context_len);
  c.macs_per_token = c.macs_linears + c.macs_attention + c.macs_head;
  c.flops_per_token = 2 * c.macs_per_token;
  c.ideal_flops_per_token = 2 * (c.macs_linears_ideal + c.macs_attention + head_ideal);
  double attn_sum = 0;
  for (int64_t t = 1; t <= c.context_len; ++t) attn_sum += static_cast<double>(AttentionMacs(model, t));
  c.prefill_flops_per_token =
      2.0 * (static_cast<double>(c.macs_linears + c.macs_head) + attn_sum / static_cast<double>(c.context_len));
  return c;
}

}  // namespace squeeze
