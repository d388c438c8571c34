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
absl::StatusOr<std::vector<std::string>> ResolveTaskFiles(const std::string& names, const std::string& data_dir);

}  // namespace squeeze
