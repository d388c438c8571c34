// squeeze: the Squeeze command-line client. `squeeze --help` lists commands.
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "client/cli/command.h"
#include "workers/engine/core/allocator_config.h"

namespace squeeze::cli {

std::vector<Command>& MutableCommands() {
  static std::vector<Command> commands;
  return commands;
}
bool RegisterCommand(Command command) {
  MutableCommands().push_back(std::move(command));
  return true;
}
const std::vector<Command>& Commands() { return MutableCommands(); }

namespace {
void PrintUsage(std::ostream& out) {
  out << "usage: squeeze <command> [options]\n\n"
         "Squeeze compresses LLMs: pruning, quantization, low-rank factorization and\n"
         "distillation, run locally or as jobs on a coordinator.\n\ncommands:\n";
  std::vector<Command> sorted = Commands();
  std::sort(sorted.begin(), sorted.end(), [](const Command& a, const Command& b) { return a.name < b.name; });
  for (const Command& c : sorted) out << absl::StrFormat("  %-12s %s\n", c.name, c.summary);
  out << "\nrun 'squeeze <command> --help' for a command's options.\n"
         "exit codes: 0 ok, 1 job failed, 2 bad usage/input, 3 server unreachable\n";
}
}  // namespace
}  // namespace squeeze::cli

int main(int argc, char** argv) {
  squeeze::ConfigureAllocatorForInference();  // warm heap pages across forward passes
  using namespace squeeze::cli;
  // Global `--server ADDR` before the subcommand: passed on as $SQUEEZE_SERVER,
  // which the service subcommands read (they also take --server themselves).
  // Likewise `--tls-ca FILE` ($SQUEEZE_TLS_CA: TLS, verifying the coordinator
  // with this CA) and `--token TOKEN` ($SQUEEZE_TOKEN: bearer token).
  const std::pair<const char*, const char*> kGlobal[] = {
      {"--server", "SQUEEZE_SERVER"}, {"--tls-ca", "SQUEEZE_TLS_CA"}, {"--token", "SQUEEZE_TOKEN"}};
  // `--insecure-send-token` ($SQUEEZE_INSECURE_SEND_TOKEN=1) lets the token
  // travel without TLS (refused otherwise: client/lib/channel_security.h).
  while (argc >= 2) {
    std::string a = argv[1];
    if (a == "--insecure-send-token") {
      setenv("SQUEEZE_INSECURE_SEND_TOKEN", "1", 1);
      argv += 1;
      argc -= 1;
      continue;
    }
    const char* env = nullptr;
    std::string flag;
    for (const auto& [f, e] : kGlobal) {
      if (a == f || a.rfind(std::string(f) + "=", 0) == 0) {
        env = e;
        flag = f;
      }
    }
    if (env == nullptr) break;
    int used = 1;
    std::string value;
    if (a.size() > flag.size()) {
      value = a.substr(flag.size() + 1);
    } else if (argc >= 3) {
      value = argv[2];
      used = 2;
    } else {
      std::cerr << "squeeze: " << flag << " needs a value\n";
      return kExitUsage;
    }
    setenv(env, value.c_str(), 1);
    argv += used;
    argc -= used;
  }
  if (argc < 2) {
    PrintUsage(std::cerr);
    return kExitUsage;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    PrintUsage(std::cout);
    return kExitOk;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const Command& c : Commands()) {
    if (c.name == name) return c.run(args);
  }
  std::cerr << "squeeze: unknown command \"" << name << "\"\n";
  PrintUsage(std::cerr);
  return kExitUsage;
}
