// The store-wide Pareto front (workers/runner/report_front.h) on hand-made
// reports whose answer is known by construction: comparability rules
// (another dense point, another task subset, another eval text), missing
// latency, ELUE against the other variants, and the Markdown / SVG inputs.
#include "workers/runner/report_front.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace squeeze {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using nlohmann::json;

// A report as report_eval.cc writes it (only the keys the front reads).
json Report(double dense_bytes, double dense_flops, double bytes, double flops, double piqa, double latency_ms,
            const std::string& subset = "s1", double dense_piqa = 50, double eval_text = 0) {
  json r;
  r["cost"]["dense"] = {{"bytes_in_memory", dense_bytes}, {"flops_per_token", dense_flops}};
  r["cost"]["compressed"] = {{"bytes_in_memory", bytes}, {"flops_per_token", flops}};
  if (latency_ms > 0) {
    r["cost"]["latency"]["dense"]["points"] = json::array({json{{"decode_ms_per_token_p50", 0.05}}});
    r["cost"]["latency"]["compressed"]["points"] = json::array({json{{"decode_ms_per_token_p50", latency_ms}}});
  }
  r["scores"]["task_scores"]["dense"] = {{"piqa", dense_piqa}};
  r["scores"]["task_scores"]["compressed"] = {{"piqa", piqa}};
  if (eval_text > 0) {
    r["scores"]["task_scores"]["dense"]["eval_text"] = 25.0;
    r["scores"]["task_scores"]["compressed"]["eval_text"] = eval_text;
    r["quality"]["perplexity"] = {{"seq_len", 256}, {"tokens", 1000}};
  }
  r["quality"]["tasks"]["piqa"] = {{"format", "multiple_choice"}, {"n", 20}, {"examples", json::array({1, 5, 9})}};
  r["quality"]["task_samples"]["piqa"] = {{"subset_sha256", subset}};
  r["stages"] = json::array({json{{"name", "s"}, {"modifiers", json::array({"MagnitudePruningModifier"})}}});
  return r;
}

std::vector<std::string> Names(const json& a) { return a.get<std::vector<std::string>>(); }

TEST(StoreFront, ThreeVariantsOfOneModel) {
  const std::vector<StoredJobReport> jobs = {
      {"j-rtn", "e", Report(1000, 200, 250, 200, 48, 0.08)},    // 4x smaller, a bit worse
      {"j-mag", "e", Report(1000, 200, 1000, 200, 40, 0.04)},   // same bytes, worse: dominated on bytes
      {"j-w8", "e", Report(1000, 200, 500, 200, 49, 0)},        // no latency measured
  };
  absl::StatusOr<json> f = StoreParetoJson("abc", jobs, 0);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)["anchor_job"], "j-rtn");
  EXPECT_THAT(Names((*f)["quality_tasks"]), ElementsAre("piqa"));
  ASSERT_EQ((*f)["variants"].size(), 4u);
  EXPECT_EQ((*f)["variants"][0]["name"], "dense");
  EXPECT_EQ((*f)["variants"][1]["name"], "j-rtn");
  EXPECT_EQ((*f)["variants"][1]["recipe"], "MagnitudePruningModifier");
  const json& fr = (*f)["fronts"];
  EXPECT_THAT(Names(fr["bytes"]["optimal"]), ElementsAre("j-rtn", "j-w8", "dense"));
  EXPECT_THAT(Names(fr["bytes"]["dominated"]), ElementsAre("j-mag"));
  // Equal FLOPs everywhere: only the best quality (dense, 50) is optimal.
  EXPECT_THAT(Names(fr["flops"]["optimal"]), ElementsAre("dense"));
  // Latency: j-w8 has none; j-mag (0.04 ms, 40) is faster than dense (0.05, 50).
  EXPECT_THAT(Names(fr["latency"]["unmeasured"]), ElementsAre("j-w8"));
  EXPECT_THAT(Names(fr["latency"]["optimal"]), ElementsAre("j-mag", "dense"));
  EXPECT_THAT(Names(fr["latency"]["dominated"]), ElementsAre("j-rtn"));
  EXPECT_TRUE((*f)["variants"][3]["latency_ms"].is_null());
  EXPECT_THAT((*f)["excluded"], IsEmpty());
}

