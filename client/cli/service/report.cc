// squeeze report JOB_OR_DIR [--compare A,B,...] [--json] [--svg FILE]
// Prints the report of a SUCCEEDED job (GetReport: report.json plus the
// worker's measured latency / seconds) or of a local artifact directory (its
// report.json): report.md rendered (workers/runner/report_render.h) by
// default, the JSON with --json. --compare adds more jobs / directories of the
// same dense model: the output becomes a comparison table with each variant's
// ELUE-style score against the others, and --svg writes the Pareto plot of
// all of them. A job's report from the coordinator also holds the Pareto
// front over every succeeded job of the same model (scores.pareto.store,
// rendered as its own section; --svg then plots all of them) and the
// evaluation options with the sampled subsets' hashes (quality.evaluation,
// quality.task_samples).
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/cli/service/common.h"
#include "workers/engine/core/file_util.h"
#include "workers/runner/report_front.h"
#include "workers/runner/report_render.h"

namespace squeeze::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A local directory (its report.json), a local .json file, or a job id.
absl::StatusOr<std::pair<std::string, json>> LoadReport(const std::string& arg, const std::string& server,
                                                        int64_t retry_ms, bool* remote) {
  std::error_code ec;
  std::string file;
  if (fs::is_directory(arg, ec)) {
    file = arg + "/report.json";
  } else if (fs::is_regular_file(arg, ec)) {
    file = arg;
  }
  std::string text, name = arg;
  if (!file.empty()) {
    auto t = ReadFileToString(file);
    if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat(arg, ": no readable report.json (", t.status().message(), ")"));
    text = *t;
    // A directory by its name, a file by its stem ("gptq.json" -> "gptq").
    name = fs::is_directory(arg, ec) ? fs::path(arg).filename().string() : fs::path(arg).stem().string();
    if (name.empty()) name = fs::path(arg).parent_path().filename().string();
  } else {
    *remote = true;
    client::ServiceClient client(server);
    client.set_retry_budget_ms(retry_ms, /*announce=*/true);
    absl::StatusOr<v1::GetReportResponse> r = client.GetReport(arg);
    if (!r.ok()) return r.status();
    text = r->report_json();
  }
  try {
    return std::make_pair(name, json::parse(text));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(arg, ": report is not JSON: ", e.what()));
  }
}

int RunReport(const std::vector<std::string>& args) {
  ArgParser p("squeeze report JOB_OR_DIR [options]",
              "Print the report of a SUCCEEDED job or of a local artifact directory: report.md (rendered)\n"
              "by default, report.json with --json. --compare adds other jobs / directories of the same\n"
              "model for a comparison table and one Pareto plot.");
  p.Positional("JOB_OR_DIR", "job id, artifact directory or report.json file");
  p.Option("compare", "comma-separated jobs / directories to compare with (same dense model)")
      .Option("svg", "write the Pareto plot (SVG) of the variants to this file")
      .Flag("json", "print the report JSON (with --compare: {reports, variants})");
  AddServerOption(p);
  if (auto code = ParseOrExit(p, args, "report")) return *code;
  const std::string server = ServerAddress(p);
  const absl::StatusOr<int64_t> retry_ms = RetryBudgetMs(p);
  if (!retry_ms.ok()) return ReportError("report", server, retry_ms.status());
  std::vector<std::string> refs = {p.Get("JOB_OR_DIR")};
  for (absl::string_view c : absl::StrSplit(p.Get("compare"), ',', absl::SkipWhitespace())) refs.emplace_back(c);
  std::vector<std::pair<std::string, json>> reports;
  for (const std::string& ref : refs) {
    bool remote = false;
    auto r = LoadReport(ref, server, *retry_ms, &remote);
    if (!r.ok()) {
      if (remote) return ReportError("report", server, r.status());
      std::cerr << "squeeze report: " << r.status().message() << "\n";
      return kExitUsage;
    }
    reports.push_back(*std::move(r));
  }
  const bool compare = reports.size() > 1;
  std::vector<VariantPoint> variants;
  absl::Status vs = absl::OkStatus();
  if (compare) {
    auto v = CombineVariants(reports);
    if (v.ok()) variants = *std::move(v);
    vs = v.status();
  } else {
    auto v = ReportVariants(reports[0].second, "compressed");
    if (v.ok()) variants = *std::move(v);
    vs = v.status();
    // A job's report from the coordinator carries the store-wide front
    // (scores.pareto.store): plot every variant of the model when there are
    // more than this job's two.
    const json& r0 = reports[0].second;
    if (vs.ok() && r0.contains("scores") && r0["scores"].is_object() && r0["scores"].contains("pareto") &&
        r0["scores"]["pareto"].is_object() && r0["scores"]["pareto"].contains("store")) {
      std::vector<VariantPoint> store = StoreFrontVariants(r0["scores"]["pareto"]["store"]);
      if (store.size() > 2) variants = std::move(store);
    }
  }
  if (!vs.ok() && (compare || !p.Get("svg").empty())) {
    std::cerr << "squeeze report: " << vs.message() << "\n";
    return kExitUsage;
  }
  if (!p.Get("svg").empty()) {
    if (absl::Status s = WriteFileAtomically(p.Get("svg"), RenderParetoSvg(variants)); !s.ok()) {
      std::cerr << "squeeze report: --svg " << p.Get("svg") << ": " << s.message() << "\n";
      return kExitUsage;
    }
  }
  if (p.GetFlag("json")) {
    if (!compare) {
      std::cout << reports[0].second.dump(2) << "\n";
    } else {
      json out = {{"reports", json::object()}, {"variants", json::array()}};
      for (const auto& [name, r] : reports) out["reports"][name] = r;
      for (const VariantPoint& v : variants) {
        out["variants"].push_back({{"name", v.name}, {"bytes", v.bytes}, {"flops_per_token", v.flops_per_token},
                                   {"latency_ms", v.latency_ms}, {"scores", v.scores}});
      }
      std::cout << out.dump(2) << "\n";
    }
    return kExitOk;
  }
  const std::string svg_name = p.Get("svg").empty() ? "pareto.svg" : fs::path(p.Get("svg")).filename().string();
  if (compare) {
    std::cout << RenderComparisonMarkdown(variants, svg_name);
  } else {
    std::cout << RenderReportMarkdown(reports[0].second, svg_name);
  }
  return kExitOk;
}

}  // namespace
SQUEEZE_COMMAND("report", "print a finished job's (or an artifact's) report", RunReport);
}  // namespace squeeze::cli
