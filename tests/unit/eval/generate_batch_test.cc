// GenerateBatch (several prompts, one ForwardBatch per step) against its
// reference, Generate run on each prompt alone: greedy and seeded sampling,
// sequences that stop at different steps (context full, EOS), bad input; and
// on the real stories260K model.
#include "workers/engine/eval/generate_batch.h"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/eval/byte_tokenizer.h"
#include "tests/unit/eval/eval_test_models.h"
#include "workers/engine/eval/loaded_model.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

using ::testing::HasSubstr;

ModelConfig Config() { return testing::ByteGenerateConfig(false); }

// Every prompt's batched result equals Generate's on that prompt alone.
void ExpectSameAsGenerate(const Model& m, const Tokenizer& tok, const std::vector<std::vector<int>>& prompts,
                          const GenerateOptions& opt) {
  auto batch = GenerateBatch(m, tok, prompts, opt);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->size(), prompts.size());
  for (size_t b = 0; b < prompts.size(); ++b) {
    auto one = Generate(m, tok, prompts[b], opt, nullptr);
    ASSERT_TRUE(one.ok()) << one.status();
    EXPECT_EQ((*batch)[b].ids, one->ids) << "prompt " << b;
    EXPECT_EQ((*batch)[b].text, one->text) << "prompt " << b;
    EXPECT_EQ((*batch)[b].stop_reason, one->stop_reason) << "prompt " << b;
    EXPECT_EQ((*batch)[b].prompt_ids, prompts[b]);
  }
}

TEST(GenerateBatchTest, MatchesGeneratePerPromptGreedyAndSampled) {
  const Model m = MakeRandomModel(Config(), 6);
  testing::ByteTokenizer tok;
  // Unequal prompts: the long ones fill the 40-token context first.
  const std::vector<std::vector<int>> prompts = {tok.Encode("a", true), tok.Encode("hello there, batch", true),
                                                 tok.Encode("", true), tok.Encode("0123456789012345678901234", true)};
  GenerateOptions opt;
  opt.max_tokens = 30;
  opt.stop_at_eos = false;
  ExpectSameAsGenerate(m, tok, prompts, opt);
  auto r = GenerateBatch(m, tok, prompts, opt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].stop_reason, "max_tokens");
  EXPECT_EQ((*r)[0].ids.size(), 30u);
  // 26 prompt tokens + 14 fed back = 40 positions, plus the last token
  // sampled (never fed): 15 ids.
  EXPECT_EQ((*r)[3].stop_reason, "context_full");
  EXPECT_EQ((*r)[3].ids.size(), 15u);
  opt.temperature = 0.9f;
  opt.top_p = 0.9f;
  opt.seed = 77;
  ExpectSameAsGenerate(m, tok, prompts, opt);
  opt.max_tokens = 0;
  ExpectSameAsGenerate(m, tok, prompts, opt);
}

TEST(GenerateBatchTest, RejectsBadInputNamingThePrompt) {
  const Model m = MakeRandomModel(Config(), 6);
  testing::ByteTokenizer tok;
  GenerateOptions opt;
  EXPECT_THAT(GenerateBatch(m, tok, {}, opt).status().message(), HasSubstr("no prompts"));
  EXPECT_THAT(GenerateBatch(m, tok, {{1, 5}, {}}, opt).status().message(), HasSubstr("prompt 1 has no tokens"));
  EXPECT_THAT(GenerateBatch(m, tok, {{1}, std::vector<int>(40, 5)}, opt).status().message(),
              HasSubstr("prompt 1 has 40 tokens"));
  opt.top_p = 0;
  EXPECT_THAT(GenerateBatch(m, tok, {{1}}, opt).status().message(), HasSubstr("top_p"));
}

TEST(GenerateBatchTest, Stories260KMatchesGeneratePerPrompt) {
  const std::string dir = std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K";
  if (!std::filesystem::exists(dir + "/stories260K.bin")) {
    GTEST_SKIP() << "stories260K not found at " << dir << " (../shared is absent)";
  }
  auto lm = LoadModelAndTokenizer(dir + "/stories260K.bin");
  ASSERT_TRUE(lm.ok()) << lm.status();
  const Tokenizer& tok = *lm->tokenizer;
  std::vector<std::vector<int>> prompts;
  for (const char* text : {"Once upon a time", "The dog", "Lily and her mom went to the park. They saw a big",
                           "One day"}) {
    prompts.push_back(tok.Encode(text, true));
  }
  prompts.push_back({tok.bos_id()});
  GenerateOptions opt;
  opt.max_tokens = 48;
  ExpectSameAsGenerate(lm->model, tok, prompts, opt);
  opt.temperature = 0.8f;
  opt.top_p = 0.95f;
  opt.seed = 3;
  ExpectSameAsGenerate(lm->model, tok, prompts, opt);
}

}  // namespace
}  // namespace squeeze
