// Zero-shot tasks, agreement and cost on the real stories260K model
// (../shared/models/stories260K, ../shared/data/tasks). Skips when absent.
#include <cctype>
#include <cstdio>
#include <filesystem>

#include <gtest/gtest.h>

#include "workers/engine/core/file_util.h"
#include "workers/engine/eval/agreement.h"
#include "workers/engine/eval/cost.h"
#include "workers/engine/eval/loaded_model.h"
#include "workers/engine/eval/perplexity.h"
#include "workers/engine/eval/tasks.h"

namespace squeeze {
namespace {

const std::string kModel = std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K/stories260K.bin";
const std::string kTasks = std::string(SQUEEZE_SHARED_DIR) + "/data/tasks";
const std::string kValid = std::string(SQUEEZE_SHARED_DIR) + "/data/tinystories/valid.txt";

#define SKIP_WITHOUT_SHARED()                                                                       \
  if (!std::filesystem::exists(kModel) || !std::filesystem::exists(kTasks + "/arc_easy.jsonl")) {  \
    GTEST_SKIP() << "stories260K or the task files not found under " << SQUEEZE_SHARED_DIR;        \
  }

TEST(Stories260KTasksTest, First200OfArcEasyPiqaLambada) {
  SKIP_WITHOUT_SHARED();
  auto m = LoadModelAndTokenizer(kModel);
  ASSERT_TRUE(m.ok()) << m.status();
  for (const std::string name : {"arc_easy", "piqa", "lambada_openai"}) {
    auto task = LoadTaskFile(kTasks + "/" + name + ".jsonl", 200);
    ASSERT_TRUE(task.ok()) << task.status();
    ASSERT_EQ(task->examples.size(), 200u);
    auto r = EvaluateTask(m->model, *m->tokenizer, *task, TaskOptions{});
    ASSERT_TRUE(r.ok()) << name << ": " << r.status();
    EXPECT_EQ(r->n, 200);
    for (double a : {r->acc, r->acc_norm}) {
      EXPECT_GE(a, 0.0);
      EXPECT_LE(a, 1.0);
    }
    if (task->format == TaskFormat::kMultipleChoice) {
      // A 260K-parameter TinyStories model is near chance on adult tasks:
      // arc_easy has 4 choices (0.25), piqa 2 (0.5); allow 4 stderr of a coin.
      const double chance = name == "piqa" ? 0.5 : 0.25;
      EXPECT_NEAR(r->acc, chance, 4 * std::sqrt(chance * (1 - chance) / 200)) << name;
      EXPECT_GT(r->acc_stderr, 0.0);
    } else {
      EXPECT_GT(r->perplexity, 1.0);
      EXPECT_GT(r->token_perplexity, 1.0);
    }
    std::printf("stories260K %-15s n=%lld acc %.4f +- %.4f  acc_norm %.4f +- %.4f", name.c_str(),
                static_cast<long long>(r->n), r->acc, r->acc_stderr, r->acc_norm, r->acc_norm_stderr);
    if (task->format == TaskFormat::kLanguageModeling) {
      std::printf("  perplexity %.2f (per token %.3f)", r->perplexity, r->token_perplexity);
    }
    std::printf("\n");
    // Deterministic: a second run on the first 30 examples gives the same choices.
    Task head = *task;
    head.examples.resize(30);
    auto again = EvaluateTask(m->model, *m->tokenizer, head, TaskOptions{});
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->predictions, std::vector<int>(r->predictions.begin(), r->predictions.begin() + 30)) << name;
    EXPECT_EQ(again->norm_predictions,
              std::vector<int>(r->norm_predictions.begin(), r->norm_predictions.begin() + 30)) << name;
  }
}

// A TinyStories cloze built here (in-domain for the model): each story's
// last word, punctuation stripped, is the continuation of the text before it.
TEST(Stories260KTasksTest, TinyStoriesLastWordClozeIsWellAboveLambada) {
  SKIP_WITHOUT_SHARED();
  if (!std::filesystem::exists(kValid)) GTEST_SKIP() << kValid << " absent";
  auto m = LoadModelAndTokenizer(kModel);
  ASSERT_TRUE(m.ok()) << m.status();
  auto text = ReadFileToString(kValid);
  ASSERT_TRUE(text.ok());
  Task cloze;
  cloze.name = "tinystories_cloze";
  cloze.format = TaskFormat::kLanguageModeling;
  for (const std::string& doc : SplitDocuments(*text, "<|endoftext|>")) {
    std::string s = doc;
    while (!s.empty() && !std::isalpha(static_cast<unsigned char>(s.back()))) s.pop_back();
    const size_t sp = s.find_last_of(" \n");
    if (sp == std::string::npos || sp == 0 || s.size() - sp < 2) continue;
    TaskExample ex;
    ex.candidates.emplace_back(s.substr(0, sp), " " + s.substr(sp + 1));
    ex.norm_chars.push_back(Utf8Chars(s.substr(sp + 1)));
    cloze.examples.push_back(ex);
    if (cloze.examples.size() == 60) break;
  }
  ASSERT_EQ(cloze.examples.size(), 60u);
  auto r = EvaluateTask(m->model, *m->tokenizer, cloze, TaskOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("stories260K tinystories last-word cloze n=60 acc %.4f +- %.4f perplexity %.2f (per token %.3f)\n",
              r->acc, r->acc_stderr, r->perplexity, r->token_perplexity);
  // Exact greedy recall of a word is ~0 by chance; in-domain the model gets many.
  EXPECT_GT(r->acc, 0.1);
}

TEST(Stories260KTasksTest, FastPathMatchesReferenceWithTheRealTokenizer) {
  SKIP_WITHOUT_SHARED();
  auto m = LoadModelAndTokenizer(kModel);
  ASSERT_TRUE(m.ok()) << m.status();
  for (const std::string name : {"arc_easy", "winogrande"}) {
    auto task = LoadTaskFile(kTasks + "/" + name + ".jsonl", 8);
    ASSERT_TRUE(task.ok()) << task.status();
    for (const TaskExample& ex : task->examples) {
      std::vector<EncodedCandidate> enc;
      for (const auto& [ctx, cont] : ex.candidates) enc.push_back(*EncodeCandidate(*m->tokenizer, ctx, cont, true));
      auto fast = ScoreCandidates(m->model, enc, TaskOptions{});
      auto ref = ScoreCandidatesReference(m->model, enc, TaskOptions{});
      ASSERT_TRUE(fast.ok() && ref.ok());
      for (size_t i = 0; i < enc.size(); ++i) {
        EXPECT_NEAR((*fast)[i].logprob, (*ref)[i].logprob, 1e-3) << name;
        EXPECT_EQ((*fast)[i].greedy, (*ref)[i].greedy);
      }
    }
  }
}

TEST(Stories260KTasksTest, CostAndSelfAgreement) {
  SKIP_WITHOUT_SHARED();
  auto m = LoadModelAndTokenizer(kModel);
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelCost c = ComputeModelCost(m->model, 512);
  EXPECT_EQ(c.params_total, 260032);  // the published parameter count (README)
  EXPECT_EQ(c.params_nonzero, c.params_total);
  std::printf("stories260K cost: params %lld, bytes %lld, MACs/token at 512 %lld (linears %lld, attention %lld, "
              "head %lld), FLOPs/token %lld, prefill mean FLOPs/token %.0f\n",
              static_cast<long long>(c.params_total), static_cast<long long>(c.bytes_total),
              static_cast<long long>(c.macs_per_token), static_cast<long long>(c.macs_linears),
              static_cast<long long>(c.macs_attention), static_cast<long long>(c.macs_head),
              static_cast<long long>(c.flops_per_token), c.prefill_flops_per_token);
  if (!std::filesystem::exists(kValid)) GTEST_SKIP() << kValid << " absent";
  auto text = ReadFileToString(kValid);
  ASSERT_TRUE(text.ok());
  AgreementOptions opt;
  opt.seq_len = 256;
  opt.max_chunks = 2;
  auto a = EvaluateAgreement(m->model, m->model, *m->tokenizer, *text, opt);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->mean_kl, 0.0);
  EXPECT_EQ(a->top1_agreement, 1.0);
  EXPECT_EQ(a->positions, 2 * 127);
}

}  // namespace
}  // namespace squeeze
