#include "workers/runner/report_training.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/runner/report_render.h"
#include "workers/runner/report_svg.h"

namespace squeeze {
namespace {

using nlohmann::json;

// Room right of the Pareto panel width for the learning-rate tick labels.
constexpr double kLrAxisWidth = 50;

struct CurvePoint {
  double step, loss, lr;
  bool has_lr;
};

std::vector<CurvePoint> Points(const json& training) {
  std::vector<CurvePoint> out;
  if (!training.is_object() || !training.contains("loss_curve") || !training["loss_curve"].is_array()) return out;
  for (const json& p : training["loss_curve"]) {
    if (!p.is_object() || !p.contains("step") || !p["step"].is_number() || !p.contains("loss") ||
        !p["loss"].is_number()) {
      continue;
    }
    const bool has_lr = p.contains("lr") && p["lr"].is_number();
    out.push_back({p["step"].get<double>(), p["loss"].get<double>(), has_lr ? p["lr"].get<double>() : 0, has_lr});
  }
  return out;
}

std::string Str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string("?");
}

// fmt is a literal at every call site (checked at compile time; clang refuses a runtime format).
std::string Fmt(const json& j, const char* key, const absl::FormatSpec<double>& fmt) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return "–";
  return absl::StrFormat(fmt, j[key].get<double>());
}

}  // namespace

std::string LossCurveSvgName(size_t stage_index) { return absl::StrCat("loss_curve_", stage_index, ".svg"); }

std::string RenderLossCurveSvg(const json& training, const std::string& title) {
  const double right = kPlotLeft + kPlotWidth, bottom = kPlotTop + kPlotHeight;
  const double width = kPanelWidth + kLrAxisWidth;
  std::string s = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n"
      "<text x=\"%.2f\" y=\"20\" font-size=\"13\">%s</text>\n",
      width, kPanelHeight, width, kPanelHeight, width, kPanelHeight, kPlotLeft, XmlEscape(title));
  const std::vector<CurvePoint> pts = Points(training);
  if (pts.empty()) {
    absl::StrAppend(&s, "<text x=\"20\" y=\"60\">no loss curve in this report</text>\n</svg>\n");
    return s;
  }
  std::vector<double> steps, losses, lrs;
  bool lr = true;
  for (const CurvePoint& p : pts) {
    steps.push_back(p.step);
    losses.push_back(p.loss);
    lrs.push_back(p.lr);
    lr = lr && p.has_lr;
  }
  const auto [slo, shi] = AxisRange(steps);
  const auto [llo, lhi] = AxisRange(losses);
  const auto [rlo, rhi] = AxisRange(lrs);
  auto px = [&, slo = slo, shi = shi](double x) { return kPlotLeft + (x - slo) / (shi - slo) * kPlotWidth; };
  auto py = [&, llo = llo, lhi = lhi](double y) { return bottom - (y - llo) / (lhi - llo) * kPlotHeight; };
  auto pr = [&, rlo = rlo, rhi = rhi](double y) { return bottom - (y - rlo) / (rhi - rlo) * kPlotHeight; };
  absl::StrAppend(&s, absl::StrFormat("<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
                                      "stroke=\"#888\"/>\n",
                                      kPlotLeft, kPlotTop, kPlotWidth, kPlotHeight));
  for (int t = 0; t <= 2; ++t) {  // ticks at lo, mid, hi of each axis
    const double fx = slo + (shi - slo) * t / 2.0, fy = llo + (lhi - llo) * t / 2.0, fr = rlo + (rhi - rlo) * t / 2.0;
    absl::StrAppend(&s, absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n", px(fx),
                                        bottom + 14, XmlEscape(Human(fx))));
    absl::StrAppend(&s, absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", kPlotLeft - 4,
                                        py(fy) + 4, XmlEscape(absl::StrFormat("%.3g", fy))));
    if (lr) {
      absl::StrAppend(&s, absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" fill=\"#d62728\">%s</text>\n", right + 4,
                                          pr(fr) + 4, XmlEscape(absl::StrFormat("%.2g", fr))));
    }
  }
  absl::StrAppend(&s, absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">step</text>\n",
                                      kPlotLeft + kPlotWidth / 2, bottom + 32));
  absl::StrAppend(&s, absl::StrFormat("<text x=\"16\" y=\"%.2f\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
                                      "%.2f)\">%s loss</text>\n",
                                      kPlotTop + kPlotHeight / 2, kPlotTop + kPlotHeight / 2,
                                      XmlEscape(Str(training, "loss"))));
  std::string line, lr_line;
  for (const CurvePoint& p : pts) {
    absl::StrAppend(&line, line.empty() ? "" : " ", absl::StrFormat("%.2f,%.2f", px(p.step), py(p.loss)));
    if (lr) absl::StrAppend(&lr_line, lr_line.empty() ? "" : " ", absl::StrFormat("%.2f,%.2f", px(p.step), pr(p.lr)));
  }
  if (lr) {
    absl::StrAppend(&s, absl::StrFormat("<polyline class=\"lr\" points=\"%s\" fill=\"none\" stroke=\"#d62728\" "
                                        "stroke-dasharray=\"4 3\"/>\n",
                                        lr_line));
  }
  absl::StrAppend(&s, absl::StrFormat("<polyline class=\"loss\" data-points=\"%d\" points=\"%s\" fill=\"none\" "
                                      "stroke=\"#1f77b4\" stroke-width=\"1.5\"/>\n",
                                      pts.size(), line));
  absl::StrAppend(&s, absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" fill=\"#1f77b4\">loss</text>\n", kPlotLeft + 6,
                                      kPlotTop + 14));
  if (lr) {
    absl::StrAppend(&s, absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" fill=\"#d62728\">learning rate (right)</text>\n",
                                        kPlotLeft + 40, kPlotTop + 14));
  }
  absl::StrAppend(&s, "</svg>\n");
  return s;
}

