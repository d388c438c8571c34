// Helpers for tests that run recipes through the stage runner: fresh output
// directories (temp_dirs.h), a run output's files, the usual options for a
// run on a real model, a quiet run, and a progress sink that stops a run
// part-way.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "absl/status/statusor.h"
#include "tests/common/synthetic_inputs.h"
#include "tests/common/temp_dirs.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/runner/recipe.h"
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

// The real model and texts under ../shared (SQUEEZE_SHARED_DIR):
// stories260K (HF directory) and TinyStories train / valid text. `ok` is
// false when any is absent (tests then GTEST_SKIP with `missing`).
struct SharedStories {
  std::string model, train, valid, missing;
  bool ok = false;
};
inline SharedStories Stories260K(const std::string& shared_dir) {
  SharedStories s;
  s.model = shared_dir + "/models/stories260K/hf";
  s.train = shared_dir + "/data/tinystories/train.txt";
  s.valid = shared_dir + "/data/tinystories/valid.txt";
  for (const std::string& p : {s.model + "/model.safetensors", s.train, s.valid}) {
    if (!std::filesystem::exists(p)) s.missing = p + " is absent (needs ../shared)";
  }
  s.ok = s.missing.empty();
  return s;
}

// A random Llama with config `c` (MakeRandomModel(c, seed)) and the byte-level
// tokenizer (vocab_size must be 259), saved as an HF directory under a fresh
// test dir; returns its path, or an error.
inline absl::StatusOr<std::string> WriteSyntheticModelDir(const std::string& prefix, const std::string& name,
                                                          const ModelConfig& c, uint64_t seed) {
  const std::string d = FreshTestDir(prefix, name);
  if (absl::Status s = SaveModel(MakeRandomModel(c, seed), d); !s.ok()) return s;
  if (absl::Status s = WriteFileAtomically(d + "/tokenizer.bin", ByteTokenizerBin()); !s.ok()) return s;
  return d;
}

// WordSalad(seed) written to a file under the test temp dir; returns its path.
inline absl::StatusOr<std::string> WriteCalibrationText(const std::string& prefix, uint32_t seed) {
  const std::string p = ::testing::TempDir() + "/" + prefix + "calib_" + std::to_string(seed) + ".txt";
  if (absl::Status s = WriteFileAtomically(p, WordSalad(seed)); !s.ok()) return s;
  return p;
}

// ParseRecipe(yaml), then RunQuietly.
inline absl::StatusOr<RunResult> RunYaml(const std::string& yaml, const RunOptions& options) {
  auto recipe = ParseRecipe(yaml);
  if (!recipe.ok()) return recipe.status();
  return RunQuietly(*recipe, options);
}

// Runs `yaml` with `options` into `full` uninterrupted, then into `resumed`
// stopped after `stop_after` layer events and run again from the checkpoint.
// Errors: any run failing, the stop not leaving a checkpoint, or the second
// run not reporting `resumed`. Compare the outputs with DirContents.
inline absl::Status RunFullAndResumed(const std::string& yaml, RunOptions options, const std::string& full,
                                      const std::string& resumed, int stop_after) {
  auto recipe = ParseRecipe(yaml);
  if (!recipe.ok()) return recipe.status();
  options.output_dir = full;
  if (auto r = RunQuietly(*recipe, options); !r.ok()) return r.status();
  options.output_dir = resumed;
  RunControl stop;
  StopAfter sink(stop, stop_after);
  auto stopped = RunRecipe(*recipe, options, sink, stop);
  if (!IsStoppedWithCheckpoint(stopped.status())) {
    return absl::InternalError("the run did not stop with a checkpoint: " +
                               (stopped.ok() ? std::string("it finished") : std::string(stopped.status().message())));
  }
  auto r = RunQuietly(*recipe, options);
  if (!r.ok()) return r.status();
  if (!r->resumed) return absl::InternalError("the second run did not resume from the checkpoint");
  return absl::OkStatus();
}

}  // namespace squeeze::test_inputs
