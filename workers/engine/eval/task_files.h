// Where task files come from: names resolve against a task directory that is
// given at run time (a flag, else the SQUEEZE_TASKS_DIR environment
// variable), never a path baked in at compile time.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace squeeze {

inline constexpr char kTasksDirEnv[] = "SQUEEZE_TASKS_DIR";

// `names`: comma-separated task names or .jsonl paths (whitespace around
// commas ignored). A name becomes DIR/NAME.jsonl with DIR = data_dir, or
// $SQUEEZE_TASKS_DIR when data_dir is empty. A path ending in ".jsonl" is
// used as given. Errors (InvalidArgument): a name but no directory ("pass
// --data-dir DIR or set SQUEEZE_TASKS_DIR"), a directory that does not
// exist, a task file that does not exist (naming the file), no names.
// Cloze tasks built from text (tasks.h BuildClozeTask): a name in
// kClozeTextTasks, when DIR/NAME.jsonl does not exist, resolves to its text
// file relative to DIR's parent (the ../shared/data layout: DIR = data/tasks),
// e.g. "tinystories_cloze" -> DIR/../tinystories/valid.txt. A path ending in
// ".txt" is used as given (a cloze text file).
struct ClozeTextTask {
  const char* name;  // task name, as LoadTaskFile names the file's task
  const char* path;  // relative to the task directory's parent
};
inline constexpr ClozeTextTask kClozeTextTasks[] = {{"tinystories_cloze", "tinystories/valid.txt"}};

absl::StatusOr<std::vector<std::string>> ResolveTaskFiles(const std::string& names, const std::string& data_dir);

}  // namespace squeeze