std::string RenderTrainingMarkdown(const json& report) {
  if (!report.is_object() || !report.contains("stages") || !report["stages"].is_array()) return "";
  std::string md;
  const json& stages = report["stages"];
  for (size_t i = 0; i < stages.size(); ++i) {
    if (!stages[i].is_object() || !stages[i].contains("training") || !stages[i]["training"].is_object()) continue;
    const json& t = stages[i]["training"];
    if (md.empty()) md = "\n## Training\n";
    absl::StrAppend(&md, "\nStage ", Str(stages[i], "name"), ": loss ", Str(t, "loss"), ", ", Fmt(t, "steps", "%.0f"),
                    " steps of ", Fmt(t, "tokens_per_step", "%.0f"), " tokens (batch ", Fmt(t, "batch_size", "%.0f"),
                    " x ", Fmt(t, "seq_len", "%.0f"), "), lr ", Fmt(t, "lr", "%.3g"), " → ", Fmt(t, "min_lr", "%.3g"),
                    " (cosine, ", Fmt(t, "warmup_steps", "%.0f"), " warmup steps)");
    if (t.contains("on_policy_steps") && t["on_policy_steps"].is_number() && t["on_policy_steps"].get<double>() > 0) {
      absl::StrAppend(&md, ", ", Fmt(t, "on_policy_steps", "%.0f"), " steps on student samples");
    }
    // loss_first / loss_final: means of the first / last min(10, steps) steps (mod_distill.cc).
    const double steps = t.contains("steps") && t["steps"].is_number() ? t["steps"].get<double>() : 0;
    const std::string k = absl::StrFormat("%.0f", std::min(10.0, steps));
    absl::StrAppend(&md, ". Training loss ", Fmt(t, "loss_first", "%.4f"), " (mean of the first ", k, " steps) → ",
                    Fmt(t, "loss_final", "%.4f"), " (last ", k, ").\n\n![loss curve](", LossCurveSvgName(i), ")\n");
  }
  return md;
}

absl::Status WriteTrainingPlots(const std::string& dir, const json& report) {
  if (!report.is_object() || !report.contains("stages") || !report["stages"].is_array()) return absl::OkStatus();
  const json& stages = report["stages"];
  for (size_t i = 0; i < stages.size(); ++i) {
    if (!stages[i].is_object() || !stages[i].contains("training") || !stages[i]["training"].is_object()) continue;
    const json& t = stages[i]["training"];
    const std::string title = absl::StrCat("training loss (", Str(t, "loss"), "), stage ", Str(stages[i], "name"));
    SQ_RETURN_IF_ERROR(WriteFileAtomically(dir + "/" + LossCurveSvgName(i), RenderLossCurveSvg(t, title)));
  }
  return absl::OkStatus();
}

}  // namespace squeeze
