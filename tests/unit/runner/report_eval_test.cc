// The evaluation stage end to end on the real stories260K model: report.json
// gains quality / cost / scores / stages, stays byte-identical across runs,
// report.md and pareto.svg sit beside it, and the measured figures (latency,
// seconds) appear only in the returned report. Plus the task sampling.
#include "workers/runner/report_eval.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/common/run_helpers.h"
#include "workers/engine/core/file_util.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using nlohmann::json;

const std::string kShared = SQUEEZE_SHARED_DIR;
const std::string kStories = kShared + "/models/stories260K/hf";
const std::string kTasks = kShared + "/data/tasks";
const std::string kValid = kShared + "/data/tinystories/valid.txt";

std::string Fresh(const std::string& name) { return test_inputs::FreshTestDir("squeeze_report_eval_test_", name); }

std::string WriteTaskFile(const std::string& name, int n) {
  const std::string path = ::testing::TempDir() + "/" + name + ".jsonl";
  std::ofstream out(path);
  for (int i = 0; i < n; ++i) {
    out << json{{"query", "Q" + std::to_string(i) + ":"}, {"choices", {"yes", "no"}}, {"gold", i % 2}}.dump() << "\n";
  }
  return path;
}

TEST(ReportTasksTest, SeededSampleIsRecordedAndRepeatable) {
  const std::string path = WriteTaskFile("sample_task", 50);
  ReportOptions o;
  o.task_paths = {path};
  o.task_limit = 10;
  o.task_seed = 7;
  auto a = LoadReportTasks(o);
  auto b = LoadReportTasks(o);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ((*a)[0].indices.size(), 10u);
  EXPECT_EQ((*a)[0].indices, (*b)[0].indices);
  EXPECT_TRUE(std::is_sorted((*a)[0].indices.begin(), (*a)[0].indices.end()));
  EXPECT_EQ(std::adjacent_find((*a)[0].indices.begin(), (*a)[0].indices.end()), (*a)[0].indices.end());
  // The kept examples are those indices (gold = index % 2).
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ((*a)[0].task.examples[i].gold, (*a)[0].indices[i] % 2);
  o.task_seed = 8;
  auto c = LoadReportTasks(o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE((*a)[0].indices, (*c)[0].indices);
  // Without a seed: the first task_limit examples, no indices recorded.
  o.task_seed.reset();
  auto d = LoadReportTasks(o);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE((*d)[0].indices.empty());
  EXPECT_EQ((*d)[0].task.examples.size(), 10u);
  // A missing file fails naming it.
  o.task_paths = {"/nonexistent/x.jsonl"};
  auto e = LoadReportTasks(o);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), HasSubstr("/nonexistent/x.jsonl"));
}

