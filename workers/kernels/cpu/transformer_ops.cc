// Fast paths (Eigen) and plain references of the transformer ops; see
// transformer_ops.h for what each computes.
#include "workers/kernels/cpu/transformer_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <Eigen/Core>

namespace squeeze::kernels {
namespace {

using MatRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Strided = Eigen::OuterStride<>;
using ConstStridedMap = Eigen::Map<const MatRM, 0, Strided>;
using StridedMap = Eigen::Map<MatRM, 0, Strided>;

// Queries handled per attention work item; fixed so results never depend on
// the pool size.
constexpr int64_t kAttnQueryBlock = 32;

// Lowest key position query at `pos` may see.
inline int64_t FirstKey(int64_t pos, int window) {
  return window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
}

}  // namespace

// ---------------------------------------------------------------- RMSNorm

void RmsNorm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y) {
  Eigen::Map<const Eigen::ArrayXf> wa(w, dim);
  for (int64_t r = 0; r < rows; ++r) {
    Eigen::Map<const Eigen::ArrayXf> xr(x + r * dim, dim);
    const float ms = xr.square().sum() / static_cast<float>(dim);
    const float inv = 1.0f / std::sqrt(ms + eps);
    Eigen::Map<Eigen::ArrayXf>(y + r * dim, dim) = xr * inv * wa;
  }
}

void RmsNormReference(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < dim; ++c) ss += double{x[r * dim + c]} * x[r * dim + c];
    const double inv = 1.0 / std::sqrt(ss / dim + eps);
    for (int64_t c = 0; c < dim; ++c) y[r * dim + c] = static_cast<float>(x[r * dim + c] * inv * w[c]);
  }
}

// ---------------------------------------------------------------- RoPE

void ApplyRope(float* x, int64_t rows, int n_heads, int head_dim, const int32_t* positions, float theta) {
  const int half = head_dim / 2;
  std::vector<float> inv_freq(half), cos_v(half), sin_v(half);
  for (int i = 0; i < half; ++i) {
    inv_freq[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
  }
  const int64_t width = int64_t{n_heads} * head_dim;
  for (int64_t r = 0; r < rows; ++r) {
    const float pos = static_cast<float>(positions[r]);
    for (int i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];
      cos_v[i] = std::cos(angle);
      sin_v[i] = std::sin(angle);
    }
    Eigen::Map<const Eigen::ArrayXf> c(cos_v.data(), half), s(sin_v.data(), half);
    for (int h = 0; h < n_heads; ++h) {
      float* p = x + r * width + int64_t{h} * head_dim;
      Eigen::Map<Eigen::ArrayXf> a(p, half), b(p + half, half);
      const Eigen::ArrayXf a0 = a;
      a = a0 * c - b * s;
      b = b * c + a0 * s;
    }
  }
}

void ApplyRopeReference(float* x, int64_t rows, int n_heads, int head_dim, const int32_t* positions,
                        float theta) {
  const int half = head_dim / 2;
  const int64_t width = int64_t{n_heads} * head_dim;
  for (int64_t r = 0; r < rows; ++r) {
    for (int h = 0; h < n_heads; ++h) {
      float* p = x + r * width + int64_t{h} * head_dim;
      for (int i = 0; i < half; ++i) {
        const float freq = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
        const float angle = static_cast<float>(positions[r]) * freq;
        const float c = std::cos(angle), s = std::sin(angle);
        const float a = p[i], b = p[i + half];
        p[i] = a * c - b * s;
        p[i + half] = b * c + a * s;
      }
    }
  }
}

// ---------------------------------------------------------------- SwiGLU

void Swiglu(const float* gate, const float* up, int64_t n, float* out) {
  Eigen::Map<const Eigen::ArrayXf> g(gate, n), u(up, n);
  Eigen::Map<Eigen::ArrayXf>(out, n) = g / (1.0f + (-g).exp()) * u;
}

