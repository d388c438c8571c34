// squeeze: the Squeeze command-line client. `squeeze --help` lists commands.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "client/cli/command.h"

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
  using namespace squeeze::cli;
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
