#include "client/cli/args.h"

#include <cstdio>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/command.h"

namespace squeeze::cli {

ArgParser& ArgParser::Option(const std::string& name, const std::string& help,
                             const std::string& default_value, bool required) {
  options_[name] = Spec{help, default_value, required, false};
  option_order_.push_back(name);
  return *this;
}

ArgParser& ArgParser::Flag(const std::string& name, const std::string& help) {
  options_[name] = Spec{help, "", false, true};
  option_order_.push_back(name);
  return *this;
}

ArgParser& ArgParser::Positional(const std::string& name, const std::string& help, bool required) {
  positionals_.push_back({name, Spec{help, "", required, false}});
  return *this;
}

absl::Status ArgParser::Parse(const std::vector<std::string>& args) {
  size_t next_positional = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      return absl::OkStatus();
    }
    if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string name = a.substr(2), value;
      bool has_inline_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_inline_value = true;
      }
      auto it = options_.find(name);
      if (it == options_.end()) return absl::InvalidArgumentError(absl::StrCat("unknown option --", name));
      if (it->second.is_flag) {
        if (has_inline_value && value != "true" && value != "false") {
          return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
        }
        values_[name] = has_inline_value ? value : "true";
        continue;
      }
      if (!has_inline_value) {
        if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        value = args[++i];
      }
      values_[name] = value;
      continue;
    }
    if (next_positional >= positionals_.size()) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument \"", a, "\""));
    }
    values_[positionals_[next_positional++].first] = a;
  }
  for (const auto& [name, spec] : options_) {
    if (spec.required && !values_.count(name)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
    }
  }
  for (const auto& [name, spec] : positionals_) {
    if (spec.required && !values_.count(name)) {
      return absl::InvalidArgumentError(absl::StrCat("missing argument ", name));
    }
  }
  return absl::OkStatus();
}

std::string ArgParser::Help() const {
  std::string out = absl::StrCat("usage: ", usage_, "\n\n", description_, "\n");
  if (!positionals_.empty()) {
    out += "\narguments:\n";
    for (const auto& [name, spec] : positionals_) {
      absl::StrAppendFormat(&out, "  %-22s %s\n", name, spec.help);
    }
  }
  out += "\noptions:\n";
  for (const std::string& name : option_order_) {
    const Spec& spec = options_.at(name);
    std::string left = absl::StrCat("--", name, spec.is_flag ? "" : " VALUE");
    std::string right = spec.help;
    if (spec.required) right += " (required)";
    if (!spec.default_value.empty()) absl::StrAppend(&right, " [default: ", spec.default_value, "]");
    absl::StrAppendFormat(&out, "  %-22s %s\n", left, right);
  }
  absl::StrAppendFormat(&out, "  %-22s %s\n", "--help", "show this help");
  return out;
}

bool ArgParser::Has(const std::string& name) const {
  if (values_.count(name)) return true;
  auto it = options_.find(name);
  return it != options_.end() && !it->second.default_value.empty();
}

std::string ArgParser::Get(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  if (auto it = options_.find(name); it != options_.end()) return it->second.default_value;
  return "";
}

bool ArgParser::GetFlag(const std::string& name) const { return Get(name) == "true"; }

absl::StatusOr<int64_t> ArgParser::GetInt(const std::string& name) const {
  int64_t v;
  if (!absl::SimpleAtoi(Get(name), &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": \"", Get(name), "\" is not an integer"));
  }
  return v;
}

absl::StatusOr<double> ArgParser::GetDouble(const std::string& name) const {
  double v;
  if (!absl::SimpleAtod(Get(name), &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": \"", Get(name), "\" is not a number"));
  }
  return v;
}

std::optional<int> ParseOrExit(ArgParser& parser, const std::vector<std::string>& args,
                               const std::string& command_name) {
  absl::Status s = parser.Parse(args);
  if (parser.help_requested()) {
    std::cout << parser.Help();
    return kExitOk;
  }
  if (!s.ok()) {
    std::cerr << "squeeze " << command_name << ": " << s.message() << "\n"
              << "run 'squeeze " << command_name << " --help' for usage\n";
    return kExitUsage;
  }
  return std::nullopt;
}

}  // namespace squeeze::cli
