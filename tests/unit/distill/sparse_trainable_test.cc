// SparseTrainable: a SparseLinear student layer is trained with its mask and
// comes back in the same storage format; the sparse kernel of the result
// (the fast path) matches the trained dense-masked weights (the reference).
#include "workers/methods/distill/sparse_trainable.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "workers/engine/model/synthetic_model.h"
#include "workers/methods/distill/distill.h"
#include "workers/methods/prune/magnitude.h"
#include "workers/methods/prune/mask_structure.h"
#include "tests/common/synthetic_inputs.h"
#include "tests/common/temp_dirs.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze {
namespace {

MatrixRM RandomMatrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.5f);
  MatrixRM m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
  return m;
}

std::unique_ptr<SparseLinear> Pruned(const MatrixRM& w, bool nm) {
  MagnitudeOptions o;
  o.sparsity = 0.5;
  if (nm) o.mask = std::move(ParseMaskStructure("2:4")).value();
  MatrixRM p = std::move(MagnitudePrune(w, o)).value();
  return std::move(SparseLinear::FromDense(p, {}, nm ? SparseFormat::kNM : SparseFormat::kBitmask, nm ? 2 : 0,
                                           nm ? 4 : 0))
      .value();
}

// Nonzero pattern of a layer's dense weight.
std::vector<bool> Pattern(const LinearLayer& l) {
  const MatrixRM w = l.DenseWeight();
  std::vector<bool> p(w.size());
  for (int64_t i = 0; i < w.size(); ++i) p[i] = w.data()[i] != 0.0f;
  return p;
}

TEST(SparseTrainable, TrainedLayerKeepsFormatMaskAndMatchesTheDenseReference) {
  ThreadPool pool(2);
  for (bool nm : {false, true}) {
    SCOPED_TRACE(nm ? "2:4" : "bitmask");
    const std::unique_ptr<SparseLinear> layer = Pruned(RandomMatrix(24, 32, 5), nm);
    auto t = MakeSparseTrainable(*layer);
    ASSERT_TRUE(t.ok()) << t.status();
    train::TrainableLinear& tl = **t;
    EXPECT_EQ(tl.kind(), "masked_sparse");
    // A few plain SGD steps on a random target through the trainable layer.
    const int64_t n = 6;
    const MatrixRM x = RandomMatrix(n, 32, 7), target = RandomMatrix(n, 24, 8);
    std::vector<float> y(n * 24), dy(n * 24), dx(n * 32);
    for (int step = 0; step < 5; ++step) {
      for (auto& [name, p] : tl.Params()) p->ZeroGrad();
      tl.Forward(x.data(), n, y.data(), pool);
      for (size_t i = 0; i < y.size(); ++i) dy[i] = y[i] - target.data()[i];
      tl.Backward(x.data(), dy.data(), n, dx.data(), pool);
      for (auto& [name, p] : tl.Params()) {
        for (size_t i = 0; i < p->value.size(); ++i) p->value[i] -= 0.05f * p->grad[i];
      }
    }
    std::unique_ptr<LinearLayer> out = tl.ToInference();
    EXPECT_EQ(out->kind(), layer->kind());
    ASSERT_NE(dynamic_cast<const SparseLinear*>(out.get()), nullptr);
    EXPECT_EQ(Pattern(*out), Pattern(*layer));
    EXPECT_FALSE(out->DenseWeight() == layer->DenseWeight());  // it did train
    // Fast path (the sparse kernel of the exported layer) vs the reference
    // (the trainable's dense masked forward).
    std::vector<float> fast(n * 24);
    out->Forward(x.data(), n, fast.data(), pool);
    tl.Forward(x.data(), n, y.data(), pool);
    for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(fast[i], y[i], 1e-5f * (1 + std::fabs(y[i]))) << i;
  }
}

TEST(SparseTrainable, DistillKeepsSparseStorageOfEveryPrunedLinear) {
  const ModelConfig c = test_inputs::SmallGqaConfig(/*hidden_dim=*/64, /*n_layers=*/2, /*vocab_size=*/259,
                                                    /*max_seq_len=*/64, /*tied=*/true);
  const Model teacher = MakeRandomModel(c, 3);
  Model student = MakeRandomModel(c, 3);
  std::vector<std::pair<std::string, std::vector<bool>>> before;
  int i = 0;
  for (LinearSlot& s : student.AllLinears()) {
    *s.slot = Pruned((*s.slot)->DenseWeight(), /*nm=*/(i++ % 2) == 1);
    before.emplace_back((*s.slot)->kind(), Pattern(**s.slot));
  }
  const std::string dir = test_inputs::FreshTestDir("sparse_trainable_", "data");
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(WriteFileAtomically(dir + "/tok.bin", test_inputs::ByteTokenizerBin()).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/text.txt", test_inputs::WordSalad(4)).ok());
  auto tok = LoadTokenizer(dir + "/tok.bin");
  ASSERT_TRUE(tok.ok());
  auto data = train::LoadTextDataset({{dir + "/text.txt", 1.0, 0}}, **tok, "", 16);
  ASSERT_TRUE(data.ok()) << data.status();
  DistillOptions o;
  o.train.steps = 4;
  o.train.batch = 2;
  o.train.seq = 16;
  o.train.lr = 1e-2f;
  o.train.loss = train::LossKind::kForwardKl;
  ThreadPool pool(2);
  auto r = DistillInPlace(student, teacher, *data, o, pool);
  ASSERT_TRUE(r.ok()) << r.status();
  i = 0;
  for (LinearSlot& s : student.AllLinears()) {
    EXPECT_EQ((*s.slot)->kind(), before[i].first) << s.name;
    EXPECT_EQ(Pattern(**s.slot), before[i].second) << s.name;
    ++i;
  }
}

}  // namespace
}  // namespace squeeze
