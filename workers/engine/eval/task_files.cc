#include "workers/engine/eval/task_files.h"

#include <cstdlib>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace squeeze {

absl::StatusOr<std::vector<std::string>> ResolveTaskFiles(const std::string& names, const std::string& data_dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  std::string dir = data_dir;
  const char* how = "--data-dir";
  if (dir.empty()) {
    const char* env = std::getenv(kTasksDirEnv);
    if (env != nullptr) dir = env;
    how = kTasksDirEnv;
  }
  for (absl::string_view raw : absl::StrSplit(names, ',', absl::SkipWhitespace())) {
    const std::string name(absl::StripAsciiWhitespace(raw));
    std::string path = name;
    if (!absl::EndsWith(name, ".jsonl") && !absl::EndsWith(name, ".txt")) {
      if (dir.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("task \"", name, "\": no task directory; pass --data-dir DIR or set ",
                                                       kTasksDirEnv, " (e.g. ../shared/data/tasks)"));
      }
      std::error_code ec;
      if (!fs::is_directory(dir, ec)) {
        return absl::InvalidArgumentError(absl::StrCat(how, " ", dir, ": not a directory"));
      }
      path = absl::StrCat(dir, "/", name, ".jsonl");
      for (const ClozeTextTask& c : kClozeTextTasks) {
        if (name == c.name && !fs::is_regular_file(path, ec)) {
          path = (fs::path(dir) / ".." / c.path).lexically_normal().string();
        }
      }
    }
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      return absl::InvalidArgumentError(absl::StrCat("task \"", name, "\": ", path, " does not exist"));
    }
    out.push_back(path);
  }
  if (out.empty()) return absl::InvalidArgumentError("--tasks: no task names given");
  return out;
}

}  // namespace squeeze
