// The training part of the job report: report.json stages[i].training
// (written by DistillationModifier, mod_distill.cc: loss, steps, batch_size,
// seq_len, loss_first, loss_final, loss_curve [{step, loss, lr}], ...)
// rendered as a loss-curve SVG per training stage and a Markdown section.
//
// SVG (RenderLossCurveSvg): one panel of (kPanelWidth + 50) x kPanelHeight (the
// 50 hold the learning-rate axis labels) with the
// Pareto panels' plot area (report_render.h: x in [kPlotLeft, kPlotLeft +
// kPlotWidth], y in [kPlotTop, kPlotTop + kPlotHeight]); x = step and
// y = loss, each axis over AxisRange (report_svg.h) of its values:
//   cx = kPlotLeft + (step - lo_s) / (hi_s - lo_s) * kPlotWidth
//   cy = kPlotTop + kPlotHeight - (loss - lo_l) / (hi_l - lo_l) * kPlotHeight
// The loss is <polyline class="loss" data-points="N"> through the N curve
// points in order; the learning rate is a dashed <polyline class="lr"> on
// its own scale (right-hand axis). Entries without a numeric step and loss
// are skipped; with none left the SVG holds only a note.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"

namespace squeeze {

// The file name of stage `stage_index`'s plot: "loss_curve_<i>.svg".
std::string LossCurveSvgName(size_t stage_index);

std::string RenderLossCurveSvg(const nlohmann::json& training, const std::string& title);

// "## Training" with one paragraph and the plot link per stage that has a
// "training" object; "" when no stage has one.
std::string RenderTrainingMarkdown(const nlohmann::json& report);

// Writes dir/LossCurveSvgName(i) (atomically) for every such stage.
absl::Status WriteTrainingPlots(const std::string& dir, const nlohmann::json& report);

}  // namespace squeeze
