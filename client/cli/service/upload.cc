// squeeze upload DIR: store a model directory (or a file) on the coordinator.
#include <iostream>

#include "client/cli/service/common.h"

namespace squeeze::cli {
namespace {

int RunUpload(const std::vector<std::string>& args) {
  ArgParser p("squeeze upload PATH [--json]",
              "Upload a model directory (every file below it) or one file, in 1 MiB chunks.\n"
              "Prints the manifest digest to pass to `squeeze submit --model`.");
  p.Positional("PATH", "directory or file").Flag("json", "print a JSON object");
  AddServerOption(p);
  if (auto code = ParseOrExit(p, args, "upload")) return *code;
  const std::string server = ServerAddress(p);
  client::ServiceClient client(server);
  if (auto code = ApplyRetryOption(p, client, "upload")) return *code;
  absl::StatusOr<v1::UploadModelResponse> up = client.UploadPath(p.Get("PATH"));
  if (!up.ok()) return ReportError("upload", server, up.status());
  if (p.GetFlag("json")) {
    std::cout << nlohmann::json{{"digest", up->digest()},
                                {"file_count", up->file_count()},
                                {"total_bytes", up->total_bytes()},
                                {"deduplicated", up->deduplicated()}}
                     .dump()
              << std::endl;
  } else {
    std::cout << up->digest() << "\n";
  }
  return kExitOk;
}

}  // namespace
SQUEEZE_COMMAND("upload", "upload a model directory to a coordinator", RunUpload);
}  // namespace squeeze::cli
