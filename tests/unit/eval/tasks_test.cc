// Zero-shot task scoring (lm-eval style) on a synthetic model with hand-made
// tasks: acc / acc_norm / greedy against a direct full forward per candidate.
#include "workers/engine/eval/tasks.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/common/synthetic_inputs.h"
#include "tests/unit/eval/byte_tokenizer.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

ModelConfig ByteModelConfig() {
  return test_inputs::SmallGqaConfig(/*hidden_dim=*/48, /*n_layers=*/2, /*vocab_size=*/259, /*max_seq_len=*/64,
                                     /*tied=*/true);
}

// Log-likelihood of `cont` after `ctx` (both byte strings) by one plain forward
// of [BOS] + ctx + cont[:-1], log-softmax in double via Eigen.
double DirectLogLik(const Model& m, const std::string& ctx, const std::string& cont, bool* greedy = nullptr) {
  testing::ByteTokenizer tok;
  std::vector<int> input = tok.Encode(ctx, true);
  const std::vector<int> c = tok.Encode(cont, false);
  input.insert(input.end(), c.begin(), c.end() - 1);
  KVCache cache(m, 0);
  MatrixRM logits;
  EXPECT_TRUE(Forward(m, input, 0, cache, logits).ok());
  double ll = 0;
  bool all = true;
  for (size_t j = 0; j < c.size(); ++j) {
    const int64_t row = static_cast<int64_t>(input.size() - c.size() + j);
    const Eigen::ArrayXd r = logits.row(row).transpose().cast<double>().array();
    Eigen::Index arg;
    r.maxCoeff(&arg);
    all = all && arg == c[j];
    ll += r(c[j]) - (r.maxCoeff() + std::log((r - r.maxCoeff()).exp().sum()));
  }
  if (greedy) *greedy = all;
  return ll;
}

TEST(TasksTest, EncodeCandidateSplitsLikeLmEval) {
  testing::ByteTokenizer tok;
  auto e = EncodeCandidate(tok, "ab ", "c", true);  // trailing space moves to the continuation
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->context, (std::vector<int>{1, 'a' + 3, 'b' + 3}));
  EXPECT_EQ(e->continuation, (std::vector<int>{' ' + 3, 'c' + 3}));
  auto no_bos = EncodeCandidate(tok, "ab", " c", false);
  ASSERT_TRUE(no_bos.ok());
  EXPECT_EQ(no_bos->context, (std::vector<int>{'a' + 3, 'b' + 3}));
  auto empty_ctx = EncodeCandidate(tok, "", "xy", false);  // lm-eval: [EOT] + encode(continuation)
  ASSERT_TRUE(empty_ctx.ok());
  EXPECT_EQ(empty_ctx->context, (std::vector<int>{2}));
  EXPECT_EQ(empty_ctx->continuation.size(), 2u);
  EXPECT_FALSE(EncodeCandidate(tok, "ab", "", true).ok());
  EXPECT_EQ(Utf8Chars("h\xc3\xa9llo"), 5);  // "héllo": 6 bytes, 5 characters
}

TEST(TasksTest, MultipleChoiceAccAndAccNormMatchDirectArgmax) {
  const Model m = MakeRandomModel(ByteModelConfig(), 11);
  testing::ByteTokenizer tok;
  Task task;
  task.name = "hand_made";
  const std::vector<std::pair<std::string, std::vector<std::string>>> items = {
      {"Question: what is red?", {"apple", "the sky at noon", "grass", "caf\xc3\xa9 \xc3\xa9\xc3\xa9"}},
      {"The cat sat on the", {"mat", "moon", "a very long and unlikely answer"}},
      {"One two three", {"four", "five six", "x"}},
      {"Colours:", {"blue", "green", "\xe2\x82\xac\xe2\x82\xac"}},
  };
  int gold = 0;
  for (const auto& [q, choices] : items) {
    TaskExample ex;
    for (const std::string& c : choices) {
      ex.candidates.emplace_back(q, " " + c);
      ex.norm_chars.push_back(Utf8Chars(c));
    }
    ex.gold = gold++ % static_cast<int>(choices.size());
    task.examples.push_back(ex);
  }
  TaskOptions opt;
  int64_t progress = 0;
  opt.progress = [&](int64_t d, int64_t) { progress = d; };
  auto r = EvaluateTask(m, tok, task, opt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(progress, 4);
  ASSERT_EQ(r->n, 4);
  double hits = 0, hits_norm = 0;
  bool norm_differs = false;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& [q, choices] = items[i];
    int best = 0, best_norm = 0;
    std::vector<double> ll;
    for (const std::string& c : choices) ll.push_back(DirectLogLik(m, q, " " + c));
    for (size_t k = 1; k < ll.size(); ++k) {
      if (ll[k] > ll[best]) best = static_cast<int>(k);
      // acc_norm divides by characters, not bytes (the non-ASCII choices differ).
      if (ll[k] / Utf8Chars(choices[k]) > ll[best_norm] / Utf8Chars(choices[best_norm])) best_norm = static_cast<int>(k);
    }
    EXPECT_EQ(r->predictions[i], best) << "example " << i;
    EXPECT_EQ(r->norm_predictions[i], best_norm) << "example " << i;
    norm_differs = norm_differs || best != best_norm;
    hits += best == task.examples[i].gold;
    hits_norm += best_norm == task.examples[i].gold;
  }
  EXPECT_DOUBLE_EQ(r->acc, hits / 4);
  EXPECT_DOUBLE_EQ(r->acc_norm, hits_norm / 4);
  const double p = hits / 4;
  EXPECT_NEAR(r->acc_stderr, std::sqrt(p * (1 - p) * 4 / 3) / 2, 1e-12);  // sample std / sqrt(n)
  std::printf("hand-made MC: acc %.2f acc_norm %.2f (acc and acc_norm choices differ somewhere: %d)\n", r->acc,
              r->acc_norm, norm_differs);
}

