// squeeze jobs: list jobs, newest first.
#include <iostream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/cli/service/common.h"

namespace squeeze::cli {
namespace {

int RunJobs(const std::vector<std::string>& args) {
  ArgParser p("squeeze jobs [--state STATE] [--labels k=v,...] [--limit N] [--json]", "List jobs, newest first.");
  p.Option("state", "QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED")
      .Option("labels", "only jobs carrying every key=value pair")
      .Option("limit", "at most this many jobs", "50")
      .Flag("json", "print a JSON array");
  AddServerOption(p);
  if (auto code = ParseOrExit(p, args, "jobs")) return *code;
  const std::string server = ServerAddress(p);
  v1::ListJobsRequest r;
  if (!p.Get("state").empty()) {
    v1::JobState st;
    if (!v1::JobState_Parse(p.Get("state"), &st) || st == v1::JOB_STATE_UNSPECIFIED) {
      return ReportError("jobs", server, absl::InvalidArgumentError("--state: want QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED"));
    }
    r.set_state(st);
  }
  for (absl::string_view kv : absl::StrSplit(p.Get("labels"), ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> pair = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    (*r.mutable_label_selector())[pair.first] = pair.second;
  }
  absl::StatusOr<int64_t> limit = p.GetInt("limit");
  if (!limit.ok() || *limit <= 0) return ReportError("jobs", server, absl::InvalidArgumentError("--limit: want a positive integer"));
  r.set_page_size(static_cast<int32_t>(std::min<int64_t>(*limit, 1000)));
  client::ServiceClient client(server);
  if (auto code = ApplyRetryOption(p, client, "jobs")) return *code;
  absl::StatusOr<v1::ListJobsResponse> list = client.ListJobs(r);
  if (!list.ok()) return ReportError("jobs", server, list.status());
  if (p.GetFlag("json")) {
    nlohmann::json arr = nlohmann::json::array();
    for (const v1::Job& j : list->jobs()) arr.push_back(JobToJson(j));
    std::cout << arr.dump() << std::endl;
    return kExitOk;
  }
  std::cout << absl::StrFormat("%-22s %-10s %4s %-19s %s\n", "JOB", "STATE", "PRIO", "CREATED (UTC)", "DETAIL");
  for (const v1::Job& j : list->jobs()) {
    std::string detail = !j.error().empty() ? j.error() : j.artifact_digest().substr(0, 16);
    std::cout << absl::StrFormat("%-22s %-10s %4d %-19s %s\n", j.job_id(), StateName(j.state()), j.priority(),
                                 FormatTime(j.create_time_ms()), detail);
  }
  return kExitOk;
}

}  // namespace
SQUEEZE_COMMAND("jobs", "list jobs on a coordinator", RunJobs);
}  // namespace squeeze::cli
