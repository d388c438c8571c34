// A small declarative option parser for subcommands.
//
// Why not absl flags: absl flags are process-global and cannot be spelled
// with dashes, while the CLI's interface is per-subcommand `--max-tokens`,
// `--seq-len`, ... This parser handles `--name value`, `--name=value`,
// boolean `--flag`, positionals, `--help`, and reports errors with exit 2.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace squeeze::cli {

class ArgParser {
 public:
  ArgParser(std::string usage, std::string description)
      : usage_(std::move(usage)), description_(std::move(description)) {}

  // Declares an option taking a value; `default_value` empty = no default.
  ArgParser& Option(const std::string& name, const std::string& help,
                    const std::string& default_value = "", bool required = false);
  // Declares a boolean switch (`--json`).
  ArgParser& Flag(const std::string& name, const std::string& help);
  // Declares a named positional argument (in order).
  ArgParser& Positional(const std::string& name, const std::string& help, bool required = true);

  // Parses args. Returns InvalidArgument naming the option on bad input.
  // When `--help` is given, help_requested() is true and nothing is checked.
  absl::Status Parse(const std::vector<std::string>& args);
  bool help_requested() const { return help_; }
  std::string Help() const;

  bool Has(const std::string& name) const;         // given or defaulted
  std::string Get(const std::string& name) const;  // "" when absent
  bool GetFlag(const std::string& name) const;
  absl::StatusOr<int64_t> GetInt(const std::string& name) const;
  absl::StatusOr<double> GetDouble(const std::string& name) const;

 private:
  struct Spec {
    std::string help;
    std::string default_value;
    bool required = false;
    bool is_flag = false;
  };
  std::string usage_, description_;
  std::map<std::string, Spec> options_;
  std::vector<std::string> option_order_;
  std::vector<std::pair<std::string, Spec>> positionals_;
  std::map<std::string, std::string> values_;
  bool help_ = false;
};

// Parses args into `parser`; on --help prints help and returns kExitOk, on an
// error prints "squeeze <cmd>: <message>" + usage to stderr and returns
// kExitUsage; returns nullopt when the command should go on.
std::optional<int> ParseOrExit(ArgParser& parser, const std::vector<std::string>& args,
                               const std::string& command_name);

}  // namespace squeeze::cli