TEST(TasksTest, AccNormDividesByCharacters) {
  // A model whose logits are all 0 gives every byte log(1/259): acc prefers
  // the fewest tokens, acc_norm the smallest tokens/characters = (chars+1)/chars
  // (the delimiter is a token but not a counted character), the longest choice.
  Model m = MakeRandomModel(ByteModelConfig(), 12);
  m.embedding.setZero();
  testing::ByteTokenizer tok;
  Task task;
  task.name = "uniform";
  TaskExample ex;
  for (const std::string c : {"long answer", "ab", "abcd"}) {
    ex.candidates.emplace_back("ctx", " " + c);
    ex.norm_chars.push_back(Utf8Chars(c));
  }
  ex.gold = 1;
  task.examples.push_back(ex);
  auto r = EvaluateTask(m, tok, task, TaskOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->predictions[0], 1);  // fewest tokens
  EXPECT_EQ(r->norm_predictions[0], 0);
  EXPECT_EQ(r->acc, 1.0);
  EXPECT_EQ(r->acc_norm, 0.0);
}

TEST(TasksTest, FastPathMatchesReferenceIncludingTruncationAndSchema) {
  const Model m = MakeRandomModel(ByteModelConfig(), 13);
  testing::ByteTokenizer tok;
  std::vector<EncodedCandidate> cands;
  for (const auto& [ctx, cont] : std::vector<std::pair<std::string, std::string>>{
           {"shared context here", " first"}, {"shared context here", " second one"},
           {"shared context here", " x"},                                    // 1-token continuation
           {"The trophy did not fit because the trophy", " was too big."},  // schema: shared prefix
           {"The trophy did not fit because the case", " was too big."},
           {"a much longer context that will not fit into sixteen tokens at all", " tail"}}) {
    auto e = EncodeCandidate(tok, ctx, cont, true);
    ASSERT_TRUE(e.ok());
    cands.push_back(*e);
  }
  for (int seq_len : {0, 16}) {
    TaskOptions opt;
    opt.seq_len = seq_len;
    auto fast = ScoreCandidates(m, cands, opt);
    auto ref = ScoreCandidatesReference(m, cands, opt);
    ASSERT_TRUE(fast.ok()) << fast.status();
    ASSERT_TRUE(ref.ok()) << ref.status();
    for (size_t i = 0; i < cands.size(); ++i) {
      EXPECT_NEAR((*fast)[i].logprob, (*ref)[i].logprob, 1e-4) << "candidate " << i << " seq_len " << seq_len;
      EXPECT_EQ((*fast)[i].tokens, (*ref)[i].tokens);
      EXPECT_EQ((*fast)[i].greedy, (*ref)[i].greedy);
    }
  }
  // Without truncation the reference equals the direct computation.
  EXPECT_NEAR((*ScoreCandidatesReference(m, {cands[0]}, TaskOptions{}))[0].logprob,
              DirectLogLik(m, "shared context here", " first"), 1e-4);
  // Truncation really cut the long context (it changes the score).
  TaskOptions short_opt;
  short_opt.seq_len = 16;
  EXPECT_GT(std::abs((*ScoreCandidates(m, {cands[5]}, short_opt))[0].logprob -
                     (*ScoreCandidates(m, {cands[5]}, TaskOptions{}))[0].logprob),
            1e-6);
  // A continuation longer than the context length is an error, not a crash.
  TaskOptions tiny;
  tiny.seq_len = 3;
  EXPECT_EQ(ScoreCandidates(m, {cands[1]}, tiny).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TasksTest, LambadaGreedyAccuracyAndPerplexity) {
  const Model m = MakeRandomModel(ByteModelConfig(), 14);
  testing::ByteTokenizer tok;
  // Find the model's greedy 3-byte continuation of a context (byte ids only).
  std::string ctx, greedy_cont;
  for (const std::string c : {"Once upon a time", "She said", "hello", "xyz", "the end", "abc"}) {
    std::vector<int> ids = tok.Encode(c, true);
    std::string out;
    bool ok = true;
    for (int step = 0; step < 3 && ok; ++step) {
      KVCache cache(m, 0);
      MatrixRM logits;
      ASSERT_TRUE(Forward(m, ids, 0, cache, logits, false).ok());
      Eigen::Index arg;
      logits.row(0).maxCoeff(&arg);
      ok = arg >= 3;
      ids.push_back(static_cast<int>(arg));
      out += static_cast<char>(arg - 3);
    }
    if (ok) {
      ctx = c;
      greedy_cont = out;
      break;
    }
  }
  ASSERT_FALSE(ctx.empty()) << "no context with a byte-only greedy continuation";
  std::string wrong = greedy_cont;
  wrong[2] = wrong[2] == 'q' ? 'z' : 'q';
  Task task;
  task.name = "lambada_hand";
  task.format = TaskFormat::kLanguageModeling;
  for (const std::string& cont : {greedy_cont, wrong}) {
    TaskExample ex;
    ex.candidates.emplace_back(ctx, cont);  // no delimiter: the greedy bytes follow ctx directly
    ex.norm_chars.push_back(Utf8Chars(cont));
    task.examples.push_back(ex);
  }
  auto r = EvaluateTask(m, tok, task, TaskOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->predictions, (std::vector<int>{1, 0}));
  EXPECT_DOUBLE_EQ(r->acc, 0.5);
  bool g0 = false, g1 = true;
  const double ll0 = DirectLogLik(m, ctx, greedy_cont, &g0), ll1 = DirectLogLik(m, ctx, wrong, &g1);
  EXPECT_TRUE(g0);
  EXPECT_FALSE(g1);
  EXPECT_NEAR(r->perplexity, std::exp(-(ll0 + ll1) / 2), 1e-3 * r->perplexity);
  EXPECT_NEAR(r->token_perplexity, std::exp(-(ll0 + ll1) / 6), 1e-3 * r->token_perplexity);  // 3 tokens each
}

TEST(TasksTest, LoadsTheThreeFileShapesAndNamesBadLines) {
  const std::string dir = ::testing::TempDir();
  auto write = [&](const std::string& name, const std::string& body) {
    std::ofstream(dir + "/" + name) << body;
    return dir + "/" + name;
  };
  auto mc = LoadTaskFile(write("mc.jsonl", R"({"query": "Q?", "choices": ["a", "bb"], "gold": 1})"
                                           "\n\n"
                                           R"({"query": "R?", "choices": ["c", "d", "e"], "gold": 0})"
                                           "\n"));
  ASSERT_TRUE(mc.ok()) << mc.status();
  EXPECT_EQ(mc->name, "mc");
  EXPECT_EQ(mc->format, TaskFormat::kMultipleChoice);
  ASSERT_EQ(mc->examples.size(), 2u);
  EXPECT_EQ(mc->examples[0].candidates[1], (std::pair<std::string, std::string>{"Q?", " bb"}));
  EXPECT_EQ(mc->examples[0].norm_chars, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(LoadTaskFile(dir + "/mc.jsonl", 1)->examples.size(), 1u);
  auto schema = LoadTaskFile(write(
      "wino.jsonl", R"({"context_options": ["A so A", "A so B"], "continuation": "went home.", "gold": 1})"));
  ASSERT_TRUE(schema.ok());
  EXPECT_EQ(schema->format, TaskFormat::kSchema);
  EXPECT_EQ(schema->examples[0].candidates[1], (std::pair<std::string, std::string>{"A so B", " went home."}));
  auto lm = LoadTaskFile(write("lam.jsonl", R"({"context": "he said", "continuation": "hello"})"));
  ASSERT_TRUE(lm.ok());
  EXPECT_EQ(lm->format, TaskFormat::kLanguageModeling);
  for (const auto& [name, body, needle] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"bad_gold.jsonl", R"({"query": "Q", "choices": ["a"], "gold": 3})", "bad_gold.jsonl:1"},
           {"bad_json.jsonl", "{\"query\": \"Q\",\n", "bad_json.jsonl:1"},
           {"mixed.jsonl", "{\"context\": \"a\", \"continuation\": \"b\"}\n{\"query\": \"Q\", \"choices\": [\"a\"], \"gold\": 0}",
            "mixed.jsonl:2"},
           {"no_query.jsonl", R"({"choices": ["a"], "gold": 0})", "\"query\""},
           {"empty.jsonl", "\n", "no examples"}}) {
    auto r = LoadTaskFile(write(name, body));
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_NE(std::string(r.status().message()).find(needle), std::string::npos) << r.status();
  }
  EXPECT_FALSE(LoadTaskFile(dir + "/does_not_exist.jsonl").ok());
}

}  // namespace
}  // namespace squeeze
