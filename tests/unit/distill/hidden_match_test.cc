// Hidden-state matching (workers/engine/train/hidden_match.h): the MSE and its
// gradients (student states and the width projection) against central finite
// differences; the TrainBackward hook (gradients on block outputs) through a
// tiny Llama against finite differences of CE + MSE; the teacher's block
// outputs from the inference blocks equal the training forward's; and the
// trainer pulls a narrower, shallower student's states towards the teacher's.
#include <gtest/gtest.h>

#include <random>

#include "tests/unit/train/grad_check.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/engine/train/hidden_match.h"
#include "workers/engine/train/losses.h"
#include "workers/engine/train/train_model.h"
#include "workers/engine/train/trainer.h"

namespace squeeze::train {
namespace {

using testing::CheckDirectional;
using testing::CheckEntries;

ModelConfig Config(int dim, int layers) {
  ModelConfig c;
  c.dim = dim;
  c.hidden_dim = 12;
  c.n_layers = layers;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 11;
  c.max_seq_len = 16;
  c.tie_word_embeddings = true;
  return c;
}

MatrixRM Random(int rows, int cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  MatrixRM m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = d(rng);
  return m;
}

std::vector<int> Tokens(int n, int vocab, uint32_t seed) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    t[i] = static_cast<int>((seed >> 16) % vocab);
  }
  return t;
}

TEST(HiddenMatch, MseByHandAndShapeErrors) {
  MatrixRM hs(1, 2), ht(1, 2);
  hs << 1, 2;
  ht << 0, 4;
  // (1 + 4) / (1 * 2) = 2.5, weight 2 -> 5.
  EXPECT_DOUBLE_EQ(*HiddenStateMse(hs, ht, nullptr, 2.0, nullptr, nullptr), 5.0);
  MatrixRM wide(1, 3);
  EXPECT_FALSE(HiddenStateMse(hs, wide, nullptr, 1, nullptr, nullptr).ok());  // widths differ, no projection
  MatrixRM bad_proj(2, 2);
  EXPECT_FALSE(HiddenStateMse(hs, wide, &bad_proj, 1, nullptr, nullptr).ok());
  MatrixRM rows(2, 2);
  EXPECT_FALSE(HiddenStateMse(hs, rows, nullptr, 1, nullptr, nullptr).ok());
}

TEST(HiddenMatch, MseGradientsMatchFiniteDifferences) {
  for (bool project : {false, true}) {
    const int n = 5, ds = 4, dt = project ? 6 : 4;
    MatrixRM hs = Random(n, ds, 1), ht = Random(n, dt, 2), proj = Random(dt, ds, 3);
    MatrixRM dhs = MatrixRM::Zero(n, ds), dproj = MatrixRM::Zero(dt, ds);
    MatrixRM* p = project ? &proj : nullptr;
    ASSERT_TRUE(HiddenStateMse(hs, ht, p, 0.7, &dhs, project ? &dproj : nullptr).ok());
    auto f = [&] { return *HiddenStateMse(hs, ht, p, 0.7, nullptr, nullptr); };
    CheckEntries("dhs", hs.data(), dhs.data(), hs.size(), f, 20, 1e-2, 1e-2, 1e-4);
    if (project) CheckEntries("dproj", proj.data(), dproj.data(), proj.size(), f, 24, 1e-2, 1e-2, 1e-4);
  }
}

TEST(HiddenMatch, BackwardHookMatchesFiniteDifferencesThroughTheModel) {
  Model m = MakeRandomModel(Config(8, 3), 5);
  auto tm = FromModel(m, DenseConverter(false));
  ASSERT_TRUE(tm.ok());
  ThreadPool pool(2);
  const int batch = 2, seq = 5, n = batch * seq;
  std::vector<int> tokens = Tokens(n, 11, 9), targets = Tokens(n, 11, 10);
  const MatrixRM target0 = Random(n, 8, 4), target2 = Random(n, 6, 5), proj = Random(6, 8, 6);
  // Block 0 matched directly, the last block through a projection to width 6.
  auto loss = [&](ForwardState& st, std::vector<MatrixRM>* dh, MatrixRM* dlogits) {
    double l = CrossEntropy(st.logits, targets, n, dlogits, pool);
    if (dh) {
      dh->assign(3, MatrixRM());
      (*dh)[0] = MatrixRM::Zero(n, 8);
      (*dh)[2] = MatrixRM::Zero(n, 8);
    }
    l += *HiddenStateMse(BlockOutput(st, 0), target0, nullptr, 3.0, dh ? &(*dh)[0] : nullptr, nullptr);
    l += *HiddenStateMse(BlockOutput(st, 2), target2, &proj, 3.0, dh ? &(*dh)[2] : nullptr, nullptr);
    return l;
  };
  auto f = [&] {
    ForwardState st;
    EXPECT_TRUE(TrainForward(*tm, tokens, batch, seq, false, &st, pool).ok());
    return loss(st, nullptr, nullptr);
  };
  for (bool checkpointing : {false, true}) {
    ForwardState st;
    ASSERT_TRUE(TrainForward(*tm, tokens, batch, seq, checkpointing, &st, pool).ok());
    MatrixRM dlogits;
    std::vector<MatrixRM> dh;
    loss(st, &dh, &dlogits);
    tm->ZeroGrad();
    ASSERT_TRUE(TrainBackward(*tm, st, dlogits, pool, dh).ok());
    int k = 0;
    for (NamedParam& p : tm->Params()) {
      CheckDirectional(p.name, p.param->value.data(), p.param->grad.data(), p.param->numel(), f, ++k, 1e-2, 3e-2,
                       2e-3);
    }
  }
  // A wrongly shaped hidden gradient is refused, naming the block.
  ForwardState st;
  ASSERT_TRUE(TrainForward(*tm, tokens, batch, seq, false, &st, pool).ok());
  MatrixRM dlogits;
  CrossEntropy(st.logits, targets, 1, &dlogits, pool);
  std::vector<MatrixRM> bad(3);
  bad[1] = MatrixRM::Zero(n, 7);
  absl::Status s = TrainBackward(*tm, st, dlogits, pool, bad);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("block 1"), std::string::npos) << s;
}

