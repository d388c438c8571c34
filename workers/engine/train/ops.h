// Training versions of the Llama block ops: forward passes that keep what the
// backward needs, and the backward passes. fp32 buffers, row-major.
// Deterministic: any parallel split writes disjoint outputs and every sum runs
// in a fixed order, so results do not depend on the pool size.
#pragma once

#include <cstdint>

#include "workers/engine/core/thread_pool.h"

namespace squeeze::train {

// y = x * inv_rms[r] * w, inv_rms[r] = 1 / sqrt(mean(x[r]^2) + eps).
// Same arithmetic as kernels::RmsNorm; also returns inv_rms [rows].
void RmsNormForward(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y, float* inv_rms);
// dx (overwritten) and dw (+=) from dy, x, w and the saved inv_rms.
void RmsNormBackward(const float* x, const float* w, const float* inv_rms, const float* dy, int64_t rows,
                     int64_t dim, float* dx, float* dw);

// RoPE backward: the Jacobian of a rotation is its transpose, i.e. the
// rotation by the negative angle. In place on dx [rows, n_heads * head_dim].
void RopeBackward(float* dx, int64_t rows, int n_heads, int head_dim, const int32_t* positions, float theta);

// silu(g) * u and its backward: dg = dy * u * silu'(g), du = dy * silu(g).
void SwigluBackward(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du);

// Causal grouped-query attention over `batch` independent sequences of `seq`
// tokens each (row b * seq + t at position t). q [B*T, H*hd], k/v [B*T, KV*hd],
// out [B*T, H*hd]; probs [B, H, T, T] keeps the softmax (row i, cols <= i; the
// rest 0). window > 0: keys (i - window, i] only. Scale 1/sqrt(hd).
void AttentionForward(const float* q, const float* k, const float* v, int batch, int seq, int n_heads,
                      int n_kv_heads, int head_dim, int window, float* out, float* probs, ThreadPool& pool);
// dq, dk, dv (all overwritten) from dout and the saved probs.
void AttentionBackward(const float* q, const float* k, const float* v, const float* probs, const float* dout,
                       int batch, int seq, int n_heads, int n_kv_heads, int head_dim, float* dq, float* dk,
                       float* dv, ThreadPool& pool);

}  // namespace squeeze::train
