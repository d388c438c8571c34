// Helpers for tests that run recipes through the stage runner: fresh output
// directories (temp_dirs.h), a run output's files, the usual options for a
// run on a real model, a quiet run, and a progress sink that stops a run
// part-way.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "tests/common/temp_dirs.h"
#include "workers/engine/core/file_util.h"
#include "workers/runner/stage_runner.h"

namespace squeeze::test_inputs {

// File name -> bytes of every file directly in `dir` (not recursive), to
// compare two run outputs byte for byte.
inline std::map<std::string, std::string> DirContents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& de : std::filesystem::directory_iterator(dir)) {
    out[de.path().filename().string()] = *ReadFileToString(de.path().string());
  }
  return out;
}

// Options for a run of `model` into `out` whose report measures perplexity on
// the first 6000 bytes of `eval_text` in windows of 256 tokens.
inline RunOptions PerplexityRunOptions(const std::string& model, const std::string& out,
                                       const std::string& eval_text) {
  RunOptions o;
  o.model_path = model;
  o.output_dir = out;
  o.eval_text_path = eval_text;
  o.eval_max_bytes = 6000;
  o.eval_seq_len = 256;
  return o;
}

// RunRecipe with no progress listener and no stop request.
inline absl::StatusOr<RunResult> RunQuietly(const Recipe& recipe, const RunOptions& options) {
  NullProgressSink null;
  RunControl control;
  return RunRecipe(recipe, options, null, control);
}

// Requests a stop on `control` at the `n`-th "layer" progress event.
class StopAfter final : public ProgressSink {
 public:
  StopAfter(RunControl& c, int n) : control_(c), n_(n) {}
  void OnProgress(const ProgressEvent& e) override {
    if (e.unit == "layer" && ++seen_ == n_) control_.RequestStop();
  }

 private:
  RunControl& control_;
  int n_;
  int seen_ = 0;
};

}  // namespace squeeze::test_inputs
