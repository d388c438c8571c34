// LAMBADA-style cloze tasks built from plain text (tasks.h BuildClozeTask),
// resolved by name (task_files.h "tinystories_cloze"), and scored on the real
// stories260K model (skips when ../shared is absent).
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "workers/engine/eval/loaded_model.h"
#include "workers/engine/eval/task_files.h"
#include "workers/engine/eval/tasks.h"

namespace squeeze {
namespace {

using ::testing::HasSubstr;

TEST(ClozeTaskTest, LastWordOfEachStoryIsTheContinuation) {
  const std::string text =
      "Once upon a time there was a big red dog named Max who liked to run.\n"
      "He ran to the park every day and played with the ball.\n"
      "<|endoftext|>\n"
      "Lily had a small cat. The cat liked milk and she gave it a bowl of warm milk.\"\n"
      "  <|endoftext|>  \n"
      "Too short a story here.\n"
      "<|endoftext|>\n"
      "Tom said to his mom that he wanted to play outside, and she said \"Yes!\"\n"
      "<|endoftext|>\n"
      "The little bird sang a happy song in the tall green tree all day long";
  auto t = BuildClozeTask(text, "toy_cloze");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->name, "toy_cloze");
  EXPECT_EQ(t->format, TaskFormat::kLanguageModeling);
  // Story 3 is too short (< 8 context words); story 4's last word follows a quote.
  ASSERT_EQ(t->examples.size(), 3u);
  const auto& [c0, w0] = t->examples[0].candidates[0];
  EXPECT_EQ(w0, " ball");
  EXPECT_EQ(c0,
            "Once upon a time there was a big red dog named Max who liked to run.\n"
            "He ran to the park every day and played with the");
  EXPECT_EQ(t->examples[0].norm_chars[0], 5);
  EXPECT_EQ(t->examples[1].candidates[0].second, " milk");  // `milk."` : the closing quote is not the word
  EXPECT_TRUE(absl::StartsWith(t->examples[1].candidates[0].first, "Lily had"));
  EXPECT_EQ(t->examples[2].candidates[0].second, " long");  // the last story needs no separator
  // Every example is the story's own text up to and including the word.
  EXPECT_NE(text.find(c0 + w0), std::string::npos);
  // limit keeps the first examples.
  auto head = BuildClozeTask(text, "toy_cloze", 2);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->examples.size(), 2u);
  EXPECT_THAT(BuildClozeTask("<|endoftext|>\nHi.\n", "x").status().message(), HasSubstr("no cloze examples"));
}

TEST(ClozeTaskTest, TinyStoriesClozeResolvesToTheDataLayout) {
  namespace fs = std::filesystem;
  const std::string root = ::testing::TempDir() + "/cloze_task_test";
  fs::create_directories(root + "/tasks");
  fs::create_directories(root + "/tinystories");
  std::ofstream(root + "/tasks/piqa.jsonl") << "{}\n";
  std::ofstream(root + "/tinystories/valid.txt")
      << "One day a girl named Sue found a shiny red ball in the big green park.\n<|endoftext|>\n";
  auto paths = ResolveTaskFiles("piqa,tinystories_cloze", root + "/tasks");
  ASSERT_TRUE(paths.ok()) << paths.status();
  ASSERT_EQ(paths->size(), 2u);
  EXPECT_EQ(fs::path((*paths)[1]).lexically_normal(), fs::path(root + "/tinystories/valid.txt").lexically_normal());
  auto task = LoadTaskFile((*paths)[1]);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->name, "tinystories_cloze");
  ASSERT_EQ(task->examples.size(), 1u);
  EXPECT_EQ(task->examples[0].candidates[0].second, " park");
  // Without the text file the name is an unknown task, named in the error.
  fs::remove(root + "/tinystories/valid.txt");
  EXPECT_THAT(ResolveTaskFiles("tinystories_cloze", root + "/tasks").status().message(),
              HasSubstr("tinystories/valid.txt does not exist"));
}

TEST(ClozeTaskTest, Stories260KIsWellAboveLambadaOnTinyStoriesCloze) {
  const std::string model = std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K/stories260K.bin";
  const std::string tasks = std::string(SQUEEZE_SHARED_DIR) + "/data/tasks";
  if (!std::filesystem::exists(model) || !std::filesystem::exists(tasks + "/lambada_openai.jsonl") ||
      !std::filesystem::exists(std::string(SQUEEZE_SHARED_DIR) + "/data/tinystories/valid.txt")) {
    GTEST_SKIP() << "stories260K, lambada_openai or tinystories/valid.txt not found under " << SQUEEZE_SHARED_DIR;
  }
  auto m = LoadModelAndTokenizer(model);
  ASSERT_TRUE(m.ok()) << m.status();
  auto paths = ResolveTaskFiles("tinystories_cloze,lambada_openai", tasks);
  ASSERT_TRUE(paths.ok()) << paths.status();
  double acc[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    auto task = LoadTaskFile((*paths)[i], 100);
    ASSERT_TRUE(task.ok()) << task.status();
    ASSERT_EQ(task->examples.size(), 100u);
    auto r = EvaluateTask(m->model, *m->tokenizer, *task, TaskOptions{});
    ASSERT_TRUE(r.ok()) << r.status();
    acc[i] = r->acc;
    std::printf("stories260K %-17s n=%lld acc %.4f +- %.4f perplexity %.2f (per token %.3f)\n", task->name.c_str(),
                static_cast<long long>(r->n), r->acc, r->acc_stderr, r->perplexity, r->token_perplexity);
  }
  // Greedy-exact recall of a word is ~0 by chance; in-domain stories make the
  // last word predictable, adult LAMBADA passages do not.
  EXPECT_GT(acc[0], 0.1);
  EXPECT_GT(acc[0], acc[1] + 0.05);
}

}  // namespace
}  // namespace squeeze
