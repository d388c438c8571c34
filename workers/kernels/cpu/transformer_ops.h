// Transformer building blocks on fp32 row-major buffers: RMSNorm, RoPE
// (HF half-split layout), SwiGLU and causal grouped-query attention.
//
// Every op has two versions side by side:
//   - the fast path (Eigen, vectorised; attention split over a ThreadPool),
//   - a plain reference (naive loops, double accumulation) that tests compare
//     the fast path against.
// Results of the fast paths do not depend on the pool size: work is split into
// fixed-size items whose arithmetic does not change with the split.
#pragma once

#include <cstdint>
#include <functional>

#include "workers/engine/core/thread_pool.h"

namespace squeeze::kernels {

// y[r, :] = x[r, :] / sqrt(mean_c(x[r, c]^2) + eps) * w[:]   (r < rows, c < dim)
// x and y may alias (in place).
void RmsNorm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y);
void RmsNormReference(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y);

// Rotary position embedding, HF half-split layout, in place on
// x[rows, n_heads * head_dim]: for every head and i < head_dim/2, the pair
// (x[i], x[i + head_dim/2]) of row r is rotated by angle
// positions[r] * theta^(-2i/head_dim). Angles are computed in fp32 as HF and
// llama2.c do. head_dim must be even.
void ApplyRope(float* x, int64_t rows, int n_heads, int head_dim, const int32_t* positions, float theta);
void ApplyRopeReference(float* x, int64_t rows, int n_heads, int head_dim, const int32_t* positions,
                        float theta);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). out may alias gate.
void Swiglu(const float* gate, const float* up, int64_t n, float* out);
void SwigluReference(const float* gate, const float* up, int64_t n, float* out);

struct AttentionShape {
  int n_heads = 0;         // query heads
  int n_kv_heads = 0;      // key/value heads; n_heads % n_kv_heads == 0
  int head_dim = 0;
  int sliding_window = 0;  // 0 = full causal attention; else keys (p - window, p]
};

// Causal grouped-query attention with softmax scale 1/sqrt(head_dim).
//   q:   [n_q, n_heads * head_dim]; query row i sits at key position qpos[i]
//   k,v: [n_keys, n_kv_heads * head_dim] (rows = key positions 0..n_keys-1)
//   out: [n_q, n_heads * head_dim]
// Query i of head h attends keys j <= qpos[i] (and j > qpos[i] - window when
// sliding) of kv head h / (n_heads / n_kv_heads). Requires qpos[i] < n_keys.
void CausalAttention(const float* q, int64_t n_q, const int32_t* qpos, const float* k, const float* v,
                     int64_t n_keys, const AttentionShape& shape, float* out, ThreadPool& pool);
void CausalAttentionReference(const float* q, int64_t n_q, const int32_t* qpos, const float* k,
                              const float* v, int64_t n_keys, const AttentionShape& shape, float* out);

// Output-feature chunk width used to split y = x W^T (x [n, k], W [m, k])
// over a pool. A function of the shape only (never of the pool size), so
// every chunk's arithmetic, and hence the result, is the same for any number
// of threads.
int64_t GemmChunkColumns(int64_t n, int64_t m, int64_t k);

// Calls fn(begin, end) for the fixed column chunks of GemmChunkColumns(n, m, k)
// covering [0, m), spread over the pool.
void ForEachColumnChunk(int64_t n, int64_t m, int64_t k, ThreadPool& pool,
                        const std::function<void(int64_t begin, int64_t end)>& fn);

// y = x W^T for row-major x [n, k] and W [m, k], y [n, m]; output columns are
// split in fixed chunks over the pool (Eigen's single-threaded GEMM per chunk).
void GemmNT(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, ThreadPool& pool);
void GemmNTReference(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y);

}  // namespace squeeze::kernels
