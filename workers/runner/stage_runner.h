// The stage runner: applies a recipe to a model, layer by layer, and writes
// the compressed model as an HF-style artifact directory. Plain C++ (no gRPC):
// `squeeze run` calls it in-process and squeeze-worker calls it for a lease.
//
// Flow: load the model (dense or a runner artifact) -> [perplexity before, if
// eval text] -> for each stage: for each block (then the untied lm_head):
// apply the stage's modifiers to the modules they target -> [perplexity after]
// -> write output_dir:
//   config.json, model.safetensors   SaveModel (packed layers stored as is)
//   <tokenizer file>                 copied from beside the input model
//   recipe.yaml                      SerializeRecipe(recipe)
//   report.json                      per stage / layer / module figures, sizes,
//                                    perplexities, and the evaluation stage's
//                                    quality / cost / scores (report_eval.h;
//                                    "dense" = the input model); no timings,
//                                    no paths
//   report.md, pareto.svg            rendered from report.json (report_render.h)
// Stages whose modifiers need calibration data run the sequential scheme of
// engine/calib/sequential.h over the calibration text.
//
// Determinism: same recipe + model + calibration / eval text + seed => the
// same bytes in every artifact file. Timings are returned in RunResult only.
//
// Stop / resume: RunControl::RequestStop() (SIGTERM) makes the runner stop at
// the next layer boundary, write a checkpoint into work_dir (the modules
// changed so far + the position + the report so far) and return a status
// for which IsStoppedWithCheckpoint() is true. Calling RunRecipe again with
// the same recipe, inputs and seed and that checkpoint in work_dir resumes
// there and produces artifacts byte-identical to an uninterrupted run. Inputs
// are matched by content (digests), not path: the checkpoint may be copied to
// another machine whose model lives elsewhere (squeeze-worker does that). RequestCancel() stops at
// the next boundary with CancelledError and writes nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/device/device.h"
#include "workers/runner/recipe.h"
#include "workers/runner/report_eval.h"

namespace squeeze {

struct RunOptions {
  std::string model_path;       // HF directory or llama2.c .bin
  std::string output_dir;       // created; must not exist or be empty
  std::string calib_text_path;  // optional; needed only by calibrated modifiers
  std::string eval_text_path;   // optional; perplexity before / after
  // Checkpoints go here. Empty: "<output_dir>.work". Removed on success.
  std::string work_dir;
  // Content identity of the inputs for the checkpoint fingerprint (a worker
  // passes the object-store digests of its task, so a checkpoint made on one
  // machine resumes on another). Empty: computed from the files with
  // ContentDigest (checkpoint.h) when a checkpoint is written or read.
  std::string model_digest;
  std::string calib_digest;
  std::string eval_digest;
  // A checkpoint in work_dir that cannot be used (another run's, damaged):
  // false = fail with its error (squeeze run: the user decides); true = report
  // it as a "checkpoint" progress message, remove it and start from zero
  // (squeeze-worker: a bad checkpoint must not wedge a job).
  bool discard_unusable_checkpoint = false;
  uint64_t seed = 0;            // the recipe's `seed`, when given, wins
  // Perplexity (engine/eval, rolling protocol): the first eval_max_bytes of
  // the eval text (0 = all; cut at a UTF-8 boundary), documents split at
  // lines "<|endoftext|>", windows of eval_seq_len tokens (0 = the model's
  // context length).
  int64_t eval_max_bytes = 65536;
  int eval_seq_len = 0;
  int threads = 0;              // 0: ThreadPool::Default()
  // Where calibration math that has a GPU path runs (GPTQ now;
  // engine/device/device.h): auto = cuda when this build has CUDA and a device
  // is present, else cpu; cuda without one fails before any work with an
  // error naming "device". The device used goes into the measured report
  // (RunResult.report: "device", stages[i].device / gpu_s), never into the
  // artifact.
  DeviceRequest device = DeviceRequest::kAuto;
  // The evaluation stage (report_eval.h): task files, agreement, latency.
  ReportOptions report;
  // Where modifier types are looked up; null = ModifierRegistry::Builtin().
  // (Tests register extra modifiers here.)
  const ModifierRegistry* registry = nullptr;
};

// A progress event. unit "layer": i of n blocks done in `stage` (n includes
// the lm_head pseudo-layer when it is targeted). Other units: "model"
// (load / save) and "eval". metrics: figures of the layer just done
// (mean over its modules).
struct ProgressEvent {
  std::string stage;
  std::string unit;
  int64_t i = 0;
  int64_t n = 0;
  std::string message;
  std::map<std::string, double> metrics;
};

class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  virtual void OnProgress(const ProgressEvent& event) = 0;
};

class NullProgressSink final : public ProgressSink {
 public:
  void OnProgress(const ProgressEvent&) override {}
};

// Thread-safe: any thread (a signal-watching thread, a heartbeat reply) may
// request; the runner polls at layer boundaries.
class RunControl {
 public:
  void RequestStop() { stop_.store(true); }
  void RequestCancel() { cancel_.store(true); }
  bool stop_requested() const { return stop_.load(); }
  bool cancel_requested() const { return cancel_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> cancel_{false};
};

struct RunResult {
  std::string output_dir;
  // The report.json written (deterministic) plus the measured figures
  // (latency, wall / CPU seconds; report_eval.h), which stay out of the artifact.
  nlohmann::json report;
  bool resumed = false;   // started from a checkpoint
  // Wall-clock seconds per phase ("load", "eval_before", "stage:<name>",
  // "eval_after", "save", "total"). Never written into the artifact.
  std::map<std::string, double> timings_s;
};

// RunRecipe runs SplitStagesForCalibration(recipe) (the recipe.yaml stored
// with the artifact is that split recipe).
absl::StatusOr<RunResult> RunRecipe(const Recipe& recipe, const RunOptions& options, ProgressSink& progress,
                                    RunControl& control);

// Splits a stage after every modifier whose ends_calibration_pass() is true
// when a later modifier of that stage needs calibration: the later part
// becomes its own stage named "<stage>.2" (".3", ...) right after it, so its
// statistics are captured through the changed model (SmoothQuant then GPTQ in
// one stage works as in llm-compressor). Other stages are returned as given.
absl::StatusOr<Recipe> SplitStagesForCalibration(const Recipe& recipe, const ModifierRegistry& registry);

// True for the status RunRecipe returns after a graceful stop that saved a
// checkpoint (an AbortedError whose message starts with kStoppedPrefix).
inline constexpr char kStoppedPrefix[] = "stopped at a layer boundary";
bool IsStoppedWithCheckpoint(const absl::Status& status);

}  // namespace squeeze