TEST(HiddenMatch, TeacherStatesEqualTheTrainingForwardsBlockOutputs) {
  Model m = MakeRandomModel(Config(8, 3), 7);
  auto tm = FromModel(m, DenseConverter(false));
  ASSERT_TRUE(tm.ok());
  ThreadPool pool(2);
  const int batch = 2, seq = 6;
  std::vector<int> tokens = Tokens(batch * seq, 11, 3);
  ForwardState st;
  ASSERT_TRUE(TrainForward(*tm, tokens, batch, seq, false, &st, pool).ok());
  auto th = TeacherHiddenStates(m, tokens, batch, seq, {2, 0}, pool);
  ASSERT_TRUE(th.ok()) << th.status();
  ASSERT_EQ(th->size(), 2u);
  EXPECT_LT(((*th)[0] - BlockOutput(st, 2)).cwiseAbs().maxCoeff(), 1e-4);
  EXPECT_LT(((*th)[1] - BlockOutput(st, 0)).cwiseAbs().maxCoeff(), 1e-4);
  EXPECT_FALSE(TeacherHiddenStates(m, tokens, batch, seq, {3}, pool).ok());
}

TEST(HiddenMatch, DefaultTeacherLayerIsProportional) {
  EXPECT_EQ(DefaultTeacherLayer(1, 5, 5), 1);
  EXPECT_EQ(DefaultTeacherLayer(0, 2, 6), 2);
  EXPECT_EQ(DefaultTeacherLayer(1, 2, 6), 5);
  EXPECT_EQ(DefaultTeacherLayer(2, 3, 5), 4);
}

TEST(HiddenMatch, TrainerPullsANarrowerShallowerStudentTowardsTheTeacher) {
  Model teacher = MakeRandomModel(Config(12, 3), 11);
  TrainModel student = InitTrainModel(Config(8, 2), 12);
  TokenDataset data;
  data.streams = {Tokens(400, 11, 13)};
  data.weights = {1.0};
  TrainOptions o;
  o.steps = 300;
  o.batch = 2;
  o.seq = 8;
  o.lr = 1e-2f;
  o.loss = LossKind::kForwardKl;
  o.hidden_layers = {0, 1};  // default teacher layers: 0 -> 1 (round(1.5) - 1), 1 -> 2
  o.hidden_weight = 10.0f;  // the hidden-state term dominates the gradient
  ThreadPool pool(2);
  auto trainer = Trainer::Create(&student, &teacher, &data, o, &pool);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  ASSERT_TRUE((*trainer)->Run(nullptr).ok());
  const auto& h = (*trainer)->history();
  ASSERT_EQ(h.size(), 300u);
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) {
    first += h[i].hidden_loss;
    last += h[h.size() - 1 - i].hidden_loss;
  }
  EXPECT_GT(first, 0);
  EXPECT_LT(last, 0.8 * first) << "hidden-state loss did not fall: " << first / 10 << " -> " << last / 10;
  // The two projections (width 8 -> 12) live in the trainer (checkpointed with it), not in the model.
  int projs = 0;
  for (const NamedParam& p : student.Params()) projs += p.name.rfind("hidden_proj", 0) == 0;
  EXPECT_EQ(projs, 0);  // they belong to the trainer, not the model
  // Options are checked, naming the field.
  TrainOptions bad = o;
  bad.hidden_layers = {2};
  auto t2 = Trainer::Create(&student, &teacher, &data, bad, &pool);
  ASSERT_FALSE(t2.ok());
  EXPECT_NE(std::string(t2.status().message()).find("hidden_layers[0]"), std::string::npos);
  bad = o;
  bad.hidden_teacher_layers = {0};
  EXPECT_FALSE(Trainer::Create(&student, &teacher, &data, bad, &pool).ok());
  EXPECT_FALSE(Trainer::Create(&student, nullptr, &data, o, &pool).ok());
}

}  // namespace
}  // namespace squeeze::train
