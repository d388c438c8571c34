// Module-name regexes ("re:<pattern>" in recipes and in compressed-tensors
// configs), matched from the start of the name like Python's re.match.
//
// RE2, not std::regex: patterns come from users and from downloaded model
// configs, and a backtracking engine can take exponential time (or overflow
// the stack) on patterns like "(a*)*b" — fuzz_recipe found one. RE2 matches in
// time linear in the name and refuses what it cannot do so (backreferences,
// lookaround), with an error to show the user.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace re2 {
class RE2;
}

namespace squeeze {

class ModuleRegex {
 public:
  // InvalidArgument whose message is RE2's reason (e.g. "missing ): (") when `pattern` does not compile.
  static absl::StatusOr<ModuleRegex> Compile(absl::string_view pattern);

  // True when the pattern matches a prefix of `name` (anchored at the start
  // only, as Python's re.match).
  bool MatchesFromStart(absl::string_view name) const;

 private:
  std::shared_ptr<const re2::RE2> re_;  // shared: copies are cheap and immutable
};

}  // namespace squeeze
