// Readable renderings of a job report (report_eval.h): report.md and an SVG
// Pareto plot, written by our own small code (no plotting library).
//
// Variants: a report holds two, "dense" and "compressed"; several reports of
// the same dense model combine into dense + one variant per report (named by
// the caller, e.g. the job id or the artifact directory).
//
// SVG (RenderParetoSvg): one panel per cost axis — bytes in memory, FLOPs per
// token, and decode ms/token (batch 1) when every variant has a measured
// latency — each plotting quality (mean task score in percent over the tasks
// every variant has, see efficiency.h) against the cost. Geometry, in SVG
// user units: panel i spans x in [kPanelWidth*i, kPanelWidth*(i+1)); its plot
// area is x in [left, left + kPlotWidth], y in [kPlotTop, kPlotTop +
// kPlotHeight]. An axis covers [lo, hi] = the data range padded by 8% of its
// width on each side (a zero-width range becomes [v - 10%|v|, v + 10%|v|], or
// [v - 1, v + 1] at v = 0); the point (x, y) sits at
//   cx = left + (x - lo_x) / (hi_x - lo_x) * kPlotWidth
//   cy = kPlotTop + kPlotHeight - (y - lo_y) / (hi_y - lo_y) * kPlotHeight
// Each point is <circle class="point" data-panel data-name data-x data-y>
// (the data values as %.9g), filled when Pareto-optimal on that panel; the
// front is a <polyline class="front"> through the optimal points by cost.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/eval/efficiency.h"

namespace squeeze {

inline constexpr double kPanelWidth = 380, kPanelHeight = 300;
inline constexpr double kPlotLeft = 70, kPlotWidth = 280, kPlotTop = 40, kPlotHeight = 210;

// {dense, compressed} of one report (quality from scores.task_scores, cost
// from cost.{dense,compressed}, latency from cost.latency when present).
// InvalidArgument when the report has no cost section (an old report).
absl::StatusOr<std::vector<VariantPoint>> ReportVariants(const nlohmann::json& report,
                                                         const std::string& compressed_name = "compressed");

// dense (from the first report) + each report's compressed variant, named.
absl::StatusOr<std::vector<VariantPoint>> CombineVariants(
    const std::vector<std::pair<std::string, nlohmann::json>>& named_reports);

// The plot described above. Variants without a common task give a plot with
// a note and no points.
std::string RenderParetoSvg(const std::vector<VariantPoint>& variants);

// report.md of one report (measured sections appear when present).
std::string RenderReportMarkdown(const nlohmann::json& report, const std::string& svg_name = "pareto.svg");

// A comparison table of variants with each compressed variant's ELUE-style
// score against the others (dense + the rest) as reference points.
std::string RenderComparisonMarkdown(const std::vector<VariantPoint>& variants,
                                     const std::string& svg_name = "pareto.svg");

// Writes dir/report.md, dir/pareto.svg and a loss_curve_<i>.svg per training
// stage (report_training.h) (atomically) from `report`.
absl::Status WriteReportFiles(const std::string& dir, const nlohmann::json& report);

}  // namespace squeeze
