#include "workers/engine/train/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "workers/kernels/cpu/transformer_ops.h"

namespace squeeze::train {

void RmsNormForward(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y, float* inv_rms) {
  kernels::RmsNorm(x, w, rows, dim, eps, y);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < dim; ++c) ss += static_cast<double>(x[r * dim + c]) * x[r * dim + c];
    inv_rms[r] = static_cast<float>(1.0 / std::sqrt(ss / dim + eps));
  }
}

void RmsNormBackward(const float* x, const float* w, const float* inv_rms, const float* dy, int64_t rows,
                     int64_t dim, float* dx, float* dw) {
  // y_c = x_c r w_c, r = (mean x^2 + eps)^-1/2, dr/dx_c = -r^3 x_c / dim.
  // dx_c = r w_c dy_c - x_c r^3 / dim * sum_j dy_j w_j x_j.
  for (int64_t i = 0; i < rows; ++i) {
    const float* xr = x + i * dim;
    const float* g = dy + i * dim;
    const double r = inv_rms[i];
    double dot = 0;
    for (int64_t c = 0; c < dim; ++c) dot += static_cast<double>(g[c]) * w[c] * xr[c];
    const double coef = r * r * r * dot / dim;
    for (int64_t c = 0; c < dim; ++c) {
      dx[i * dim + c] = static_cast<float>(r * w[c] * g[c] - coef * xr[c]);
      dw[c] += static_cast<float>(g[c] * xr[c] * r);
    }
  }
}

void RopeBackward(float* dx, int64_t rows, int n_heads, int head_dim, const int32_t* positions, float theta) {
  std::vector<int32_t> neg(rows);
  for (int64_t r = 0; r < rows; ++r) neg[r] = -positions[r];
  kernels::ApplyRope(dx, rows, n_heads, head_dim, neg.data(), theta);
}

void SwigluBackward(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du) {
  for (int64_t i = 0; i < n; ++i) {
    const float sig = 1.0f / (1.0f + std::exp(-g[i]));
    const float silu = g[i] * sig;
    du[i] = dy[i] * silu;
    dg[i] = dy[i] * u[i] * (sig * (1.0f + g[i] * (1.0f - sig)));
  }
}

void AttentionForward(const float* q, const float* k, const float* v, int batch, int seq, int n_heads,
                      int n_kv_heads, int head_dim, int window, float* out, float* probs, ThreadPool& pool) {
  const int group = n_heads / n_kv_heads;
  const int64_t qw = int64_t{n_heads} * head_dim, kw = int64_t{n_kv_heads} * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  // One item per (sequence, query head): disjoint outputs.
  pool.ParallelFor(int64_t{batch} * n_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> s(seq);
    for (int64_t item = begin; item < end; ++item) {
      const int b = static_cast<int>(item / n_heads), h = static_cast<int>(item % n_heads), kh = h / group;
      float* P = probs + item * seq * seq;
      for (int i = 0; i < seq; ++i) {
        const float* qi = q + (int64_t{b} * seq + i) * qw + int64_t{h} * head_dim;
        const int j0 = window > 0 ? std::max(0, i - window + 1) : 0;
        float mx = -INFINITY;
        for (int j = j0; j <= i; ++j) {
          const float* kj = k + (int64_t{b} * seq + j) * kw + int64_t{kh} * head_dim;
          float d = 0;
          for (int c = 0; c < head_dim; ++c) d += qi[c] * kj[c];
          s[j] = d * scale;
          mx = std::max(mx, s[j]);
        }
        float sum = 0;
        for (int j = j0; j <= i; ++j) sum += (s[j] = std::exp(s[j] - mx));
        float* Pi = P + int64_t{i} * seq;
        std::fill(Pi, Pi + seq, 0.0f);
        for (int j = j0; j <= i; ++j) Pi[j] = s[j] / sum;
        float* oi = out + (int64_t{b} * seq + i) * qw + int64_t{h} * head_dim;
        std::fill(oi, oi + head_dim, 0.0f);
        for (int j = j0; j <= i; ++j) {
          const float* vj = v + (int64_t{b} * seq + j) * kw + int64_t{kh} * head_dim;
          for (int c = 0; c < head_dim; ++c) oi[c] += Pi[j] * vj[c];
        }
      }
    }
  });
}

void AttentionBackward(const float* q, const float* k, const float* v, const float* probs, const float* dout,
                       int batch, int seq, int n_heads, int n_kv_heads, int head_dim, float* dq, float* dk,
                       float* dv, ThreadPool& pool) {
  const int group = n_heads / n_kv_heads;
  const int64_t qw = int64_t{n_heads} * head_dim, kw = int64_t{n_kv_heads} * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  // One item per (sequence, kv head): it owns dk/dv of that head and dq of its
  // query heads; the query heads of a group are summed in order.
  pool.ParallelFor(int64_t{batch} * n_kv_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> dp(seq);
    for (int64_t item = begin; item < end; ++item) {
      const int b = static_cast<int>(item / n_kv_heads), kh = static_cast<int>(item % n_kv_heads);
      for (int j = 0; j < seq; ++j) {
        std::fill_n(dk + (int64_t{b} * seq + j) * kw + int64_t{kh} * head_dim, head_dim, 0.0f);
        std::fill_n(dv + (int64_t{b} * seq + j) * kw + int64_t{kh} * head_dim, head_dim, 0.0f);
      }
      for (int h = kh * group; h < (kh + 1) * group; ++h) {
        const float* P = probs + (int64_t{b} * n_heads + h) * seq * seq;
        for (int i = 0; i < seq; ++i) {
          const float* Pi = P + int64_t{i} * seq;
          const float* doi = dout + (int64_t{b} * seq + i) * qw + int64_t{h} * head_dim;
          const float* qi = q + (int64_t{b} * seq + i) * qw + int64_t{h} * head_dim;
          float* dqi = dq + (int64_t{b} * seq + i) * qw + int64_t{h} * head_dim;
          // dP_ij = dout_i . v_j ; dS = P (dP - sum_j P dP)
          float rowdot = 0;
          for (int j = 0; j <= i; ++j) {
            if (Pi[j] == 0.0f) { dp[j] = 0; continue; }
            const float* vj = v + (int64_t{b} * seq + j) * kw + int64_t{kh} * head_dim;
            float d = 0;
            for (int c = 0; c < head_dim; ++c) d += doi[c] * vj[c];
            dp[j] = d;
            rowdot += Pi[j] * d;
          }
          std::fill_n(dqi, head_dim, 0.0f);
          for (int j = 0; j <= i; ++j) {
            if (Pi[j] == 0.0f) continue;
            const float ds = Pi[j] * (dp[j] - rowdot) * scale;
            const float* kj = k + (int64_t{b} * seq + j) * kw + int64_t{kh} * head_dim;
            float* dkj = dk + (int64_t{b} * seq + j) * kw + int64_t{kh} * head_dim;
            float* dvj = dv + (int64_t{b} * seq + j) * kw + int64_t{kh} * head_dim;
            for (int c = 0; c < head_dim; ++c) {
              dqi[c] += ds * kj[c];
              dkj[c] += ds * qi[c];
              dvj[c] += Pi[j] * doi[c];
            }
          }
        }
      }
    }
  });
}

}  // namespace squeeze::train
