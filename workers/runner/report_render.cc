#include "workers/runner/report_render.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/runner/report_front.h"
#include "workers/runner/report_svg.h"
#include "workers/runner/report_training.h"

namespace squeeze {
namespace {

using nlohmann::json;

double Num(const json& j, const char* key, double fallback = 0) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return fallback;
  return j[key].get<double>();
}

std::string MdEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\";
    out += c;
  }
  return out;
}

struct Panel {
  std::string id, title;
  std::function<double(const VariantPoint&)> cost;
};

// Fallback: the task_scores a report gives, else the perplexity.
std::map<std::string, double> ScoresOf(const json& report, const char* side) {
  std::map<std::string, double> out;
  if (report.contains("scores") && report["scores"].is_object() && report["scores"].contains("task_scores")) {
    const json& ts = report["scores"]["task_scores"];
    if (ts.contains(side) && ts[side].is_object()) {
      for (const auto& [k, v] : ts[side].items()) {
        if (v.is_number()) out[k] = v.get<double>();
      }
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<VariantPoint>> ReportVariants(const json& report, const std::string& compressed_name) {
  if (!report.is_object() || !report.contains("cost") || !report["cost"].is_object() ||
      !report["cost"].contains("dense")) {
    return absl::InvalidArgumentError("report: no cost section (a report written before the evaluation stage?)");
  }
  std::vector<VariantPoint> out;
  for (const char* side : {"dense", "compressed"}) {
    VariantPoint p;
    p.name = std::string(side) == "dense" ? "dense" : compressed_name;
    const json& c = report["cost"][side];
    p.flops_per_token = Num(c, "flops_per_token");
    p.bytes = Num(c, "bytes_in_memory");
    if (report["cost"].contains("latency") && report["cost"]["latency"].is_object()) {
      const json& l = report["cost"]["latency"];
      if (l.contains(side) && l[side].contains("points") && !l[side]["points"].empty()) {
        p.latency_ms = Num(l[side]["points"][0], "decode_ms_per_token_p50");
      }
    }
    p.scores = ScoresOf(report, side);
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<std::vector<VariantPoint>> CombineVariants(
    const std::vector<std::pair<std::string, json>>& named_reports) {
  if (named_reports.empty()) return absl::InvalidArgumentError("no reports to combine");
  std::vector<VariantPoint> out;
  for (size_t i = 0; i < named_reports.size(); ++i) {
    SQ_ASSIGN_OR_RETURN(auto v, ReportVariants(named_reports[i].second, named_reports[i].first));
    if (i == 0) {
      out.push_back(v[0]);
    } else if (v[0].bytes != out[0].bytes || v[0].flops_per_token != out[0].flops_per_token) {
      return absl::InvalidArgumentError(absl::StrCat(named_reports[i].first,
                                                     ": its dense model differs from the first report's (bytes or "
                                                     "FLOPs per token); compare variants of one model"));
    }
    out.push_back(v[1]);
  }
  return out;
}

std::string RenderParetoSvg(const std::vector<VariantPoint>& variants) {
  std::vector<Panel> panels = {
      {"bytes", "quality vs bytes in memory", [](const VariantPoint& p) { return p.bytes; }},
      {"flops", "quality vs FLOPs per token", [](const VariantPoint& p) { return p.flops_per_token; }}};
  bool latency = !variants.empty();
  for (const VariantPoint& v : variants) latency = latency && v.latency_ms > 0;
  if (latency) {
    panels.push_back({"latency", "quality vs decode ms/token (batch 1)",
                      [](const VariantPoint& p) { return p.latency_ms; }});
  }
  const std::vector<std::string> tasks = CommonTasks(variants);
  const double width = kPanelWidth * static_cast<double>(panels.size());
  std::string s = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n",
      width, kPanelHeight, width, kPanelHeight, width, kPanelHeight);
  if (tasks.empty() || variants.empty()) {
    absl::StrAppend(&s, "<text x=\"20\" y=\"40\">no quality figures common to every variant ",
                    "(give an eval text or task files)</text>\n</svg>\n");
    return s;
  }
  std::vector<double> q;
  for (const VariantPoint& v : variants) q.push_back(MeanScore(v, tasks));
  const auto [qlo, qhi] = AxisRange(q);
  const std::string qlabel = XmlEscape(
      tasks.size() == 1 ? absl::StrCat(tasks[0], " score (%)") : absl::StrCat("mean score over ", tasks.size(), " tasks (%)"));
  for (size_t pi = 0; pi < panels.size(); ++pi) {
    const Panel& panel = panels[pi];
    const double ox = kPanelWidth * static_cast<double>(pi), left = ox + kPlotLeft, bottom = kPlotTop + kPlotHeight;
    std::vector<double> c;
    for (const VariantPoint& v : variants) c.push_back(panel.cost(v));
    const auto [clo, chi] = AxisRange(c);
    auto px = [&, clo = clo, chi = chi](double x) { return left + (x - clo) / (chi - clo) * kPlotWidth; };
    auto py = [&, qlo = qlo, qhi = qhi](double y) { return bottom - (y - qlo) / (qhi - qlo) * kPlotHeight; };
    absl::StrAppend(&s, absl::StrFormat("<g class=\"panel\" id=\"panel-%s\">\n", panel.id));
    absl::StrAppend(&s, absl::StrFormat("<text x=\"%.2f\" y=\"20\" font-size=\"13\">%s</text>\n", left,
                                        XmlEscape(panel.title)));
    absl::StrAppend(&s, absl::StrFormat("<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
                                        "stroke=\"#888\"/>\n",
                                        left, kPlotTop, kPlotWidth, kPlotHeight));
    for (int t = 0; t <= 2; ++t) {  // ticks at lo, mid, hi of each axis
      const double fx = clo + (chi - clo) * t / 2.0, fy = qlo + (qhi - qlo) * t / 2.0;
      absl::StrAppend(&s, absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n", px(fx),
                                          bottom + 14, XmlEscape(Human(fx))));
      absl::StrAppend(&s, absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", left - 4,
                                          py(fy) + 4, XmlEscape(absl::StrFormat("%.3g", fy))));
    }
    absl::StrAppend(&s, absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n",
                                        left + kPlotWidth / 2, bottom + 32, XmlEscape(panel.id == "bytes" ? "bytes" : panel.id == "flops" ? "FLOPs per token" : "decode ms per token")));
    absl::StrAppend(&s, absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" transform=\"rotate(-90 %.2f "
                                        "%.2f)\">%s</text>\n",
                                        ox + 16, kPlotTop + kPlotHeight / 2, ox + 16, kPlotTop + kPlotHeight / 2,
                                        qlabel));
    const std::vector<bool> opt =
        ParetoOptimal(variants, panel.cost, [&](const VariantPoint& v) { return MeanScore(v, tasks); });
    std::vector<std::pair<double, double>> front;
    for (size_t i = 0; i < variants.size(); ++i) {
      if (opt[i]) front.push_back({c[i], q[i]});
    }
    std::sort(front.begin(), front.end());
    std::string pts;
    for (const auto& [x, y] : front) absl::StrAppend(&pts, pts.empty() ? "" : " ", absl::StrFormat("%.2f,%.2f", px(x), py(y)));
    absl::StrAppend(&s, absl::StrFormat("<polyline class=\"front\" points=\"%s\" fill=\"none\" stroke=\"#1f77b4\" "
                                        "stroke-dasharray=\"4 3\"/>\n",
                                        pts));
    for (size_t i = 0; i < variants.size(); ++i) {
      const std::string name = XmlEscape(variants[i].name);
      absl::StrAppend(&s, absl::StrFormat(
                              "<circle class=\"point\" data-panel=\"%s\" data-name=\"%s\" data-x=\"%.9g\" "
                              "data-y=\"%.9g\" data-pareto=\"%d\" cx=\"%.2f\" cy=\"%.2f\" r=\"5\" fill=\"%s\" "
                              "stroke=\"#1f77b4\"/>\n",
                              panel.id, name, c[i], q[i], opt[i] ? 1 : 0, px(c[i]), py(q[i]),
                              opt[i] ? "#1f77b4" : "white"));
      absl::StrAppend(&s, absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\">%s</text>\n", px(c[i]) + 7, py(q[i]) - 7, name));
    }
    absl::StrAppend(&s, "</g>\n");
  }
  absl::StrAppend(&s, "</svg>\n");
  return s;
}

