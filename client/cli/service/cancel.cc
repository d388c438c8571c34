// squeeze cancel JOB: cancel a queued job at once, a running one at its next
// layer boundary.
#include <iostream>

#include "client/cli/service/common.h"

namespace squeeze::cli {
namespace {

int RunCancel(const std::vector<std::string>& args) {
  ArgParser p("squeeze cancel JOB [--json]",
              "Cancel a job: a queued job ends at once, a running one at its next layer boundary.");
  p.Positional("JOB", "job id").Flag("json", "print the job as JSON");
  AddServerOption(p);
  if (auto code = ParseOrExit(p, args, "cancel")) return *code;
  const std::string server = ServerAddress(p);
  client::ServiceClient client(server);
  if (auto code = ApplyRetryOption(p, client, "cancel")) return *code;
  absl::StatusOr<v1::Job> job = client.Cancel(p.Get("JOB"));
  if (!job.ok()) return ReportError("cancel", server, job.status());
  if (p.GetFlag("json")) {
    std::cout << JobToJson(*job).dump() << std::endl;
  } else if (job->state() == v1::RUNNING) {
    std::cout << job->job_id() << ": cancel requested (stops at the next layer boundary)\n";
  } else {
    std::cout << job->job_id() << ": " << StateName(job->state()) << "\n";
  }
  return kExitOk;
}

}  // namespace
SQUEEZE_COMMAND("cancel", "cancel a job", RunCancel);
}  // namespace squeeze::cli
