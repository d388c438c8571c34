// squeeze get JOB: one job's state (and error or artifact).
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/service/common.h"

namespace squeeze::cli {
namespace {

int RunGet(const std::vector<std::string>& args) {
  ArgParser p("squeeze get JOB [--json]", "Show a job.");
  p.Positional("JOB", "job id").Flag("json", "print a JSON object (job_id, state, ...)");
  AddServerOption(p);
  if (auto code = ParseOrExit(p, args, "get")) return *code;
  const std::string server = ServerAddress(p);
  client::ServiceClient client(server);
  if (auto code = ApplyRetryOption(p, client, "get")) return *code;
  absl::StatusOr<v1::Job> job = client.GetJob(p.Get("JOB"));
  if (!job.ok()) return ReportError("get", server, job.status());
  if (p.GetFlag("json")) {
    std::cout << JobToJson(*job).dump() << std::endl;
    return kExitOk;
  }
  std::cout << absl::StrFormat(
      "job        %s\nstate      %s\nmodel      %s\npriority   %d\nattempts   %d of %d\ncreated    %s\n"
      "started    %s\nended      %s\n",
      job->job_id(), StateName(job->state()), job->model_digest(), job->priority(), job->attempts(),
      job->max_attempts(), FormatTime(job->create_time_ms()), FormatTime(job->start_time_ms()),
      FormatTime(job->end_time_ms()));
  if (job->has_eval()) {
    const v1::EvalOptions& e = job->eval();
    std::string tasks;
    for (const std::string& t : e.tasks()) tasks += (tasks.empty() ? "" : ",") + t;
    std::cout << absl::StrFormat("eval       tasks %s, limit %s, %s, latency %s, agreement %s, %s activations\n",
                                 tasks.empty() ? "none" : tasks,
                                 e.task_limit() > 0 ? std::to_string(e.task_limit()) : "all",
                                 e.has_task_seed() ? absl::StrCat("seed ", e.task_seed()) : "first examples",
                                 e.no_latency() ? "off" : "on", e.no_agreement() ? "off" : "on",
                                 e.packed_activations().empty() ? "fp32" : e.packed_activations());
  } else {
    std::cout << "eval       worker defaults (no tasks, latency and agreement on)\n";
  }
  if (!job->artifact_digest().empty()) std::cout << "artifact   " << job->artifact_digest() << "\n";
  if (!job->error().empty()) std::cout << "error      " << job->error() << "\n";
  return kExitOk;
}

}  // namespace
SQUEEZE_COMMAND("get", "show one job", RunGet);
}  // namespace squeeze::cli