namespace {

// fmt is checked at compile time (a literal at every call site): clang refuses
// a runtime format string.
std::string Cell(const json& j, const char* key, const absl::FormatSpec<double>& fmt = "%.4g") {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return "–";
  return absl::StrFormat(fmt, j[key].get<double>());
}

void LatencyTable(const json& lat, std::string* md) {
  absl::StrAppend(md, "\n### Latency (measured on the worker; not in the artifact)\n\n",
                  "| model | batch | prefill tok/s | prefill ms/tok p50 | decode ms/tok p50 | p90 | decode tok/s | "
                  "reps |\n|---|---|---|---|---|---|---|---|\n");
  for (const char* side : {"dense", "compressed"}) {
    if (!lat.contains(side)) continue;
    for (const json& p : lat[side]["points"]) {
      absl::StrAppend(md, "| ", side, " | ", Cell(p, "batch", "%.0f"), " | ", Cell(p, "prefill_tokens_per_s", "%.0f"),
                      " | ", Cell(p, "prefill_ms_per_token_p50", "%.4f"), " | ",
                      Cell(p, "decode_ms_per_token_p50", "%.4f"), " | ", Cell(p, "decode_ms_per_token_p90", "%.4f"),
                      " | ", Cell(p, "decode_tokens_per_s", "%.0f"), " | ", Cell(p, "repetitions", "%.0f"), " |\n");
    }
  }
  for (const char* side : {"dense", "compressed"}) {
    if (!lat.contains(side)) continue;
    absl::StrAppend(md, "\n", side, ": ", Cell(lat[side], "threads", "%.0f"), " threads, model ",
                    Human(Num(lat[side], "model_bytes")), "B in memory, KV cache ",
                    Human(Num(lat[side], "kv_cache_bytes")), "B, peak RSS during the measurement ",
                    Human(Num(lat[side], "peak_rss_bytes")), "B");
  }
  absl::StrAppend(md, "\n");
}

}  // namespace

