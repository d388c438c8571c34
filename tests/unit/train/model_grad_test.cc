// Whole-model gradient checks: a tiny Llama (GQA, tied and untied heads,
// with and without activation checkpointing) against finite differences of
// the cross-entropy loss; the training forward against the inference forward.
#include <gtest/gtest.h>

#include "tests/unit/train/grad_check.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/engine/train/losses.h"
#include "workers/engine/train/train_model.h"

namespace squeeze::train {
namespace {

using testing::CheckDirectional;
using testing::CheckEntries;

ModelConfig TinyConfig(bool tied) {
  ModelConfig c;
  c.dim = 8;
  c.hidden_dim = 12;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 11;
  c.max_seq_len = 16;
  c.tie_word_embeddings = tied;
  return c;
}

std::vector<int> Tokens(int n, int vocab, uint32_t seed) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    t[i] = static_cast<int>((seed >> 16) % vocab);
  }
  return t;
}

TEST(ModelGrad, TrainForwardMatchesInferenceForward) {
  for (bool tied : {true, false}) {
    Model m = MakeRandomModel(TinyConfig(tied), 3);
    auto tm = FromModel(m, DenseConverter(false));
    ASSERT_TRUE(tm.ok()) << tm.status();
    ThreadPool pool(2);
    const int batch = 2, seq = 6;
    std::vector<int> tokens = Tokens(batch * seq, 11, 7);
    ForwardState st;
    ASSERT_TRUE(TrainForward(*tm, tokens, batch, seq, false, &st, pool).ok());
    for (int b = 0; b < batch; ++b) {
      KVCache cache(m, seq);
      MatrixRM logits;
      std::vector<int> seq_tokens(tokens.begin() + b * seq, tokens.begin() + (b + 1) * seq);
      ASSERT_TRUE(Forward(m, seq_tokens, 0, cache, logits, true, pool).ok());
      for (int i = 0; i < seq; ++i)
        for (int j = 0; j < 11; ++j) EXPECT_NEAR(logits(i, j), st.logits(b * seq + i, j), 1e-4);
    }
  }
}

void CheckModel(bool tied, bool checkpointing) {
  Model m = MakeRandomModel(TinyConfig(tied), 5);
  auto tm = FromModel(m, DenseConverter(false));
  ASSERT_TRUE(tm.ok());
  ThreadPool pool(2);
  const int batch = 2, seq = 5;
  std::vector<int> tokens = Tokens(batch * seq, 11, 9), targets = Tokens(batch * seq, 11, 10);
  auto f = [&] {
    ForwardState st;
    EXPECT_TRUE(TrainForward(*tm, tokens, batch, seq, false, &st, pool).ok());
    // Sum (not mean) over rows: larger gradients, same relative fp32 noise.
    return CrossEntropy(st.logits, targets, batch * seq, nullptr, pool);
  };
  ForwardState st;
  ASSERT_TRUE(TrainForward(*tm, tokens, batch, seq, checkpointing, &st, pool).ok());
  MatrixRM dlogits;
  CrossEntropy(st.logits, targets, batch * seq, &dlogits, pool);
  tm->ZeroGrad();
  ASSERT_TRUE(TrainBackward(*tm, st, dlogits, pool).ok());
  int n_params = 0;
  for (NamedParam& p : tm->Params()) {
    CheckEntries(p.name, p.param->value.data(), p.param->grad.data(), p.param->numel(), f, 6, 1e-2, 3e-2, 3e-3);
    CheckDirectional(p.name, p.param->value.data(), p.param->grad.data(), p.param->numel(), f, ++n_params, 1e-2,
                     3e-2, 2e-3);
  }
  // embedding, 2 x (2 norms + 7 linears), final norm, (+ lm_head)
  EXPECT_EQ(n_params, 1 + 2 * 9 + 1 + (tied ? 0 : 1));
}

TEST(ModelGrad, TiedHead) { CheckModel(true, false); }
TEST(ModelGrad, UntiedHead) { CheckModel(false, false); }
TEST(ModelGrad, ActivationCheckpointing) { CheckModel(true, true); }

std::vector<float> AllGrads(TrainModel& tm) {
  std::vector<float> g;
  for (NamedParam& p : tm.Params()) g.insert(g.end(), p.param->grad.begin(), p.param->grad.end());
  return g;
}

TEST(ModelGrad, CheckpointingAndThreadCountGiveIdenticalGradients) {
  Model m = MakeRandomModel(TinyConfig(false), 8);
  std::vector<float> ref;
  for (int variant = 0; variant < 3; ++variant) {
    auto tm = FromModel(m, DenseConverter(false));
    ASSERT_TRUE(tm.ok());
    ThreadPool pool(variant == 2 ? 3 : 1);
    const int batch = 3, seq = 7;
    std::vector<int> tokens = Tokens(batch * seq, 11, 21), targets = Tokens(batch * seq, 11, 22);
    ForwardState st;
    ASSERT_TRUE(TrainForward(*tm, tokens, batch, seq, variant == 1, &st, pool).ok());
    MatrixRM dlogits;
    CrossEntropy(st.logits, targets, 1.0, &dlogits, pool);
    tm->ZeroGrad();
    ASSERT_TRUE(TrainBackward(*tm, st, dlogits, pool).ok());
    if (variant == 0) {
      ref = AllGrads(*tm);
    } else {
      EXPECT_EQ(ref, AllGrads(*tm)) << "variant " << variant;
    }
  }
}

TEST(ModelGrad, RejectsBadTokensAndShapes) {
  TrainModel tm = InitTrainModel(TinyConfig(true), 1);
  ThreadPool pool(1);
  ForwardState st;
  EXPECT_FALSE(TrainForward(tm, {1, 2, 3}, 2, 2, false, &st, pool).ok());
  auto s = TrainForward(tm, {1, 99}, 1, 2, false, &st, pool);
  EXPECT_NE(s.message().find("outside the vocabulary"), std::string::npos);
}

}  // namespace
}  // namespace squeeze::train
