// The training part of the report: the loss-curve SVG puts each point where
// report_training.h's geometry says, skips malformed entries, and report.md
// gets a Training section only for stages that trained.
#include "workers/runner/report_training.h"

#include <gtest/gtest.h>

#include "absl/strings/str_format.h"
#include "workers/runner/report_render.h"
#include "workers/runner/report_svg.h"

namespace squeeze {
namespace {

using nlohmann::json;

// The points="..." of the polyline of class `cls`.
std::string PolylinePoints(const std::string& svg, const std::string& cls) {
  const size_t at = svg.find("<polyline class=\"" + cls + "\"");
  if (at == std::string::npos) return "";
  const size_t p = svg.find(" points=\"", at) + 9;  // not data-points
  return svg.substr(p, svg.find('"', p) - p);
}

TEST(ReportTraining, LossCurveSvgGeometry) {
  const json t = {{"loss", "forward_kl"},
                  {"loss_curve",
                   {{{"step", 1}, {"loss", 4.0}, {"lr", 0.001}},
                    {{"step", "two"}, {"loss", 3.0}},  // malformed: skipped
                    {{"step", 5}, {"loss", 2.0}, {"lr", 0.002}},
                    {{"step", 9}, {"loss", 1.0}, {"lr", 0.0005}}}}};
  const std::string svg = RenderLossCurveSvg(t, "title <&>");
  EXPECT_NE(svg.find("title &lt;&amp;&gt;"), std::string::npos);
  EXPECT_NE(svg.find("data-points=\"3\""), std::string::npos) << svg;
  const auto [slo, shi] = AxisRange({1, 5, 9});
  const auto [llo, lhi] = AxisRange({4, 2, 1});
  std::string want;
  for (auto [s, l] : std::vector<std::pair<double, double>>{{1, 4}, {5, 2}, {9, 1}}) {
    absl::StrAppend(&want, want.empty() ? "" : " ",
                    absl::StrFormat("%.2f,%.2f", kPlotLeft + (s - slo) / (shi - slo) * kPlotWidth,
                                    kPlotTop + kPlotHeight - (l - llo) / (lhi - llo) * kPlotHeight));
  }
  EXPECT_EQ(PolylinePoints(svg, "loss"), want);
  EXPECT_FALSE(PolylinePoints(svg, "lr").empty());
  // No curve: a note, no polyline.
  const std::string empty = RenderLossCurveSvg(json::object(), "x");
  EXPECT_NE(empty.find("no loss curve"), std::string::npos);
  EXPECT_EQ(empty.find("<polyline"), std::string::npos);
}

TEST(ReportTraining, MarkdownSectionOnlyForTrainingStages) {
  json report = {{"stages", json::array({{{"name", "prune"}}, {{"name", "recover"},
                                                             {"training",
                                                              {{"loss", "gkd"},
                                                               {"steps", 200},
                                                               {"batch_size", 8},
                                                               {"seq_len", 64},
                                                               {"tokens_per_step", 512},
                                                               {"lr", 0.003},
                                                               {"min_lr", 0.0003},
                                                               {"warmup_steps", 10},
                                                               {"on_policy_steps", 97},
                                                               {"loss_first", 2.5},
                                                               {"loss_final", 1.25},
                                                               {"loss_curve", json::array()}}}}})}};
  const std::string md = RenderTrainingMarkdown(report);
  EXPECT_NE(md.find("## Training"), std::string::npos);
  EXPECT_NE(md.find("Stage recover: loss gkd, 200 steps of 512 tokens (batch 8 x 64)"), std::string::npos) << md;
  EXPECT_NE(md.find("97 steps on student samples"), std::string::npos) << md;
  EXPECT_NE(md.find("2.5000 (mean of the first 10 steps) → 1.2500 (last 10)"), std::string::npos) << md;
  EXPECT_NE(md.find("![loss curve](loss_curve_1.svg)"), std::string::npos);
  EXPECT_EQ(md.find("prune"), std::string::npos);
  report["stages"][1].erase("training");
  EXPECT_EQ(RenderTrainingMarkdown(report), "");
  EXPECT_EQ(RenderTrainingMarkdown(json::object()), "");
}

}  // namespace
}  // namespace squeeze