std::string RenderReportMarkdown(const json& r, const std::string& svg_name) {
  std::string md = "# Squeeze compression report\n\n";
  if (r.contains("model") && r["model"].is_object()) {
    const json& m = r["model"];
    absl::StrAppend(&md, "Model: ", m.value("architecture", std::string("?")), ", ", Cell(m, "n_layers", "%.0f"),
                    " layers, dim ", Cell(m, "dim", "%.0f"), ", hidden ", Cell(m, "hidden_dim", "%.0f"), ", vocab ",
                    Cell(m, "vocab_size", "%.0f"), "; seed ", r.contains("seed") ? r["seed"].dump() : "?", ".\n");
  }
  if (r.contains("stages") && r["stages"].is_array()) {
    absl::StrAppend(&md, "\n## Stages\n\n| stage | modifiers | layers | wall s | CPU s | GPU s |\n|---|---|---|---|---|---|\n");
    for (const json& s : r["stages"]) {
      std::vector<std::string> mods;
      if (s.contains("modifiers")) {
        for (const json& m : s["modifiers"]) mods.push_back(m.is_string() ? m.get<std::string>() : m.dump());
      }
      absl::StrAppend(&md, "| ", MdEscape(s.value("name", std::string())), " | ", MdEscape(absl::StrJoin(mods, ", ")),
                      " | ", Cell(s, "n_layers", "%.0f"), " | ", Cell(s, "wall_s", "%.2f"), " | ",
                      Cell(s, "cpu_s", "%.2f"), " | ",
                      s.value("device", std::string()) == "cpu" ? std::string("0 (no GPU used)")
                                                                 : Cell(s, "gpu_s", "%.2f"),
                      " |\n");
    }
  }
  absl::StrAppend(&md, RenderTrainingMarkdown(r));  // loss curves of training stages (report_training.h)
  if (r.contains("quality") && r["quality"].is_object() && r["quality"].contains("evaluation") &&
      r["quality"]["evaluation"].is_object()) {
    const json& e = r["quality"]["evaluation"];
    std::vector<std::string> tasks;
    for (const json& t : e.value("tasks", json::array())) tasks.push_back(t.get<std::string>());
    absl::StrAppend(&md, "\n## Evaluation\n\nTasks: ", tasks.empty() ? "none" : absl::StrJoin(tasks, ", "),
                    "; examples per task: ",
                    e.value("task_limit", int64_t{0}) > 0 ? std::to_string(e.value("task_limit", int64_t{0})) : "all",
                    "; sample: ",
                    e.contains("task_seed") && e["task_seed"].is_number() ? "seeded, seed " + e["task_seed"].dump()
                                                                          : std::string("the first examples"),
                    "; agreement ", e.value("agreement", false) ? "on" : "off", "; latency ",
                    e.value("latency", false) ? "on" : "off", ".\n");
    const json samples = r["quality"].value("task_samples", json::object());
    if (!samples.empty()) {
      absl::StrAppend(&md, "\n| task | n | task file sha256 | subset sha256 |\n|---|---|---|---|\n");
      for (const auto& [name, t] : samples.items()) {
        absl::StrAppend(&md, "| ", MdEscape(name), " | ", Cell(t, "n", "%.0f"), " | ",
                        t.value("file_sha256", std::string()).substr(0, 16), "… | ",
                        t.value("subset_sha256", std::string()).substr(0, 16), "… |\n");
      }
    }
  }
  const json q = r.value("quality", json::object());
  absl::StrAppend(&md, "\n## Quality\n\n| measure | dense | compressed |\n|---|---|---|\n");
  if (q.contains("perplexity") && q["perplexity"].is_object()) {
    const json& p = q["perplexity"];
    absl::StrAppend(&md, "| perplexity (rolling, window ", Cell(p, "seq_len", "%.0f"), ", ", Cell(p, "tokens", "%.0f"),
                    " tokens) | ", Cell(p, "dense"), " | ", Cell(p, "compressed"), " |\n");
    absl::StrAppend(&md, "| bits per byte | ", Cell(p, "bits_per_byte_dense"), " | ", Cell(p, "bits_per_byte_compressed"),
                    " |\n");
  }
  if (q.contains("tasks") && q["tasks"].is_object()) {
    for (const auto& [name, t] : q["tasks"].items()) {
      const bool lm = t.value("format", std::string()) == "language_modeling";
      const char* key = lm ? "acc" : "acc_norm";
      absl::StrAppend(&md, "| ", MdEscape(name), " ", key, " (n=", Cell(t, "n", "%.0f"),
                      t.contains("examples") && t["examples"].is_array() ? ", sampled" : "", ") | ",
                      Cell(t["dense"], key), " ± ", Cell(t["dense"], lm ? "acc_stderr" : "acc_norm_stderr", "%.3f"),
                      " | ", Cell(t["compressed"], key), " ± ",
                      Cell(t["compressed"], lm ? "acc_stderr" : "acc_norm_stderr", "%.3f"), " |\n");
    }
  }
  if (q.contains("agreement") && q["agreement"].is_object()) {
    const json& a = q["agreement"];
    absl::StrAppend(&md, "\nAgreement with the dense model (", Cell(a, "positions", "%.0f"), " positions): mean KL ",
                    Cell(a, "mean_kl", "%.5g"), " ± ", Cell(a, "kl_stderr", "%.2g"), " nats (median ",
                    Cell(a, "median_kl", "%.4g"), ", p99 ", Cell(a, "p99_kl", "%.4g"), "), top-1 agreement ",
                    Cell(a, "top1_agreement", "%.4f"), ".\n");
  }
  if (r.contains("cost") && r["cost"].is_object()) {
    const json& c = r["cost"];
    absl::StrAppend(&md, "\n## Cost (analytic, context ", Cell(c, "context_len", "%.0f"),
                    ")\n\n| | params | non-zero | bytes in memory | FLOPs/token | ideal FLOPs/token | prefill FLOPs/token "
                    "|\n|---|---|---|---|---|---|---|\n");
    for (const char* side : {"dense", "compressed"}) {
      if (!c.contains(side)) continue;
      const json& s = c[side];
      absl::StrAppend(&md, "| ", side, " | ", Human(Num(s, "params_total")), " | ", Human(Num(s, "params_nonzero")),
                      " | ", Human(Num(s, "bytes_in_memory")), " | ", Human(Num(s, "flops_per_token")), " | ",
                      Human(Num(s, "ideal_flops_per_token")), " | ", Human(Num(s, "prefill_flops_per_token")), " |\n");
    }
    if (c.contains("skippable_flops") && c["skippable_flops"].is_string()) {
      absl::StrAppend(&md, "\n", c["skippable_flops"].get<std::string>(), ".\n");
    }
    if (c.contains("latency") && c["latency"].is_object()) LatencyTable(c["latency"], &md);
  }
  if (r.contains("scores") && r["scores"].is_object()) {
    const json& s = r["scores"];
    absl::StrAppend(&md, "\n## Scores\n\n- compression ratio (bytes in memory, dense / compressed): ",
                    Cell(s, "compression_ratio", "%.3f"), "\n- non-zero parameter ratio: ", Cell(s, "param_ratio", "%.3f"),
                    "\n- FLOPs ratio (kernel): ", Cell(s, "flops_ratio", "%.3f"), ", ideal: ",
                    Cell(s, "ideal_flops_ratio", "%.3f"), "\n");
    if (s.contains("elue") && s["elue"].is_object()) {
      absl::StrAppend(&md, "- ELUE-style score (mean over tasks of score − baseline at the same FLOPs; reference: dense): ",
                      Cell(s["elue"], "score", "%+.3f"), " points\n");
    }
    if (s.contains("pareto") && s["pareto"].is_object()) {
      for (const char* axis : {"bytes", "flops", "latency"}) {
        if (!s["pareto"].contains(axis)) continue;
        std::vector<std::string> names;
        for (const json& n : s["pareto"][axis]) names.push_back(n.get<std::string>());
        absl::StrAppend(&md, "- Pareto-optimal on quality vs ", axis, ": ", absl::StrJoin(names, ", "), "\n");
      }
    }
    if (s.contains("elue") && s["elue"].is_object() && s["elue"].contains("store") && s["elue"]["store"].is_object()) {
      absl::StrAppend(&md, "- ELUE-style score against the store (baseline: dense + ",
                      s["elue"]["store"].value("references", json::array()).size() - 1,
                      " other variants of this model): ", Cell(s["elue"]["store"], "score", "%+.3f"), " points\n");
    }
    if (s.contains("hulk") && s["hulk"].is_object()) {
      const json& h = s["hulk"];
      absl::StrAppend(&md, "- HULK-style cost: compression took ", Cell(h, "compression_wall_s", "%.2f"), " s wall / ",
                      Cell(h, "compression_cpu_s", "%.2f"), " s CPU (job ", Cell(h, "job_wall_s", "%.2f"),
                      " s wall); decode saves ", Cell(h, "saved_ms_per_token", "%.4f"), " ms/token; break-even after ",
                      h.contains("break_even_tokens") && h["break_even_tokens"].is_number()
                          ? absl::StrFormat("%.0f tokens", h["break_even_tokens"].get<double>())
                          : std::string("never (not faster)"),
                      "\n");
      if (h.contains("gpu") && h["gpu"].is_string()) {
        absl::StrAppend(&md, "- GPU seconds: ", Cell(h, "gpu_s", "%.2f"), " (", h["gpu"].get<std::string>(), ")\n");
      }
    }
    if (s.contains("pareto") && s["pareto"].is_object() && s["pareto"].contains("store") &&
        s["pareto"]["store"].is_object()) {
      absl::StrAppend(&md, RenderStoreFrontMarkdown(s["pareto"]["store"], ""));
    }
  }
  absl::StrAppend(&md, "\n![Pareto plot](", svg_name, ")\n");
  return md;
}

