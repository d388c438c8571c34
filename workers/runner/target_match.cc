#include "workers/runner/target_match.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace squeeze {

absl::StatusOr<TargetMatcher> TargetMatcher::Create(std::vector<std::string> targets,
                                                    std::vector<std::string> ignore,
                                                    const std::string& path) {
  TargetMatcher m;
  auto build = [&](const std::vector<std::string>& list, const char* field,
                   std::vector<Entry>* out) -> absl::Status {
    for (const std::string& t : list) {
      Entry e;
      e.text = t;
      if (t == "Linear") {
        e.is_class = true;
      } else if (absl::StartsWith(t, "re:")) {
        e.is_regex = true;
        absl::StatusOr<ModuleRegex> re = ModuleRegex::Compile(t.substr(3));
        if (!re.ok()) {
          return absl::InvalidArgumentError(absl::StrCat("recipe: ", path, ".", field, ": invalid regex \"",
                                                         t.substr(3), "\": ", re.status().message()));
        }
        e.re = std::move(*re);
      } else if (t.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("recipe: ", path, ".", field, ": empty entry"));
      }
      out->push_back(std::move(e));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = build(targets, "targets", &m.target_entries_); !s.ok()) return s;
  if (absl::Status s = build(ignore, "ignore", &m.ignore_entries_); !s.ok()) return s;
  m.targets_ = std::move(targets);
  m.ignore_ = std::move(ignore);
  return m;
}

bool TargetMatcher::EntryMatches(const Entry& e, const std::string& name) {
  if (e.is_class) return true;
  if (e.is_regex) return e.re->MatchesFromStart(name);
  return name == e.text || absl::StartsWith(name, e.text + ".");
}

bool TargetMatcher::Matches(const std::string& name) const {
  for (const Entry& e : ignore_entries_) {
    if (EntryMatches(e, name)) return false;
  }
  for (const Entry& e : target_entries_) {
    if (EntryMatches(e, name)) return true;
  }
  return false;
}

}  // namespace squeeze
