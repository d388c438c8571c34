#include "workers/runner/report_front.h"

#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/eval/pareto.h"
#include "workers/runner/report_render.h"

namespace squeeze {
namespace {

using nlohmann::json;

constexpr char kEvalTextTask[] = "eval_text";  // as report_eval.cc names it

// What a task's score was measured on, as a string; "" = unknown.
std::string TaskIdentity(const json& report, const std::string& eval_digest, const std::string& task) {
  const json q = report.value("quality", json::object());
  if (task == kEvalTextTask) {
    if (!q.contains("perplexity") || !q["perplexity"].is_object()) return "";
    const json& p = q["perplexity"];
    return absl::StrCat("eval_text digest=", eval_digest, " seq_len=", p.value("seq_len", json()).dump(),
                        " tokens=", p.value("tokens", json()).dump());
  }
  if (!q.contains("tasks") || !q["tasks"].is_object() || !q["tasks"].contains(task)) return "";
  const json& t = q["tasks"][task];
  std::string id = absl::StrCat("task format=", t.value("format", json()).dump(), " n=", t.value("n", json()).dump(),
                                " examples=", t.value("examples", json()).dump());
  if (q.contains("task_samples") && q["task_samples"].is_object() && q["task_samples"].contains(task)) {
    absl::StrAppend(&id, " subset=", q["task_samples"][task].value("subset_sha256", json()).dump());
  }
  return id;
}

// "MagnitudePruningModifier + QuantizationModifier" from report.stages.
std::string RecipeSummary(const json& report) {
  std::vector<std::string> mods;
  if (report.contains("stages") && report["stages"].is_array()) {
    for (const json& s : report["stages"]) {
      if (!s.contains("modifiers") || !s["modifiers"].is_array()) continue;
      for (const json& m : s["modifiers"]) mods.push_back(m.is_string() ? m.get<std::string>() : m.dump());
    }
  }
  return absl::StrJoin(mods, " + ");
}

json FrontJson(const AxisFront& f) {
  return {{"optimal", f.optimal}, {"dominated", f.dominated}, {"unmeasured", f.unmeasured}};
}

json NumOrNull(double v) { return v > 0 && std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

absl::StatusOr<json> StoreParetoJson(const std::string& model_digest, const std::vector<StoredJobReport>& jobs,
                                     size_t anchor) {
  if (jobs.empty()) return absl::InvalidArgumentError(absl::StrCat("model ", model_digest, ": no succeeded jobs"));
  if (anchor >= jobs.size()) return absl::InvalidArgumentError("anchor: out of range");
  const StoredJobReport& a = jobs[anchor];
  absl::StatusOr<std::vector<VariantPoint>> av = ReportVariants(a.report, a.job_id);
  if (!av.ok()) return absl::InvalidArgumentError(absl::StrCat("job ", a.job_id, ": ", av.status().message()));
  const VariantPoint anchor_dense = (*av)[0];
  std::map<std::string, std::string> anchor_identity;  // task -> identity
  for (const auto& [task, unused] : anchor_dense.scores) {
    anchor_identity[task] = TaskIdentity(a.report, a.eval_digest, task);
  }

  json out = {{"model_digest", model_digest}, {"anchor_job", a.job_id},
              {"excluded", json::array()},    {"dropped_scores", json::array()}};
  std::vector<VariantPoint> variants = {anchor_dense};
  variants[0].name = "dense";
  std::vector<std::string> job_ids = {a.job_id}, kinds = {"dense"}, recipes = {""};
  // The anchor first, then the others in the given order.
  std::vector<size_t> order = {anchor};
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (i != anchor) order.push_back(i);
  }
  for (size_t i : order) {
    const StoredJobReport& j = jobs[i];
    absl::StatusOr<std::vector<VariantPoint>> v = ReportVariants(j.report, j.job_id);
    if (!v.ok()) {
      out["excluded"].push_back({{"job_id", j.job_id}, {"reason", std::string(v.status().message())}});
      continue;
    }
    const VariantPoint& dense = (*v)[0];
    if (dense.bytes != anchor_dense.bytes || dense.flops_per_token != anchor_dense.flops_per_token) {
      out["excluded"].push_back(
          {{"job_id", j.job_id},
           {"reason", absl::StrFormat("its dense point (%.9g bytes, %.9g FLOPs/token) differs from the anchor's "
                                      "(%.9g, %.9g): another model or another cost context",
                                      dense.bytes, dense.flops_per_token, anchor_dense.bytes,
                                      anchor_dense.flops_per_token)}});
      continue;
    }
    VariantPoint c = (*v)[1];
    std::map<std::string, double> kept;
    for (const auto& [task, score] : c.scores) {
      std::string reason;
      auto id = anchor_identity.find(task);
      const std::string mine = TaskIdentity(j.report, j.eval_digest, task);
      if (id == anchor_identity.end()) {
        reason = "the anchor job has no score for it";
      } else if (mine != id->second) {
        reason = absl::StrCat("measured on other examples (", mine, " vs the anchor's ", id->second, ")");
      } else if (auto d = dense.scores.find(task);
                 d == dense.scores.end() || std::fabs(d->second - anchor_dense.scores.at(task)) > 1e-9) {
        reason = "its dense score differs from the anchor's (other task file contents?)";
      }
      if (reason.empty()) {
        kept[task] = score;
      } else {
        out["dropped_scores"].push_back({{"job_id", j.job_id}, {"task", task}, {"reason", reason}});
      }
    }
    c.scores = std::move(kept);
    variants.push_back(std::move(c));
    job_ids.push_back(j.job_id);
    kinds.push_back("compressed");
    recipes.push_back(RecipeSummary(j.report));
  }

  const std::vector<std::string> tasks = CommonTasks(variants);
  out["quality_tasks"] = tasks;
  out["variants"] = json::array();
  for (size_t i = 0; i < variants.size(); ++i) {
    const VariantPoint& v = variants[i];
    json e = nullptr;
    if (kinds[i] == "compressed") {
      std::vector<VariantPoint> refs;
      for (size_t k = 0; k < variants.size(); ++k) {
        if (k != i) refs.push_back(variants[k]);
      }
      if (absl::StatusOr<ElueResult> r = ElueScore(v, refs); r.ok()) {
        std::vector<std::string> ref_names;
        for (const VariantPoint& ref : refs) ref_names.push_back(ref.name);
        e = {{"score", r->score}, {"per_task", r->per_task}, {"baseline", r->baseline}, {"references", ref_names}};
      }
    }
    out["variants"].push_back({{"name", v.name},
                               {"job_id", job_ids[i]},
                               {"kind", kinds[i]},
                               {"recipe", recipes[i]},
                               {"bytes", v.bytes},
                               {"flops_per_token", v.flops_per_token},
                               {"latency_ms", NumOrNull(v.latency_ms)},
                               {"quality", tasks.empty() ? json(nullptr) : json(MeanScore(v, tasks))},
                               {"scores", v.scores},
                               {"elue", e}});
  }
  if (tasks.empty()) {
    out["fronts"] = nullptr;
    out["note"] = "no quality figure common to every variant (give the jobs the same eval text or tasks)";
  } else {
    json fronts = json::object();
    for (const AxisFront& f : ReportParetoFronts(variants, tasks)) fronts[f.axis] = FrontJson(f);
    out["fronts"] = std::move(fronts);
    out["note"] =
        "quality = mean task score in percent over quality_tasks (eval_text = 100 / perplexity); latency = decode "
        "ms/token p50 at batch 1 as measured by each job's worker (compare it only between jobs run on the same "
        "kind of machine)";
  }
  return out;
}

std::vector<VariantPoint> StoreFrontVariants(const json& front) {
  std::vector<VariantPoint> out;
  if (!front.is_object() || !front.contains("variants") || !front["variants"].is_array()) return out;
  std::set<std::string> tasks;
  if (front.contains("quality_tasks") && front["quality_tasks"].is_array()) {
    for (const json& t : front["quality_tasks"]) tasks.insert(t.get<std::string>());
  }
  for (const json& v : front["variants"]) {
    VariantPoint p;
    p.name = v.value("name", std::string());
    p.bytes = v.value("bytes", 0.0);
    p.flops_per_token = v.value("flops_per_token", 0.0);
    p.latency_ms = v.contains("latency_ms") && v["latency_ms"].is_number() ? v["latency_ms"].get<double>() : 0.0;
    if (v.contains("scores") && v["scores"].is_object()) {
      for (const auto& [k, s] : v["scores"].items()) {
        if (tasks.count(k) && s.is_number()) p.scores[k] = s.get<double>();
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::string RenderStoreFrontMarkdown(const json& front, const std::string& svg_name) {
  std::string md = absl::StrCat("\n## Pareto front over the store (model ",
                                front.value("model_digest", std::string()).substr(0, 12), ", ",
                                front.contains("variants") ? front["variants"].size() : 0, " variants)\n\n");
  std::vector<std::string> tasks;
  if (front.contains("quality_tasks")) tasks = front["quality_tasks"].get<std::vector<std::string>>();
  absl::StrAppend(&md, "Quality: mean score (%) over ", tasks.empty() ? "–" : absl::StrJoin(tasks, ", "),
                  ". Front membership: B = bytes, F = FLOPs/token, L = decode latency.\n\n",
                  "| variant | recipe | bytes | FLOPs/token | decode ms/tok | quality | front | ELUE-style (vs store) "
                  "|\n|---|---|---|---|---|---|---|---|\n");
  const json fronts = front.value("fronts", json());
  auto on = [&](const char* axis, const std::string& name) {
    if (!fronts.is_object() || !fronts.contains(axis)) return false;
    for (const json& n : fronts[axis]["optimal"]) {
      if (n == name) return true;
    }
    return false;
  };
  for (const json& v : front.value("variants", json::array())) {
    const std::string name = v.value("name", std::string());
    std::string flags;
    if (on("bytes", name)) flags += "B";
    if (on("flops", name)) flags += "F";
    if (on("latency", name)) flags += "L";
    absl::StrAppend(&md, "| ", name, " | ", v.value("recipe", std::string()), " | ",
                    absl::StrFormat("%.0f", v.value("bytes", 0.0)), " | ",
                    absl::StrFormat("%.0f", v.value("flops_per_token", 0.0)), " | ",
                    v["latency_ms"].is_number() ? absl::StrFormat("%.4f", v["latency_ms"].get<double>()) : "–", " | ",
                    v["quality"].is_number() ? absl::StrFormat("%.3f", v["quality"].get<double>()) : "–", " | ",
                    flags.empty() ? "–" : flags, " | ",
                    v["elue"].is_object() ? absl::StrFormat("%+.3f", v["elue"]["score"].get<double>()) : "–",
                    " |\n");
  }
  for (const json& e : front.value("excluded", json::array())) {
    absl::StrAppend(&md, "\nExcluded ", e.value("job_id", std::string()), ": ", e.value("reason", std::string()), ".");
  }
  for (const json& d : front.value("dropped_scores", json::array())) {
    absl::StrAppend(&md, "\nNot compared: ", d.value("task", std::string()), " of ", d.value("job_id", std::string()),
                    " (", d.value("reason", std::string()), ").");
  }
  absl::StrAppend(&md, "\n\n", front.value("note", std::string()), ".\n");
  if (!svg_name.empty()) absl::StrAppend(&md, "\n![Store-wide Pareto plot](", svg_name, ")\n");
  return md;
}

}  // namespace squeeze