TEST(StoreFront, ElueBaselineUsesTheOtherVariantsOfTheStore) {
  // FLOPs differ so the baseline curve is not flat: dense (200, 50), j-b (100, 30).
  const std::vector<StoredJobReport> jobs = {{"j-a", "", Report(1000, 200, 500, 150, 45, 0)},
                                             {"j-b", "", Report(1000, 200, 400, 100, 30, 0)}};
  absl::StatusOr<json> f = StoreParetoJson("abc", jobs, 0);
  ASSERT_TRUE(f.ok()) << f.status();
  const json& a = (*f)["variants"][1];
  ASSERT_EQ(a["name"], "j-a");
  // Baseline at 150 FLOPs between (100, 30) and (200, 50) = 40; 45 - 40 = +5.
  EXPECT_DOUBLE_EQ(a["elue"]["baseline"]["piqa"].get<double>(), 40);
  EXPECT_DOUBLE_EQ(a["elue"]["score"].get<double>(), 5);
  EXPECT_THAT(Names(a["elue"]["references"]), ElementsAre("dense", "j-b"));
  // The dense point has no ELUE score (it is the reference).
  EXPECT_TRUE((*f)["variants"][0]["elue"].is_null());
}

TEST(StoreFront, OtherModelsAndOtherSubsetsAreNotCompared) {
  const std::vector<StoredJobReport> jobs = {
      {"j-1", "e", Report(1000, 200, 250, 200, 48, 0, "s1", 50, 20)},
      {"j-ctx", "e", Report(1000, 300, 250, 300, 48, 0)},             // FLOPs at another context
      {"j-sub", "e", Report(1000, 200, 500, 200, 47, 0, "s2", 50, 21)},  // other piqa examples
      {"j-txt", "other", Report(1000, 200, 600, 200, 46, 0, "s1", 50, 22)},  // other eval text
      {"j-dense", "e", Report(1000, 200, 700, 200, 45, 0, "s1", 51)},  // same ids, other dense score
  };
  absl::StatusOr<json> f = StoreParetoJson("abc", jobs, 0);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)["excluded"].size(), 1u);
  EXPECT_EQ((*f)["excluded"][0]["job_id"], "j-ctx");
  EXPECT_THAT((*f)["excluded"][0]["reason"].get<std::string>(), HasSubstr("dense point"));
  std::vector<std::string> dropped;
  for (const json& d : (*f)["dropped_scores"]) dropped.push_back(d["job_id"].get<std::string>() + "/" +
                                                                 d["task"].get<std::string>());
  EXPECT_THAT(dropped, ElementsAre("j-sub/piqa", "j-txt/eval_text", "j-dense/piqa"));
  // No task is common to every variant now (j-sub lacks piqa, j-dense eval_text): no fronts.
  EXPECT_THAT(Names((*f)["quality_tasks"]), IsEmpty());
  EXPECT_TRUE((*f)["fronts"].is_null());
  EXPECT_THAT((*f)["note"].get<std::string>(), HasSubstr("no quality figure common"));
}

TEST(StoreFront, BadInputsAreRefusedOrExcluded) {
  EXPECT_FALSE(StoreParetoJson("abc", {}, 0).ok());
  EXPECT_FALSE(StoreParetoJson("abc", {{"j", "", Report(1, 1, 1, 1, 1, 0)}}, 1).ok());
  // The anchor without a cost section: an error naming the job.
  absl::StatusOr<json> bad = StoreParetoJson("abc", {{"j-old", "", json::object()}}, 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("j-old"));
  // Another job without one: excluded, the rest still compared.
  absl::StatusOr<json> f =
      StoreParetoJson("abc", {{"j", "", Report(1000, 200, 250, 200, 48, 0)}, {"j-old", "", json::object()}}, 0);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ((*f)["excluded"].size(), 1u);
  EXPECT_EQ((*f)["excluded"][0]["job_id"], "j-old");
}

TEST(StoreFront, VariantsAndMarkdownForRendering) {
  const std::vector<StoredJobReport> jobs = {{"j-rtn", "", Report(1000, 200, 250, 200, 48, 0.08)},
                                             {"j-mag", "", Report(1000, 200, 1000, 200, 40, 0.04)}};
  absl::StatusOr<json> f = StoreParetoJson("0123456789abcdef", jobs, 1);  // anchor: j-mag
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)["variants"][1]["name"], "j-mag");
  const std::vector<VariantPoint> v = StoreFrontVariants(*f);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[2].name, "j-rtn");
  EXPECT_DOUBLE_EQ(v[2].bytes, 250);
  EXPECT_DOUBLE_EQ(v[2].latency_ms, 0.08);
  EXPECT_DOUBLE_EQ(v[2].scores.at("piqa"), 48);
  const std::string md = RenderStoreFrontMarkdown(*f, "store.svg");
  EXPECT_THAT(md, HasSubstr("model 0123456789ab, 3 variants"));
  EXPECT_THAT(md, HasSubstr("| j-rtn | MagnitudePruningModifier | 250 | 200 | 0.0800 | 48.000 | B |"));
  EXPECT_THAT(md, HasSubstr("| dense |  | 1000 | 200 | 0.0500 | 50.000 | BFL |"));
  EXPECT_THAT(md, HasSubstr("![Store-wide Pareto plot](store.svg)"));
}

}  // namespace
}  // namespace squeeze
