// squeeze pareto --model DIGEST_OR_JOB [--json] [--svg FILE]
// The Pareto front of quality vs bytes / FLOPs per token / decode latency over
// every SUCCEEDED job of one base model in the coordinator's store
// (GetPareto; workers/runner/report_front.h): a table by default, the front's
// JSON with --json, the plot of every variant with --svg.
#include <iostream>

#include "client/cli/service/common.h"
#include "workers/engine/core/file_util.h"
#include "workers/runner/report_front.h"
#include "workers/runner/report_render.h"

namespace squeeze::cli {
namespace {

using nlohmann::json;

int RunPareto(const std::vector<std::string>& args) {
  ArgParser p("squeeze pareto --model DIGEST_OR_JOB [options]",
              "Show the Pareto front of quality vs bytes, FLOPs per token and decode latency over every\n"
              "succeeded job of one model in the store. --model is the model's manifest digest (its newest\n"
              "job is the anchor) or a job id (its model; that job is the anchor: its evaluation decides\n"
              "which scores are comparable).");
  p.Option("model", "model manifest digest (sha256) or job id")
      .Option("svg", "write the Pareto plot (SVG) of every variant to this file")
      .Flag("json", "print the front as JSON");
  AddServerOption(p);
  if (auto code = ParseOrExit(p, args, "pareto")) return *code;
  if (p.Get("model").empty()) {
    std::cerr << "squeeze pareto: --model is required (a model digest or a job id)\n";
    return kExitUsage;
  }
  const std::string server = ServerAddress(p);
  client::ServiceClient client(server);
  if (auto code = ApplyRetryOption(p, client, "pareto")) return *code;
  absl::StatusOr<v1::GetParetoResponse> r = client.GetPareto(p.Get("model"));
  if (!r.ok()) return ReportError("pareto", server, r.status());
  json front = json::parse(r->pareto_json(), nullptr, false);
  if (front.is_discarded()) {
    std::cerr << "squeeze pareto: the coordinator's answer is not JSON\n";
    return kExitJobFailed;
  }
  if (!p.Get("svg").empty()) {
    if (absl::Status s = WriteFileAtomically(p.Get("svg"), RenderParetoSvg(StoreFrontVariants(front))); !s.ok()) {
      std::cerr << "squeeze pareto: --svg " << p.Get("svg") << ": " << s.message() << "\n";
      return kExitUsage;
    }
  }
  if (p.GetFlag("json")) {
    std::cout << front.dump(2) << "\n";
  } else {
    std::cout << RenderStoreFrontMarkdown(front, p.Get("svg"));
  }
  return kExitOk;
}

}  // namespace
SQUEEZE_COMMAND("pareto", "the Pareto front over every succeeded job of one model", RunPareto);
}  // namespace squeeze::cli
