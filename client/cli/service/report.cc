// squeeze report JOB: print the report.json of a SUCCEEDED job.
#include <iostream>

#include "client/cli/service/common.h"

namespace squeeze::cli {
namespace {

int RunReport(const std::vector<std::string>& args) {
  ArgParser p("squeeze report JOB", "Print the report (report.json) of a SUCCEEDED job, pretty-printed.");
  p.Positional("JOB", "job id");
  AddServerOption(p);
  if (auto code = ParseOrExit(p, args, "report")) return *code;
  const std::string server = ServerAddress(p);
  client::ServiceClient client(server);
  absl::StatusOr<v1::GetReportResponse> r = client.GetReport(p.Get("JOB"));
  if (!r.ok()) return ReportError("report", server, r.status());
  try {
    std::cout << nlohmann::json::parse(r->report_json()).dump(2) << "\n";
  } catch (const nlohmann::json::exception&) {
    std::cout << r->report_json() << "\n";
  }
  return kExitOk;
}

}  // namespace
SQUEEZE_COMMAND("report", "print a finished job's report", RunReport);
}  // namespace squeeze::cli
