// The sparse kernels inside the real model: stories260K with every block
// linear magnitude-pruned and held as SparseLinear (bitmask 50%, 2:4, 1:2)
// gives the same logits as the same pruned weights held dense
// (DenseLinear of DenseWeight(), the plain forward), for a whole-sequence
// forward (n > 16 rows: densified tiles + GEMM), token-by-token decode
// (n = 1: the sparse GEMV) and 8-token chunks (the small sparse GEMM), under
// every kernel variant this CPU runs; and SparseLinear's kernel forward
// equals its scalar gather forward (ForwardPlain) on the real layers.
// Needs ../shared (SQUEEZE_SHARED_DIR); skips when it is absent.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/common/chunked_logits.h"
#include "tests/common/run_helpers.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/kernels/cpu/cpu_features.h"
#include "workers/methods/prune/magnitude.h"
#include "workers/methods/prune/sparse_linear.h"

namespace squeeze {
namespace {

struct Setting {
  const char* name;
  SparseFormat format;
  int keep, group;  // N:M: keep K of M
};

// Loads stories260K twice and prunes every block linear of both the same
// way: `sparse` holds SparseLinear, `dense` DenseLinear of the same weight.
absl::Status BuildPair(const std::string& path, const Setting& s, Model* sparse, Model* dense) {
  auto a = LoadModel(path);
  if (!a.ok()) return a.status();
  auto b = LoadModel(path);
  if (!b.ok()) return b.status();
  for (int layer = 0; layer < static_cast<int>(a->blocks.size()); ++layer) {
    std::vector<LinearSlot> sa = a->BlockLinears(layer), sb = b->BlockLinears(layer);
    for (size_t i = 0; i < sa.size(); ++i) {
      LinearLayer& l = **sa[i].slot;
      MagnitudeOptions o;
      o.sparsity = 0.5;
      o.comparison = PruneComparison::kRow;
      if (s.format == SparseFormat::kNM) o.mask = MaskStructure{s.group - s.keep, s.group};
      auto w = MagnitudePrune(l.DenseWeight(), o);
      if (!w.ok()) return w.status();
      std::vector<float> bias(l.bias().begin(), l.bias().end());
      auto sp = SparseLinear::FromDense(*w, bias, s.format, s.keep, s.group);
      if (!sp.ok()) return sp.status();
      *sa[i].slot = std::move(*sp);
      *sb[i].slot = DenseLinear::FromMatrix(*w, bias);
    }
  }
  *sparse = std::move(*a);
  *dense = std::move(*b);
  return absl::OkStatus();
}

using test_inputs::ChunkedLogits;

class SparseForwardOnStories : public ::testing::TestWithParam<Setting> {};

TEST_P(SparseForwardOnStories, LogitsEqualTheDenseHeldPrunedModel) {
  const test_inputs::SharedStories st = test_inputs::Stories260K(SQUEEZE_SHARED_DIR);
  if (!st.ok) GTEST_SKIP() << st.missing;
  const Setting s = GetParam();
  Model sparse, dense;
  ASSERT_TRUE(BuildPair(st.model, s, &sparse, &dense).ok());
  const std::string kind = sparse.blocks[0].q_proj->kind();
  EXPECT_EQ(kind, s.format == SparseFormat::kBitmask ? std::string("sparse_bitmask")
                                                     : "sparse_" + std::to_string(s.keep) + "of" +
                                                           std::to_string(s.group));
  // 48 token ids of the 512-token vocabulary (a fixed pseudo-random walk).
  std::vector<int> tokens;
  for (int i = 0; i < 48; ++i) tokens.push_back(1 + (i * 37 + i * i * 11) % 500);
  ThreadPool pool(2);
  const MatrixRM want = ChunkedLogits(dense, tokens, 48, pool);
  const double scale = 1.0 + want.cwiseAbs().maxCoeff();
  for (kernels::KernelIsa isa : kernels::SupportedIsas()) {
    kernels::ScopedKernelIsa scoped(isa);
    for (int chunk : {48, 8, 1}) {
      const MatrixRM got = ChunkedLogits(sparse, tokens, chunk, pool);
      const double err = (got - want).cwiseAbs().maxCoeff();
      EXPECT_LT(err, 2e-4 * scale) << s.name << " " << kernels::KernelIsaName(isa) << " chunk " << chunk;
    }
  }
  // The pruned model really differs from the unpruned one (the comparison
  // above is not between two copies of the dense model).
  auto orig = LoadModel(st.model);
  ASSERT_TRUE(orig.ok());
  const MatrixRM unpruned = ChunkedLogits(*orig, tokens, 48, pool);
  EXPECT_GT((unpruned - want).cwiseAbs().maxCoeff(), 1e-2);
}

TEST_P(SparseForwardOnStories, KernelForwardEqualsTheScalarForwardOnRealLayers) {
  const test_inputs::SharedStories st = test_inputs::Stories260K(SQUEEZE_SHARED_DIR);
  if (!st.ok) GTEST_SKIP() << st.missing;
  const Setting s = GetParam();
  Model sparse, dense;
  ASSERT_TRUE(BuildPair(st.model, s, &sparse, &dense).ok());
  ThreadPool pool(2);
  for (LinearSlot& slot : sparse.AllLinears()) {
    const auto* l = dynamic_cast<const SparseLinear*>(slot.slot->get());
    if (l == nullptr) continue;  // lm_head (tied here)
    for (int64_t n : {1, 3, 16, 20}) {
      MatrixRM x(n, l->in_features());
      for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = std::sin(0.37 * static_cast<double>(i) + n);
      MatrixRM y(n, l->out_features()), plain(n, l->out_features());
      l->Forward(x.data(), n, y.data(), pool);
      l->ForwardPlain(x.data(), n, plain.data(), pool);
      const MatrixRM ref = x * l->DenseWeight().transpose();
      const double tol = 1e-5 * (1.0 + (x.cwiseAbs() * l->DenseWeight().cwiseAbs().transpose()).maxCoeff());
      EXPECT_LT((y - plain).cwiseAbs().maxCoeff(), tol) << slot.name << " n=" << n;
      EXPECT_LT((y - ref).cwiseAbs().maxCoeff(), tol) << slot.name << " n=" << n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, SparseForwardOnStories,
                         ::testing::Values(Setting{"bitmask50", SparseFormat::kBitmask, 0, 0},
                                           Setting{"nm_2of4", SparseFormat::kNM, 2, 4},
                                           Setting{"nm_1of2", SparseFormat::kNM, 1, 2}),
                         [](const ::testing::TestParamInfo<Setting>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace squeeze
