// Gradient checks of each training op against central finite differences.
#include <gtest/gtest.h>

#include "tests/unit/train/grad_check.h"
#include "workers/engine/train/ops.h"
#include "workers/kernels/cpu/transformer_ops.h"

namespace squeeze::train {
namespace {

using testing::CheckDirectional;
using testing::CheckEntries;
using testing::Dot;
using testing::RandomVector;

TEST(OpsGrad, RmsNorm) {
  const int64_t rows = 3, dim = 8;
  std::vector<float> x = RandomVector(rows * dim, 1), w = RandomVector(dim, 2, 0.3f), r = RandomVector(rows * dim, 3);
  for (float& v : w) v += 1.0f;
  std::vector<float> y(rows * dim), inv(rows);
  auto f = [&] {
    RmsNormForward(x.data(), w.data(), rows, dim, 1e-5f, y.data(), inv.data());
    return Dot(r.data(), y.data(), rows * dim);
  };
  f();
  std::vector<float> dx(rows * dim), dw(dim, 0.0f);
  RmsNormBackward(x.data(), w.data(), inv.data(), r.data(), rows, dim, dx.data(), dw.data());
  CheckEntries("rmsnorm dx", x.data(), dx.data(), rows * dim, f, 24, 1e-2);
  CheckEntries("rmsnorm dw", w.data(), dw.data(), dim, f);
  // The forward is the inference kernel's arithmetic.
  std::vector<float> ref(rows * dim);
  kernels::RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, ref.data());
  f();
  EXPECT_EQ(ref, y);
}

TEST(OpsGrad, Rope) {
  const int64_t rows = 4;
  const int heads = 2, hd = 6;
  const int32_t pos[rows] = {0, 3, 7, 100};
  std::vector<float> x = RandomVector(rows * heads * hd, 4), r = RandomVector(rows * heads * hd, 5);
  auto f = [&] {
    std::vector<float> y = x;
    kernels::ApplyRope(y.data(), rows, heads, hd, pos, 10000.0f);
    return Dot(r.data(), y.data(), y.size());
  };
  std::vector<float> dx = r;
  RopeBackward(dx.data(), rows, heads, hd, pos, 10000.0f);
  CheckEntries("rope dx", x.data(), dx.data(), x.size(), f, 48);
}

TEST(OpsGrad, Swiglu) {
  const int64_t n = 20;
  std::vector<float> g = RandomVector(n, 6, 2.0f), u = RandomVector(n, 7), r = RandomVector(n, 8);
  auto f = [&] {
    std::vector<float> y(n);
    kernels::Swiglu(g.data(), u.data(), n, y.data());
    return Dot(r.data(), y.data(), n);
  };
  std::vector<float> dg(n), du(n);
  SwigluBackward(g.data(), u.data(), r.data(), n, dg.data(), du.data());
  CheckEntries("swiglu dg", g.data(), dg.data(), n, f, 20, 1e-3);
  CheckEntries("swiglu du", u.data(), du.data(), n, f, 20, 1e-3);
}

void CheckAttention(int window) {
  const int batch = 2, seq = 5, heads = 4, kv = 2, hd = 4;
  const int64_t n = batch * seq;
  std::vector<float> q = RandomVector(n * heads * hd, 10), k = RandomVector(n * kv * hd, 11),
                     v = RandomVector(n * kv * hd, 12), r = RandomVector(n * heads * hd, 13);
  std::vector<float> out(n * heads * hd), probs(int64_t{batch} * heads * seq * seq);
  ThreadPool pool(2);
  auto f = [&] {
    AttentionForward(q.data(), k.data(), v.data(), batch, seq, heads, kv, hd, window, out.data(), probs.data(), pool);
    return Dot(r.data(), out.data(), out.size());
  };
  f();
  // Forward equals the inference kernel, sequence by sequence.
  for (int b = 0; b < batch; ++b) {
    std::vector<int32_t> pos(seq);
    for (int i = 0; i < seq; ++i) pos[i] = i;
    std::vector<float> ref(seq * heads * hd);
    kernels::AttentionShape shape{heads, kv, hd, window};
    kernels::CausalAttentionReference(q.data() + b * seq * heads * hd, seq, pos.data(), k.data() + b * seq * kv * hd,
                                      v.data() + b * seq * kv * hd, seq, shape, ref.data());
    for (int64_t i = 0; i < seq * heads * hd; ++i) EXPECT_NEAR(ref[i], out[b * seq * heads * hd + i], 1e-5);
  }
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  AttentionBackward(q.data(), k.data(), v.data(), probs.data(), r.data(), batch, seq, heads, kv, hd, dq.data(),
                    dk.data(), dv.data(), pool);
  CheckEntries("attn dq", q.data(), dq.data(), q.size(), f, 40);
  CheckEntries("attn dk", k.data(), dk.data(), k.size(), f, 40);
  CheckEntries("attn dv", v.data(), dv.data(), v.size(), f, 40);
  CheckDirectional("attn dq", q.data(), dq.data(), q.size(), f, 1);
  CheckDirectional("attn dk", k.data(), dk.data(), k.size(), f, 2);
}

TEST(OpsGrad, CausalGqaAttention) { CheckAttention(0); }
TEST(OpsGrad, SlidingWindowAttention) { CheckAttention(3); }

TEST(OpsGrad, AttentionBackwardIndependentOfThreads) {
  const int batch = 3, seq = 6, heads = 4, kv = 2, hd = 4;
  const int64_t n = batch * seq;
  std::vector<float> q = RandomVector(n * heads * hd, 20), k = RandomVector(n * kv * hd, 21),
                     v = RandomVector(n * kv * hd, 22), r = RandomVector(n * heads * hd, 23);
  std::vector<float> results[2];
  for (int t = 0; t < 2; ++t) {
    ThreadPool pool(t == 0 ? 1 : 3);
    std::vector<float> out(n * heads * hd), probs(int64_t{batch} * heads * seq * seq);
    AttentionForward(q.data(), k.data(), v.data(), batch, seq, heads, kv, hd, 0, out.data(), probs.data(), pool);
    std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
    AttentionBackward(q.data(), k.data(), v.data(), probs.data(), r.data(), batch, seq, heads, kv, hd, dq.data(),
                      dk.data(), dv.data(), pool);
    results[t] = out;
    results[t].insert(results[t].end(), dq.begin(), dq.end());
    results[t].insert(results[t].end(), dk.begin(), dk.end());
    results[t].insert(results[t].end(), dv.begin(), dv.end());
  }
  EXPECT_EQ(results[0], results[1]);
}

}  // namespace
}  // namespace squeeze::train