TEST(ReportEvalTest, Stories260KMagnitudeJobReport) {
  if (!fs::exists(kStories) || !fs::exists(kTasks + "/piqa.jsonl") || !fs::exists(kValid)) {
    GTEST_SKIP() << "needs " << kStories << " and " << kShared << "/data (tasks, tinystories)";
  }
  auto recipe = ParseRecipe("s:\n  p_modifiers:\n    MagnitudePruningModifier: {sparsity: 0.5}\n");
  ASSERT_TRUE(recipe.ok());
  RunOptions o;
  o.model_path = kStories;
  o.eval_text_path = kValid;
  o.eval_max_bytes = 4000;
  o.eval_seq_len = 128;
  o.report.task_paths = {kTasks + "/piqa.jsonl", kTasks + "/lambada_openai.jsonl"};
  o.report.task_limit = 12;
  o.report.task_seed = 1;
  o.report.agreement_max_chunks = 4;
  o.report.latency_options.batch_sizes = {1, 2};
  o.report.latency_options.prompt_len = 16;
  o.report.latency_options.decode_tokens = 8;
  o.report.latency_options.repetitions = 2;
  NullProgressSink null;
  std::map<std::string, std::string> files[2];
  json measured;
  for (int run = 0; run < 2; ++run) {
    o.output_dir = Fresh(absl::StrCat("magnitude", run));
    RunControl control;
    auto r = RunRecipe(*recipe, o, null, control);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const char* f : {"report.json", "report.md", "pareto.svg", "model.safetensors"}) {
      auto c = ReadFileToString(o.output_dir + "/" + f);
      ASSERT_TRUE(c.ok()) << f;
      files[run][f] = *c;
    }
    measured = r->report;
  }
  for (const auto& [f, c] : files[0]) EXPECT_EQ(c, files[1][f]) << f << " differs between identical runs";

  const json rep = json::parse(files[0]["report.json"]);
  for (const char* k : {"quality", "cost", "scores", "stages"}) EXPECT_TRUE(rep.contains(k)) << k;
  // Quality: perplexities agree with the runner's own before/after.
  EXPECT_EQ(rep["quality"]["perplexity"]["dense"], rep["perplexity"]["before"]);
  EXPECT_EQ(rep["quality"]["perplexity"]["compressed"], rep["perplexity"]["after"]);
  EXPECT_GT(rep["quality"]["perplexity"]["compressed"].get<double>(), rep["quality"]["perplexity"]["dense"].get<double>());
  const json& piqa = rep["quality"]["tasks"]["piqa"];
  EXPECT_EQ(piqa["n"], 12);
  EXPECT_EQ(piqa["examples"].size(), 12u);
  for (const char* side : {"dense", "compressed"}) {
    const double acc = piqa[side]["acc"].get<double>();
    EXPECT_GE(acc, 0.0);
    EXPECT_LE(acc, 1.0);
    // acc is k/12.
    EXPECT_NEAR(acc * 12, std::round(acc * 12), 1e-9);
  }
  EXPECT_EQ(rep["quality"]["tasks"]["lambada_openai"]["format"], "language_modeling");
  const json& ag = rep["quality"]["agreement"];
  ASSERT_TRUE(ag.is_object());
  EXPECT_GT(ag["mean_kl"].get<double>(), 0.0);  // 50% magnitude pruning changes the model
  EXPECT_GT(ag["top1_agreement"].get<double>(), 0.0);
  EXPECT_LT(ag["top1_agreement"].get<double>(), 1.0);
  // Cost: magnitude pruning halves the non-zero linear weights; its storage is
  // a sparse kind (never larger than dense).
  const json& cd = rep["cost"]["dense"];
  const json& cc = rep["cost"]["compressed"];
  EXPECT_LE(cc["bytes_in_memory"].get<int64_t>(), cd["bytes_in_memory"].get<int64_t>());
  // Unstructured pruning is stored as sparse_bitmask (the default), whose
  // kernel expands values into place and runs full width: its kernel FLOPs do
  // not drop, only the ideal ones (N:M and low-rank kinds do cut kernel FLOPs;
  // see CostTest).
  EXPECT_EQ(cc["flops_per_token"].get<int64_t>(), cd["flops_per_token"].get<int64_t>());
  EXPECT_LE(cc["ideal_flops_per_token"].get<int64_t>(), cc["flops_per_token"].get<int64_t>());
  EXPECT_LT(cc["ideal_flops_per_token"].get<int64_t>(), cd["ideal_flops_per_token"].get<int64_t>());
  EXPECT_EQ(rep["cost"]["context_len"], 128);
  // Scores.
  const json& sc = rep["scores"];
  EXPECT_DOUBLE_EQ(sc["compression_ratio"].get<double>(),
                   cd["bytes_in_memory"].get<double>() / cc["bytes_in_memory"].get<double>());
  EXPECT_DOUBLE_EQ(sc["param_ratio"].get<double>(),
                   cd["params_nonzero"].get<double>() / cc["params_nonzero"].get<double>());
  EXPECT_GT(sc["param_ratio"].get<double>(), 1.3);
  const json& ts = sc["task_scores"];
  EXPECT_DOUBLE_EQ(ts["dense"]["piqa"].get<double>(), 100 * piqa["dense"]["acc_norm"].get<double>());
  EXPECT_DOUBLE_EQ(ts["dense"]["eval_text"].get<double>(),
                   100 * std::exp(-rep["quality"]["perplexity"]["nll_per_token_dense"].get<double>()));
  // ELUE with the dense model as the only reference = mean score difference.
  double diff = 0;
  for (const auto& [task, v] : ts["compressed"].items()) diff += v.get<double>() - ts["dense"][task].get<double>();
  EXPECT_NEAR(sc["elue"]["score"].get<double>(), diff / ts["compressed"].size(), 1e-9);
  EXPECT_TRUE(sc["pareto"]["bytes"].is_array());
  // Measured figures: only in the returned report.
  EXPECT_FALSE(rep["cost"].contains("latency"));
  EXPECT_FALSE(rep["scores"].contains("hulk"));
  ASSERT_TRUE(measured["cost"].contains("latency"));
  const json& lat = measured["cost"]["latency"];
  ASSERT_EQ(lat["dense"]["points"].size(), 2u);
  EXPECT_EQ(lat["dense"]["points"][1]["batch"], 2);
  EXPECT_EQ(lat["dense"]["points"][1]["batched"], true);  // one ForwardBatch per step
  EXPECT_GT(lat["compressed"]["points"][0]["decode_tokens_per_s"].get<double>(), 0);
  EXPECT_TRUE(measured["stages"][0].contains("wall_s"));
  EXPECT_GE(measured["scores"]["hulk"]["compression_wall_s"].get<double>(), 0);
  // The rendered files.
  EXPECT_THAT(files[0]["report.md"], HasSubstr("## Quality"));
  EXPECT_THAT(files[0]["report.md"], HasSubstr("piqa acc_norm (n=12, sampled)"));
  EXPECT_THAT(files[0]["pareto.svg"], HasSubstr("data-name=\"compressed\""));
  EXPECT_EQ(files[0]["pareto.svg"].find("data-panel=\"latency\""), std::string::npos);  // not measured in the artifact
}

}  // namespace
}  // namespace squeeze
