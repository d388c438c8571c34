// squeeze watch JOB: live progress until the job ends (exit 0 SUCCEEDED, 1 not).
#include "client/cli/service/common.h"

namespace squeeze::cli {
namespace {

int RunWatch(const std::vector<std::string>& args) {
  ArgParser p("squeeze watch JOB [--json]",
              "Stream a job's events: a progress bar per stage with ETA, or one JSON object per\n"
              "line with --json. Reconnects after a coordinator restart without missing events.");
  p.Positional("JOB", "job id").Flag("json", "one JSON event per line");
  AddServerOption(p);
  if (auto code = ParseOrExit(p, args, "watch")) return *code;
  client::ServiceClient client(ServerAddress(p));
  if (auto code = ApplyRetryOption(p, client, "watch")) return *code;
  return WatchJob(client, p.Get("JOB"), p.GetFlag("json"), "watch");
}

}  // namespace
SQUEEZE_COMMAND("watch", "stream a job's progress until it ends", RunWatch);
}  // namespace squeeze::cli
