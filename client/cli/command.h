// The `squeeze` CLI's subcommand registry. Each subcommand lives in its own
// file and registers itself with SQUEEZE_COMMAND; main.cc dispatches on argv[1].
//
// Exit codes (an interface scripts rely on):
//   0 success, 1 job failed, 2 bad usage or bad input, 3 server unreachable.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace squeeze::cli {

enum ExitCode : int { kExitOk = 0, kExitJobFailed = 1, kExitUsage = 2, kExitUnreachable = 3 };

struct Command {
  std::string name;     // "eval"
  std::string summary;  // one line for `squeeze --help`
  // args excludes the program and subcommand names.
  std::function<int(const std::vector<std::string>& args)> run;
};

// Adds a command at static-initialisation time; returns true.
bool RegisterCommand(Command command);
const std::vector<Command>& Commands();

}  // namespace squeeze::cli

#define SQUEEZE_CONCAT2_(a, b) a##b
#define SQUEEZE_CONCAT_(a, b) SQUEEZE_CONCAT2_(a, b)
// SQUEEZE_COMMAND("eval", "evaluate perplexity", RunEval);
#define SQUEEZE_COMMAND(name, summary, fn)                                     \
  static const bool SQUEEZE_CONCAT_(squeeze_command_registered_, __LINE__) = \
      ::squeeze::cli::RegisterCommand({name, summary, fn})
