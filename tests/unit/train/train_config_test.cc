// The YAML config of `squeeze train` and RunTraining end to end: a fresh
// model trained on a text file is saved as an HF checkpoint the engine loads.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "tests/common/synthetic_inputs.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/eval/loaded_model.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/train/train_config.h"

namespace squeeze::train {
namespace {

std::string TmpDir(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  std::string d = std::string(t ? t : "/tmp") + "/traincfg_" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

TEST(TrainConfig, RejectsUnknownKeysAndBadValuesNamingThem) {
  auto c = ParseTrainConfig("out_dir: /x\nmodel: {dim: 8, n_heads: 2, hidden_dim: 8, n_layers: 1}\n"
                            "data: [a.txt]\nbogus: 1\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bogus"), std::string::npos) << c.status();
  c = ParseTrainConfig("out_dir: /x\nmodel: {dim: 8, n_heads: 3, hidden_dim: 8, n_layers: 1, n_kv_heads: 2}\n"
                       "data: [a.txt]\n");
  EXPECT_NE(c.status().message().find("model."), std::string::npos) << c.status();
  c = ParseTrainConfig("out_dir: /x\ninit_from: m\ndata: [a.txt]\nloss: fancy\n");
  EXPECT_NE(c.status().message().find("loss"), std::string::npos) << c.status();
  c = ParseTrainConfig("out_dir: /x\ninit_from: m\ndata: []\n");
  EXPECT_NE(c.status().message().find("data"), std::string::npos) << c.status();
  c = ParseTrainConfig("out_dir: /x\ninit_from: m\ndata: [{path: a, weight: -1}]\n");
  EXPECT_NE(c.status().message().find("data[0].weight"), std::string::npos) << c.status();
  c = ParseTrainConfig("out_dir: /x\ninit_from: m\ndata: [a]\nsteps: many\n");
  EXPECT_NE(c.status().message().find("steps"), std::string::npos) << c.status();
  c = ParseTrainConfig("out_dir: /x\ninit_from: m\ndata: [a, {path: b, weight: 2, max_bytes: 10}]\n"
                       "loss: gkd\nbeta: 0.3\nlmbda: 0.5\nsteps: 7\ncheckpoint_every: 2\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data.size(), 2u);
  EXPECT_EQ(c->data[1].weight, 2.0);
  EXPECT_EQ(c->options.loss, LossKind::kGeneralizedJsd);
  EXPECT_EQ(c->options.checkpoint_dir, "/x/checkpoints");
}

TEST(TrainConfig, PretrainsAndSavesALoadableModel) {
  const std::string dir = TmpDir("run");
  ASSERT_TRUE(WriteFileAtomically(dir + "/text.txt", test_inputs::WordSalad(9)).ok());
  const std::string yaml = "model: {dim: 16, hidden_dim: 32, n_layers: 1, n_heads: 2, n_kv_heads: 1}\n"
                           "tokenizer: byte\n"
                           "data: [" + dir + "/text.txt]\n"
                           "steps: 30\nbatch_size: 4\nseq_len: 24\nlr: 5e-3\nwarmup_steps: 3\nseed: 1\n"
                           "threads: 1\ncheckpoint_every: 10\nout_dir: " + dir + "/out\n";
  auto c = ParseTrainConfig(yaml);
  ASSERT_TRUE(c.ok()) << c.status();
  int calls = 0;
  auto r = RunTraining(*c, [&](const StepLog&) { ++calls; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(calls, 30);
  EXPECT_EQ(r->steps_done, 30);
  EXPECT_LT(r->final_loss, r->first_loss - 1.0);
  auto loaded = LoadModelAndTokenizer(r->model_dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->model.config.vocab_size, 259);
  EXPECT_EQ(loaded->model.config.dim, 16);
  EXPECT_TRUE(std::filesystem::exists(dir + "/out/train_log.json"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/out/checkpoints/latest.json"));
  // Rerunning resumes from the final checkpoint: nothing left to do, same model.
  auto r2 = RunTraining(*c, nullptr);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_TRUE(r2->resumed);
  auto loaded2 = LoadModelAndTokenizer(r2->model_dir);
  ASSERT_TRUE(loaded2.ok());
  EXPECT_TRUE(loaded2->model.embedding == loaded->model.embedding);
}

}  // namespace
}  // namespace squeeze::train
