// squeeze download JOB --out DIR: fetch a finished job's artifact directory.
#include <iostream>

#include "client/cli/service/common.h"

namespace squeeze::cli {
namespace {

int RunDownload(const std::vector<std::string>& args) {
  ArgParser p("squeeze download JOB --out DIR",
              "Download the artifact of a SUCCEEDED job (config, weights, tokenizer, recipe.yaml,\n"
              "report.json). Every file is checked against its sha256; an interrupted download\n"
              "resumes where it stopped when run again.");
  p.Positional("JOB", "job id").Option("out", "output directory", "", true);
  AddServerOption(p);
  if (auto code = ParseOrExit(p, args, "download")) return *code;
  const std::string server = ServerAddress(p);
  client::ServiceClient client(server);
  if (auto code = ApplyRetryOption(p, client, "download")) return *code;
  absl::StatusOr<std::string> digest = client.DownloadJobArtifact(p.Get("JOB"), p.Get("out"));
  if (!digest.ok()) return ReportError("download", server, digest.status());
  std::cout << "downloaded " << p.Get("JOB") << " (" << *digest << ") to " << p.Get("out") << "\n";
  return kExitOk;
}

}  // namespace
SQUEEZE_COMMAND("download", "download a job's artifact directory", RunDownload);
}  // namespace squeeze::cli