std::string RenderComparisonMarkdown(const std::vector<VariantPoint>& variants, const std::string& svg_name) {
  const std::vector<std::string> tasks = CommonTasks(variants);
  std::string md = "# Squeeze comparison\n\n| variant | bytes | FLOPs/token | decode ms/tok | ";
  for (const std::string& t : tasks) absl::StrAppend(&md, MdEscape(t), " | ");
  absl::StrAppend(&md, "ELUE-style |\n|---|---|---|---|");
  for (size_t i = 0; i < tasks.size(); ++i) absl::StrAppend(&md, "---|");
  absl::StrAppend(&md, "---|\n");
  for (size_t i = 0; i < variants.size(); ++i) {
    const VariantPoint& v = variants[i];
    absl::StrAppend(&md, "| ", MdEscape(v.name), " | ", Human(v.bytes), " | ", Human(v.flops_per_token), " | ",
                    v.latency_ms > 0 ? absl::StrFormat("%.4f", v.latency_ms) : std::string("–"), " | ");
    for (const std::string& t : tasks) absl::StrAppend(&md, absl::StrFormat("%.3f", v.scores.at(t)), " | ");
    std::string elue = "–";
    if (i > 0) {
      std::vector<VariantPoint> refs;
      for (size_t j = 0; j < variants.size(); ++j) {
        if (j != i) refs.push_back(variants[j]);
      }
      if (auto e = ElueScore(v, refs); e.ok()) elue = absl::StrFormat("%+.3f", e->score);
    }
    absl::StrAppend(&md, elue, " |\n");
  }
  absl::StrAppend(&md, "\nScores in percent (higher is better). ELUE-style: mean over tasks of the score minus the "
                       "reference curve (dense + the other variants, piecewise linear in FLOPs) at the variant's FLOPs.\n",
                  "\n![Pareto plot](", svg_name, ")\n");
  return md;
}

absl::Status WriteReportFiles(const std::string& dir, const json& report) {
  SQ_ASSIGN_OR_RETURN(std::vector<VariantPoint> v, ReportVariants(report));
  SQ_RETURN_IF_ERROR(WriteFileAtomically(dir + "/pareto.svg", RenderParetoSvg(v)));
  SQ_RETURN_IF_ERROR(WriteTrainingPlots(dir, report));  // loss_curve_<stage>.svg
  return WriteFileAtomically(dir + "/report.md", RenderReportMarkdown(report, "pareto.svg"));
}

}  // namespace squeeze
