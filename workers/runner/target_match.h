// Which linear modules a modifier applies to: llm-compressor's `targets` and
// `ignore` lists. Each entry is one of
//   "Linear"      the class name: every linear layer;
//   "re:<regex>"  a regex matched from the start of the module name (Python's
//                 re.match: anchored at the start, not at the end);
//   a name        a module name, matching that module and every module below
//                 it ("model.layers.3" matches all linears of block 3).
// A module is selected when some target matches and no ignore entry does.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/module_regex.h"

namespace squeeze {

class TargetMatcher {
 public:
  // `path` names the recipe field for errors (an invalid regex).
  static absl::StatusOr<TargetMatcher> Create(std::vector<std::string> targets,
                                              std::vector<std::string> ignore,
                                              const std::string& path);
  bool Matches(const std::string& module_name) const;
  const std::vector<std::string>& targets() const { return targets_; }
  const std::vector<std::string>& ignore() const { return ignore_; }

 private:
  struct Entry {
    std::string text;
    bool is_class = false;
    bool is_regex = false;
    std::optional<ModuleRegex> re;  // set when is_regex
  };
  static bool EntryMatches(const Entry& e, const std::string& name);
  std::vector<std::string> targets_, ignore_;
  std::vector<Entry> target_entries_, ignore_entries_;
};

}  // namespace squeeze
