// FactorizedLinear's two-GEMM forward (kernels::GemmF32NT twice) against the
// plain forward x * (U V)^T + b: on random shapes under every kernel variant
// (decode n = 1, small batches, prefill n > 32 where the GEMM packs tiles),
// and inside the real stories260K model, every block linear factorized by
// truncated SVD at rank 0.45 * min(out, in), whose logits equal those of the
// same model holding DenseLinear(U V) (decode, 8-token chunks, whole
// sequence). The real-model case needs ../shared (SQUEEZE_SHARED_DIR).
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/common/chunked_logits.h"
#include "tests/common/run_helpers.h"
#include "tests/unit/methods/method_test_util.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/kernels/cpu/cpu_features.h"
#include "workers/methods/lowrank/factorized_linear.h"
#include "workers/methods/lowrank/lowrank.h"

namespace squeeze {
namespace {

using test_inputs::ChunkedLogits;
using test_util::RandomMatrix;

TEST(FactorizedForward, EveryVariantMatchesThePlainForward) {
  ThreadPool one(1), three(3);
  struct Shape {
    int64_t out, in, r;
  };
  for (const Shape s : {Shape{70, 50, 9}, Shape{1, 33, 1}, Shape{129, 257, 31}, Shape{64, 172, 37}}) {
    std::vector<float> bias(s.out);
    for (int64_t i = 0; i < s.out; ++i) bias[i] = 0.01f * static_cast<float>(i) - 0.3f;
    auto layer = FactorizedLinear::Create(RandomMatrix(s.out, s.r, 1), RandomMatrix(s.r, s.in, 2), bias);
    ASSERT_TRUE(layer.ok()) << layer.status();
    const MatrixRM w = (*layer)->DenseWeight();
    for (int64_t n : {1, 5, 16, 40}) {
      const MatrixRM x = RandomMatrix(n, s.in, 3 + n);
      // Plain forward in double: x (U V)^T computed as (x V^T) U^T exactly
      // as associativity allows; the bound is |x||V|^T |U|^T (fp32 sums).
      const Eigen::MatrixXd xd = x.cast<double>(), ud = (*layer)->u().cast<double>(),
                            vd = (*layer)->v().cast<double>();
      Eigen::MatrixXd ref = (xd * vd.transpose()) * ud.transpose();
      ref.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias.data(), s.out).cast<double>();
      const Eigen::MatrixXd mag = (xd.cwiseAbs() * vd.cwiseAbs().transpose()) * ud.cwiseAbs().transpose();
      for (kernels::KernelIsa isa : kernels::SupportedIsas()) {
        kernels::ScopedKernelIsa scoped(isa);
        MatrixRM y1(n, s.out), y3(n, s.out);
        (*layer)->Forward(x.data(), n, y1.data(), one);
        (*layer)->Forward(x.data(), n, y3.data(), three);
        EXPECT_TRUE((y1.array() == y3.array()).all()) << kernels::KernelIsaName(isa) << " n=" << n;
        const Eigen::ArrayXXd err = (y1.cast<double>() - ref).array().abs();
        EXPECT_TRUE((err <= 1e-5 * mag.array() + 1e-6).all())
            << kernels::KernelIsaName(isa) << " " << s.out << "x" << s.in << " r" << s.r << " n=" << n
            << " max err " << err.maxCoeff();
      }
    }
  }
}

TEST(FactorizedForward, Stories260KLogitsEqualTheDenseHeldProduct) {
  const test_inputs::SharedStories st = test_inputs::Stories260K(SQUEEZE_SHARED_DIR);
  if (!st.ok) GTEST_SKIP() << st.missing;
  auto lr = LoadModel(st.model);
  ASSERT_TRUE(lr.ok()) << lr.status();
  auto dense = LoadModel(st.model);
  ASSERT_TRUE(dense.ok()) << dense.status();
  int factorized = 0;
  for (int layer = 0; layer < static_cast<int>(lr->blocks.size()); ++layer) {
    std::vector<LinearSlot> a = lr->BlockLinears(layer), b = dense->BlockLinears(layer);
    for (size_t i = 0; i < a.size(); ++i) {
      LowRankOptions o;
      o.rank_ratio = 0.45;
      auto f = LowRankFactorize((*a[i].slot)->DenseWeight(), {}, o);
      ASSERT_TRUE(f.ok()) << a[i].name << ": " << f.status();
      auto layer_or = FactorizedLinear::Create(f->u, f->v);
      ASSERT_TRUE(layer_or.ok()) << layer_or.status();
      *b[i].slot = DenseLinear::FromMatrix((*layer_or)->DenseWeight());
      *a[i].slot = std::move(*layer_or);
      ++factorized;
    }
  }
  EXPECT_EQ(factorized, 35);
  EXPECT_EQ(lr->blocks[0].q_proj->kind(), "lowrank_r29");
  std::vector<int> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back(1 + (i * 53 + i * i * 7) % 500);
  ThreadPool pool(2);
  const MatrixRM want = ChunkedLogits(*dense, tokens, 40, pool);
  const double scale = 1.0 + want.cwiseAbs().maxCoeff();
  for (kernels::KernelIsa isa : kernels::SupportedIsas()) {
    kernels::ScopedKernelIsa scoped(isa);
    for (int chunk : {40, 8, 1}) {
      const MatrixRM got = ChunkedLogits(*lr, tokens, chunk, pool);
      EXPECT_LT((got - want).cwiseAbs().maxCoeff(), 2e-4 * scale)
          << kernels::KernelIsaName(isa) << " chunk " << chunk;
    }
  }
  // The factorized model is not the original one (rank 29 of 64 loses detail).
  auto orig = LoadModel(st.model);
  ASSERT_TRUE(orig.ok());
  EXPECT_GT((ChunkedLogits(*orig, tokens, 40, pool) - want).cwiseAbs().maxCoeff(), 1e-2);
}

}  // namespace
}  // namespace squeeze
