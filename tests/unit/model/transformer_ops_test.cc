// Fast transformer ops vs their plain references (workers/kernels/cpu).
#include "workers/kernels/cpu/transformer_ops.h"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace squeeze::kernels {
namespace {

std::vector<float> Random(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void ExpectNear(const std::vector<float>& a, const std::vector<float>& b, float tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_NEAR(a[i], b[i], tol * (1.0f + std::abs(b[i]))) << "at " << i;
  }
}

TEST(TransformerOpsTest, RmsNormMatchesReference) {
  const int64_t rows = 5, dim = 67;
  auto x = Random(rows * dim, 1, 3.0f), w = Random(dim, 2);
  std::vector<float> y(x.size()), ref(x.size());
  RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, y.data());
  RmsNormReference(x.data(), w.data(), rows, dim, 1e-5f, ref.data());
  ExpectNear(y, ref, 1e-5f);
  // Each normalised row (before the weight) has mean square 1.
  std::vector<float> ones(dim, 1.0f);
  RmsNormReference(x.data(), ones.data(), rows, dim, 0.0f, ref.data());
  double ss = 0;
  for (int64_t c = 0; c < dim; ++c) ss += double{ref[c]} * ref[c];
  EXPECT_NEAR(ss / dim, 1.0, 1e-5);
  // In place works.
  RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, x.data());
  ExpectNear(x, y, 0.0f);
}

TEST(TransformerOpsTest, RopeMatchesReference) {
  const int64_t rows = 9;
  const int heads = 3, hd = 16;
  auto x = Random(rows * heads * hd, 3);
  std::vector<int32_t> pos = {0, 1, 2, 7, 100, 511, 3, 4096, 5};
  auto fast = x, ref = x;
  ApplyRope(fast.data(), rows, heads, hd, pos.data(), 10000.0f);
  ApplyRopeReference(ref.data(), rows, heads, hd, pos.data(), 10000.0f);
  ExpectNear(fast, ref, 1e-6f);
  // Position 0 is the identity.
  for (int i = 0; i < heads * hd; ++i) EXPECT_FLOAT_EQ(fast[i], x[i]);
}

TEST(TransformerOpsTest, RopeIsARelativeRotation) {
  // <rope(q, p), rope(k, p')> depends only on p - p', and norms are kept.
  const int hd = 32;
  auto q = Random(hd, 4), k = Random(hd, 5);
  auto dot_at = [&](int32_t pq, int32_t pk) {
    auto a = q, b = k;
    ApplyRopeReference(a.data(), 1, 1, hd, &pq, 500000.0f);
    ApplyRopeReference(b.data(), 1, 1, hd, &pk, 500000.0f);
    double d = 0, na = 0, nq = 0;
    for (int i = 0; i < hd; ++i) {
      d += double{a[i]} * b[i];
      na += double{a[i]} * a[i];
      nq += double{q[i]} * q[i];
    }
    EXPECT_NEAR(na, nq, 1e-4 * nq);
    return d;
  };
  EXPECT_NEAR(dot_at(10, 3), dot_at(107, 100), 1e-3);
  EXPECT_NEAR(dot_at(5, 5), dot_at(0, 0), 1e-4);
}

TEST(TransformerOpsTest, SwigluMatchesReference) {
  auto g = Random(1000, 6, 4.0f), u = Random(1000, 7);
  std::vector<float> y(1000), ref(1000);
  Swiglu(g.data(), u.data(), 1000, y.data());
  SwigluReference(g.data(), u.data(), 1000, ref.data());
  ExpectNear(y, ref, 1e-5f);
  EXPECT_NEAR(ref[0], g[0] / (1.0 + std::exp(-double{g[0]})) * u[0], 1e-6);
}

struct AttnCase {
  int n_heads, n_kv_heads, head_dim, window;
  int64_t n_q, n_keys;
  int start;  // qpos[i] = start + i
};

TEST(TransformerOpsTest, AttentionMatchesNaiveTripleLoop) {
  const AttnCase cases[] = {
      {4, 4, 8, 0, 1, 1, 0},     {8, 4, 8, 0, 37, 37, 0},  {8, 2, 16, 0, 70, 70, 0},
      {6, 3, 8, 0, 1, 50, 49},   {4, 1, 8, 0, 10, 60, 50}, {4, 2, 8, 5, 40, 40, 0},
      {4, 2, 8, 7, 3, 90, 87},
  };
  ThreadPool pool(3);
  for (const AttnCase& c : cases) {
    AttentionShape s{c.n_heads, c.n_kv_heads, c.head_dim, c.window};
    auto q = Random(c.n_q * c.n_heads * c.head_dim, 8, 2.0f);
    auto k = Random(c.n_keys * c.n_kv_heads * c.head_dim, 9, 2.0f);
    auto v = Random(c.n_keys * c.n_kv_heads * c.head_dim, 10);
    std::vector<int32_t> pos(c.n_q);
    for (int64_t i = 0; i < c.n_q; ++i) pos[i] = static_cast<int32_t>(c.start + i);
    std::vector<float> out(q.size()), ref(q.size()), out1(q.size());
    CausalAttention(q.data(), c.n_q, pos.data(), k.data(), v.data(), c.n_keys, s, out.data(), pool);
    CausalAttentionReference(q.data(), c.n_q, pos.data(), k.data(), v.data(), c.n_keys, s, ref.data());
    ExpectNear(out, ref, 2e-5f);
    ThreadPool one(1);
    CausalAttention(q.data(), c.n_q, pos.data(), k.data(), v.data(), c.n_keys, s, out1.data(), one);
    EXPECT_EQ(out, out1) << "thread count changed the result";
  }
}

TEST(TransformerOpsTest, AttentionFirstQueryCopiesFirstValue) {
  // Query at position 0 sees only key 0: its output is v[0] of its kv head.
  AttentionShape s{4, 2, 8, 0};
  auto q = Random(4 * 8, 11), k = Random(2 * 8 * 3, 12), v = Random(2 * 8 * 3, 13);
  int32_t pos = 0;
  std::vector<float> out(4 * 8);
  ThreadPool pool(2);
  CausalAttention(q.data(), 1, &pos, k.data(), v.data(), 3, s, out.data(), pool);
  for (int h = 0; h < 4; ++h) {
    for (int d = 0; d < 8; ++d) EXPECT_FLOAT_EQ(out[h * 8 + d], v[(h / 2) * 8 + d]);
  }
}

TEST(TransformerOpsTest, GemmMatchesReferenceAndIsThreadIndependent) {
  const int64_t n = 7, k = 300, m = 1000;
  auto x = Random(n * k, 14), w = Random(m * k, 15);
  std::vector<float> y(n * m), ref(n * m), y1(n * m);
  ThreadPool pool(4), one(1);
  GemmNT(x.data(), n, k, w.data(), m, y.data(), pool);
  GemmNT(x.data(), n, k, w.data(), m, y1.data(), one);
  GemmNTReference(x.data(), n, k, w.data(), m, ref.data());
  ExpectNear(y, ref, 1e-4f);
  EXPECT_EQ(y, y1);
}

}  // namespace
}  // namespace squeeze::kernels
