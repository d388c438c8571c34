// Analytic cost of a model: parameters, bytes in memory, and MACs / FLOPs per
// token of the forward pass at a given context length.
//
// Counting rules (units: MACs = multiply-accumulates; FLOPs = 2 * MACs):
//  - A linear layer [out, in] costs in*out MACs per token as the kernels run it
//    ("kernel" MACs) for dense F32/F16/BF16 and packed-int kinds (dequantized
//    tile by tile, then an fp32 multiply) and for sparse_bitmask layers: their
//    kernel (workers/kernels/cpu/sparse_gemm.h) expands the stored values into
//    place and runs full-width FMAs, zeros included, so it saves bytes, not
//    MACs. Kinds whose kernel MACs are their stored weights:
//      * factorized (low-rank) layers, whose Forward runs two thin matmuls:
//        NonZeroWeights() = rank * (in + out). Recognised by name
//        (IsFactorizedKind: kind() containing "lowrank", "low_rank" or "factor");
//      * N:M sparse layers (kind() "sparse_<K>of<M>"): the kernel gathers the
//        K kept inputs of each group of M and multiplies only the stored values.
//  - "Ideal" MACs = LinearNonZeroWeights(): NonZeroWeights(), and for dense
//    kinds (kind() starting with "dense", where pruning leaves its zeros in
//    the dense matrix) the count of non-zero stored weights: what a kernel
//    that skips every structural zero could do. Which FLOPs does a kernel
//    really skip today? Those of factorized and N:M layers (kernel == ideal);
//    dense-stored and bitmask-stored pruned layers show ideal < kernel.
//    Quantization saves bytes, not MACs.
//  - Attention for a token that sees T keys (T = min(context, sliding window)):
//    QK^T = n_heads * head_dim * T MACs and AV = the same, per layer
//    (per-layer head counts from q_proj, so pruned heads count less).
//  - The head: dim * vocab MACs (tied heads use the embedding matrix).
//  - Not counted: embedding lookup, RMSNorm, RoPE, softmax, SwiGLU, residual
//    adds and biases (O(dim) per token, negligible next to the matmuls).
// Parameters: embedding + norms + every linear's in*out (+ bias) + an untied
// head; non-zero parameters use LinearNonZeroWeights() for the linears. Bytes: each
// linear's StorageBytes() + the fp32 embedding and norms as held in memory.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "workers/engine/model/model.h"

namespace squeeze {

struct KindCost {
  int64_t layers = 0, params = 0, nonzero = 0, bytes = 0, kernel_macs = 0, ideal_macs = 0;
};

struct ModelCost {
  int context_len = 0;
  int64_t params_total = 0;
  int64_t params_nonzero = 0;
  int64_t bytes_linears = 0;
  int64_t bytes_embedding = 0;
  int64_t bytes_norms = 0;
  int64_t bytes_total = 0;
  // Per token, the token attending to context_len keys (a decode step):
  int64_t macs_linears = 0;        // block linears, kernel MACs
  int64_t macs_linears_ideal = 0;  // block linears, NonZeroWeights
  int64_t macs_attention = 0;      // QK^T + AV at context_len
  int64_t macs_head = 0;           // lm head (tied or not), kernel MACs
  int64_t macs_per_token = 0;      // linears + attention + head
  int64_t flops_per_token = 0;     // 2 * macs_per_token
  int64_t ideal_flops_per_token = 0;  // with ideal linear (and head) MACs
  // Mean per token over a prefill of context_len tokens (token t sees t keys).
  double prefill_flops_per_token = 0;
  std::map<std::string, KindCost> by_kind;  // linears (and an untied head) by kind()
};

// Non-zero weights of one linear layer (see "Ideal" above).
int64_t LinearNonZeroWeights(const LinearLayer& layer);

// Kernel MACs per token of one linear layer (see the rules above).
int64_t LinearKernelMacs(const LinearLayer& layer);

// True for factorized (low-rank) kinds, whose weights are rank * (in + out)
// stored values rather than an in x out matrix.
bool IsFactorizedKind(const std::string& kind);

// context_len <= 0 means model.config.max_seq_len.
ModelCost ComputeModelCost(const Model& model, int context_len = 0);

}  // namespace squeeze
