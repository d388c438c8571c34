// The training loop: overfitting a tiny text, masks surviving, gradient
// accumulation, checkpoint + resume bit-identical to an uninterrupted run,
// distillation reducing the divergence (off- and on-policy).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "tests/common/synthetic_inputs.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/engine/tokenizer/tokenizer.h"
#include "workers/engine/train/trainer.h"

namespace squeeze::train {
namespace {

std::string TmpDir(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  std::string d = std::string(t ? t : "/tmp") + "/train_" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

struct Fixture {
  std::unique_ptr<Tokenizer> tok;
  TokenDataset data;
};

Fixture MakeData(const std::string& text, int seq) {
  Fixture f;
  const std::string dir = TmpDir("data");
  EXPECT_TRUE(WriteFileAtomically(dir + "/tok.bin", test_inputs::ByteTokenizerBin()).ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/text.txt", text).ok());
  auto tok = LoadTokenizer(dir + "/tok.bin");
  EXPECT_TRUE(tok.ok()) << tok.status();
  f.tok = std::move(*tok);
  auto d = LoadTextDataset({{dir + "/text.txt", 1.0, 0}}, *f.tok, "", seq);
  EXPECT_TRUE(d.ok()) << d.status();
  f.data = std::move(*d);
  return f;
}

ModelConfig SmallConfig(int vocab) {
  return test_inputs::SmallGqaConfig(/*hidden_dim=*/64, /*n_layers=*/2, /*vocab_size=*/vocab, /*max_seq_len=*/64,
                                     /*tied=*/true);
}

TEST(Trainer, TinyModelOverfitsTinyText) {
  const std::string text = "the cat sat on the mat. the dog ran to the red ball and the cat saw it.\n";
  Fixture f = MakeData(text, 32);
  TrainModel m = InitTrainModel(SmallConfig(f.tok->vocab_size()), 1);
  TrainOptions o;
  o.steps = 250;
  o.batch = 8;
  o.seq = 32;
  o.lr = 1e-2f;
  o.min_lr = 1e-3f;
  o.warmup_steps = 10;
  o.seed = 3;
  ThreadPool pool(2);
  auto t = Trainer::Create(&m, nullptr, &f.data, o, &pool);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE((*t)->Run(nullptr).ok());
  const auto& h = (*t)->history();
  ASSERT_EQ(h.size(), 250u);
  EXPECT_GT(h.front().loss, 4.0);  // ~ln(259) at init
  double last = 0;
  for (size_t i = h.size() - 10; i < h.size(); ++i) last += h[i].loss / 10;
  EXPECT_LT(last, 0.15) << "mean loss of the last 10 steps";
}

TEST(Trainer, MaskSurvivesTraining) {
  Fixture f = MakeData(test_inputs::WordSalad(4), 16);
  Model dense = MakeRandomModel(SmallConfig(f.tok->vocab_size()), 2);
  // Prune every other weight of every linear.
  for (LinearSlot& s : dense.AllLinears()) {
    MatrixRM w = (*s.slot)->DenseWeight();
    for (int64_t i = 0; i < w.size(); i += 2) w.data()[i] = 0.0f;
    *s.slot = DenseLinear::FromMatrix(std::move(w));
  }
  auto m = FromModel(dense, DenseConverter(true));
  ASSERT_TRUE(m.ok());
  std::vector<std::vector<float>> before;
  for (NamedParam& p : m->Params()) before.push_back(p.param->value);
  TrainOptions o;
  o.steps = 15;
  o.batch = 2;
  o.seq = 16;
  o.lr = 1e-2f;
  o.adamw.weight_decay = 0.1f;
  ThreadPool pool(2);
  auto t = Trainer::Create(&*m, nullptr, &f.data, o, &pool);
  ASSERT_TRUE((*t)->Run(nullptr).ok());
  int masked_params = 0;
  auto params = m->Params();
  for (size_t i = 0; i < params.size(); ++i) {
    const Param& p = *params[i].param;
    if (p.mask.empty()) continue;
    ++masked_params;
    int64_t moved = 0;
    for (int64_t j = 0; j < p.numel(); ++j) {
      if (j % 2 == 0) {
        ASSERT_EQ(p.value[j], 0.0f) << params[i].name << " " << j;
      } else {
        moved += p.value[j] != before[i][j];
      }
    }
    EXPECT_GT(moved, p.numel() / 4) << params[i].name;
  }
  EXPECT_EQ(masked_params, 14);
  // The exported model keeps the sparsity.
  Model out = m->ToModel();
  MatrixRM w = out.blocks[1].down_proj->DenseWeight();
  for (int64_t i = 0; i < w.size(); i += 2) EXPECT_EQ(w.data()[i], 0.0f);
}

TEST(Trainer, GradientAccumulationMatchesOneLargeBatch) {
  Fixture f = MakeData(test_inputs::WordSalad(5), 16);
  std::vector<float> result[2];
  for (int v = 0; v < 2; ++v) {
    TrainModel m = InitTrainModel(SmallConfig(f.tok->vocab_size()), 4);
    TrainOptions o;
    o.steps = 1;
    o.batch = v == 0 ? 4 : 2;
    o.grad_accum = v == 0 ? 1 : 2;
    o.seq = 16;
    o.grad_clip = 0;
    o.adamw.eps = 1e-3f;  // keeps the update linear enough to compare
    ThreadPool pool(1);
    auto t = Trainer::Create(&m, nullptr, &f.data, o, &pool);
    ASSERT_TRUE((*t)->Run(nullptr).ok());
    for (NamedParam& p : m.Params()) result[v].insert(result[v].end(), p.param->value.begin(), p.param->value.end());
  }
  ASSERT_EQ(result[0].size(), result[1].size());
  for (size_t i = 0; i < result[0].size(); ++i) ASSERT_NEAR(result[0][i], result[1][i], 2e-6) << i;
}

std::vector<float> RunAndCollect(const Fixture& f, const TrainOptions& o, int64_t stop_after, int threads) {
  TrainModel m = InitTrainModel(SmallConfig(f.tok->vocab_size()), 6);
  ThreadPool pool(threads);
  auto t = Trainer::Create(&m, nullptr, &f.data, o, &pool);
  EXPECT_TRUE(t.ok());
  auto resumed = (*t)->Resume();
  EXPECT_TRUE(resumed.ok()) << resumed.status();
  std::atomic<bool> stop{false};
  absl::Status s = (*t)->Run([&](const StepLog& l) {
    if (l.step == stop_after) stop = true;
  }, &stop);
  std::vector<float> all;
  for (NamedParam& p : m.Params()) all.insert(all.end(), p.param->value.begin(), p.param->value.end());
  return all;
}

TEST(Trainer, ResumeIsBitIdenticalToUninterruptedRun) {
  Fixture f = MakeData(test_inputs::WordSalad(6), 16);
  TrainOptions o;
  o.steps = 8;
  o.batch = 2;
  o.seq = 16;
  o.grad_accum = 2;
  o.lr = 3e-3f;
  o.warmup_steps = 2;
  o.adamw.weight_decay = 0.01f;
  o.checkpoint_every = 3;
  o.checkpoint_dir = TmpDir("ckpt_a");
  const std::vector<float> straight = RunAndCollect(f, o, -1, 1);
  // Interrupted at step 5 (a stop request writes a checkpoint), then resumed
  // by a fresh process-like run with a different thread count.
  o.checkpoint_dir = TmpDir("ckpt_b");
  RunAndCollect(f, o, 5, 2);
  auto j = ReadFileToString(o.checkpoint_dir + "/latest.json");
  ASSERT_TRUE(j.ok());
  EXPECT_NE(j->find("\"step\": 5"), std::string::npos) << *j;
  const std::vector<float> resumed = RunAndCollect(f, o, -1, 3);
  ASSERT_EQ(straight.size(), resumed.size());
  EXPECT_TRUE(straight == resumed) << "resumed parameters differ from the uninterrupted run";
}

TEST(Trainer, DistillationReducesDivergenceOffAndOnPolicy) {
  Fixture f = MakeData(test_inputs::WordSalad(7), 24);
  // The teacher: a small model pre-trained on the text (so its
  // distributions are meaningful, neither uniform nor random-sharp).
  TrainModel trained = InitTrainModel(SmallConfig(f.tok->vocab_size()), 11);
  {
    TrainOptions o;
    o.steps = 60;
    o.batch = 8;
    o.seq = 24;
    o.lr = 1e-2f;
    ThreadPool pool(2);
    auto t = Trainer::Create(&trained, nullptr, &f.data, o, &pool);
    ASSERT_TRUE((*t)->Run(nullptr).ok());
  }
  const Model teacher = trained.ToModel();
  for (auto [loss, lmbda] : {std::pair{LossKind::kForwardKl, 0.0f}, std::pair{LossKind::kReverseKl, 0.0f},
                             std::pair{LossKind::kGeneralizedJsd, 0.0f}, std::pair{LossKind::kGeneralizedJsd, 1.0f}}) {
    TrainModel student = InitTrainModel(SmallConfig(f.tok->vocab_size()), 12);
    TrainOptions o;
    o.steps = 30;
    o.batch = 4;
    o.seq = 24;
    o.lr = 1e-2f;
    o.loss = loss;
    o.temperature = 1.0f;
    o.beta = 0.5f;
    o.lmbda = lmbda;
    o.prompt_len = 4;
    ThreadPool pool(2);
    auto t = Trainer::Create(&student, &teacher, &f.data, o, &pool);
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_TRUE((*t)->Run(nullptr).ok());
    const auto& h = (*t)->history();
    double first = 0, last = 0;
    for (int i = 0; i < 5; ++i) {
      first += h[i].loss;
      last += h[h.size() - 1 - i].loss;
    }
    EXPECT_LT(last, 0.5 * first) << LossKindName(loss) << " lmbda " << lmbda;
    int on_policy = 0;
    for (const StepLog& l : h) on_policy += l.on_policy;
    EXPECT_EQ(on_policy, lmbda == 1.0f ? 30 : 0);
  }
}

TEST(Trainer, BadOptionsNameTheField) {
  Fixture f = MakeData(test_inputs::WordSalad(8), 16);
  TrainModel m = InitTrainModel(SmallConfig(f.tok->vocab_size()), 1);
  ThreadPool pool(1);
  TrainOptions o;
  o.seq = 16;
  o.loss = LossKind::kForwardKl;
  auto t = Trainer::Create(&m, nullptr, &f.data, o, &pool);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("loss"), std::string::npos);
  o.loss = LossKind::kCrossEntropy;
  o.seq = 1000;
  t = Trainer::Create(&m, nullptr, &f.data, o, &pool);
  EXPECT_NE(t.status().message().find("seq_len"), std::string::npos);
}

}  // namespace
}  // namespace squeeze::train