void SwigluReference(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

// ---------------------------------------------------------------- attention

void CausalAttention(const float* q, int64_t n_q, const int32_t* qpos, const float* k, const float* v,
                     int64_t n_keys, const AttentionShape& shape, float* out, ThreadPool& pool) {
  const int hd = shape.head_dim;
  const int64_t q_width = int64_t{shape.n_heads} * hd;
  const int64_t kv_width = int64_t{shape.n_kv_heads} * hd;
  const int group = shape.n_heads / shape.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t n_qblocks = (n_q + kAttnQueryBlock - 1) / kAttnQueryBlock;
  const int64_t n_items = n_qblocks * shape.n_heads;
  // Tiny problems (decode on small models) run inline: waking the pool costs
  // more than the work. The split never changes any item's arithmetic.
  const int64_t item_work = std::min<int64_t>(n_q, kAttnQueryBlock) * (qpos[n_q - 1] + 1) * hd;
  const int64_t min_items = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, item_work));
  pool.ParallelFor(n_items, min_items, [&](int64_t begin, int64_t end) {
    MatRM scores;
    for (int64_t item = begin; item < end; ++item) {
      const int h = static_cast<int>(item % shape.n_heads);
      const int64_t i0 = (item / shape.n_heads) * kAttnQueryBlock;
      const int64_t nb = std::min(kAttnQueryBlock, n_q - i0);
      const int kvh = h / group;
      int64_t lo = n_keys, hi = -1;
      for (int64_t i = i0; i < i0 + nb; ++i) {
        lo = std::min(lo, FirstKey(qpos[i], shape.sliding_window));
        hi = std::max<int64_t>(hi, qpos[i]);
      }
      const int64_t ctx = hi - lo + 1;
      ConstStridedMap Q(q + i0 * q_width + int64_t{h} * hd, nb, hd, Strided(q_width));
      ConstStridedMap K(k + lo * kv_width + int64_t{kvh} * hd, ctx, hd, Strided(kv_width));
      ConstStridedMap V(v + lo * kv_width + int64_t{kvh} * hd, ctx, hd, Strided(kv_width));
      scores.resize(nb, ctx);
      scores.noalias() = Q * K.transpose();
      for (int64_t r = 0; r < nb; ++r) {
        const int64_t pos = qpos[i0 + r];
        const int64_t first = FirstKey(pos, shape.sliding_window) - lo;  // visible: [first, last]
        const int64_t last = pos - lo;
        float* s = scores.data() + r * ctx;
        std::fill(s, s + first, 0.0f);
        std::fill(s + last + 1, s + ctx, 0.0f);
        Eigen::Map<Eigen::ArrayXf> vis(s + first, last - first + 1);
        vis *= scale;
        vis = (vis - vis.maxCoeff()).exp();  // vectorised exp
        vis *= 1.0f / vis.sum();
      }
      StridedMap O(out + i0 * q_width + int64_t{h} * hd, nb, hd, Strided(q_width));
      O.noalias() = scores * V;
    }
  });
}

void CausalAttentionReference(const float* q, int64_t n_q, const int32_t* qpos, const float* k,
                              const float* v, int64_t n_keys, const AttentionShape& shape, float* out) {
  const int hd = shape.head_dim;
  const int64_t q_width = int64_t{shape.n_heads} * hd;
  const int64_t kv_width = int64_t{shape.n_kv_heads} * hd;
  const int group = shape.n_heads / shape.n_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<double> w(static_cast<size_t>(n_keys));
  for (int64_t i = 0; i < n_q; ++i) {
    for (int h = 0; h < shape.n_heads; ++h) {
      const int kvh = h / group;
      const float* qi = q + i * q_width + int64_t{h} * hd;
      const int64_t first = FirstKey(qpos[i], shape.sliding_window), last = qpos[i];
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = first; j <= last; ++j) {
        const float* kj = k + j * kv_width + int64_t{kvh} * hd;
        double dot = 0;
        for (int d = 0; d < hd; ++d) dot += double{qi[d]} * kj[d];
        w[j] = dot * scale;
        mx = std::max(mx, w[j]);
      }
      double sum = 0;
      for (int64_t j = first; j <= last; ++j) {
        w[j] = std::exp(w[j] - mx);
        sum += w[j];
      }
      float* oi = out + i * q_width + int64_t{h} * hd;
      for (int d = 0; d < hd; ++d) {
        double acc = 0;
        for (int64_t j = first; j <= last; ++j) acc += w[j] / sum * v[j * kv_width + int64_t{kvh} * hd + d];
        oi[d] = static_cast<float>(acc);
      }
    }
  }
}

// ---------------------------------------------------------------- GEMM

int64_t GemmChunkColumns(int64_t n, int64_t m, int64_t k) {
  // At least 64K multiply-adds per chunk (amortises the fork/join), at most
  // ~64 chunks per matrix (load balance on big pools), a multiple of 16
  // columns.
  const int64_t by_work = (int64_t{1} << 16) / std::max<int64_t>(1, k * std::max<int64_t>(1, n));
  const int64_t by_count = (m + 63) / 64;
  const int64_t c = std::max<int64_t>({16, by_work, by_count});
  return (c + 15) / 16 * 16;
}

void ForEachColumnChunk(int64_t n, int64_t m, int64_t k, ThreadPool& pool,
                        const std::function<void(int64_t begin, int64_t end)>& fn) {
  const int64_t chunk = GemmChunkColumns(n, m, k);
  const int64_t n_chunks = (m + chunk - 1) / chunk;
  pool.ParallelFor(n_chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) fn(c * chunk, std::min(m, (c + 1) * chunk));
  });
}

void GemmNT(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, ThreadPool& pool) {
  Eigen::Map<const MatRM> X(x, n, k);
  Eigen::Map<MatRM> Y(y, n, m);
  ForEachColumnChunk(n, m, k, pool, [&](int64_t begin, int64_t end) {
    Eigen::Map<const MatRM> W(w + begin * k, end - begin, k);
    Y.middleCols(begin, end - begin).noalias() = X * W.transpose();
  });
}

void GemmNTReference(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      double acc = 0;
      for (int64_t c = 0; c < k; ++c) acc += double{x[i * k + c]} * w[j * k + c];
      y[i * m + j] = static_cast<float>(acc);
    }
  }
}

}  // namespace squeeze::kernels
