// squeeze get JOB: one job's state (and error or artifact).
#include <iostream>

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
  if (!job->artifact_digest().empty()) std::cout << "artifact   " << job->artifact_digest() << "\n";
  if (!job->error().empty()) std::cout << "error      " << job->error() << "\n";
  return kExitOk;
}

}  // namespace
SQUEEZE_COMMAND("get", "show one job", RunGet);
}  // namespace squeeze::cli
