// The evaluation stage of a job: what report.json says about quality, cost and
// scores of the dense model and the compressed one. Plain C++ (no gRPC); the
// stage runner drives it:
//
//   ReportEvaluator ev(options.report, pool);
//   ev.EvaluateDense(dense_model, tokenizer, eval_docs, ppl_before)     before the stages
//   ev.EvaluateCompressed(model, tokenizer, eval_docs, ppl_after)       after them
//   ev.EvaluateAgreement(dense_reloaded, model, tokenizer, eval_text)   optional
//   ev.AddDeterministic(&report)   -> keys quality, cost, scores (artifact report.json)
//   ev.AddMeasured(&report, timings)  -> latency, HULK cost, stage seconds
//
// Determinism: the artifact's report.json (and report.md, pareto.svg rendered
// from it) must be byte-identical across runs with the same inputs, so it
// holds only deterministic figures: perplexities, task scores, KL agreement,
// analytic FLOPs / bytes / parameters, compression ratios, the ELUE-style
// score (from analytic FLOPs) and the Pareto fronts over bytes and FLOPs.
// Measured figures (latency, peak RSS, wall / CPU seconds, the HULK-style
// cost, the Pareto front over latency) go only into the report the runner
// returns (RunResult.report), which the worker sends to the coordinator
// (GetReport / `squeeze report JOB`) and `squeeze run` prints.
//
// report.json sections (the top-level keys):
//   quality: perplexity {protocol, seq_len, tokens, dense, compressed, ...},
//            tasks {name: {format, n, examples (sampled indices or null = the
//            first n), dense {acc, ...}, compressed {...}}}, agreement {mean_kl,
//            top1_agreement, ...} (KL(dense || compressed), llama.cpp style)
//   cost:    context_len, dense / compressed {params_total, params_nonzero,
//            bytes_in_memory, flops_per_token, ideal_flops_per_token,
//            prefill_flops_per_token, macs_*, by_kind}, skippable_flops (which
//            FLOPs a kernel can skip today: none), [measured: latency
//            {dense, compressed}, peak_rss_bytes]
//   scores:  compression_ratio (dense bytes / compressed bytes, in memory),
//            param_ratio (non-zero), flops_ratio, ideal_flops_ratio,
//            task_scores {dense, compressed} (percent, see efficiency.h),
//            elue {score, per_task, baseline, references}, pareto {bytes,
//            flops[, latency]}, [measured: hulk]
//   stages:  the runner's per-stage list; [measured: wall_s, cpu_s, gpu_s,
//            device per stage: device "cuda" when some of the stage's work ran
//            on the GPU (gpu_modules of its modules; cpu_fallbacks ran on the
//            CPU although the run's device is cuda, device_notes say why),
//            else "cpu" with gpu_s 0; gpu_s = host wall seconds of the GPU
//            phases (engine/device/device.h ProcessGpuSeconds), not an estimate]
//   device:  [measured] {requested, selected, description, reason}: the run's
//            device (RunOptions::device)
//   quality.evaluation: the evaluation options (tasks, task_limit, task_seed,
//            agreement, latency, packed_activations); quality.task_samples {name: {file_sha256,
//            subset_sha256, n, seed}}: which examples were scored
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/eval/agreement.h"
#include "workers/engine/eval/cost.h"
#include "workers/engine/eval/efficiency.h"
#include "workers/engine/eval/latency.h"
#include "workers/engine/eval/perplexity.h"
#include "workers/engine/eval/tasks.h"
#include "workers/engine/model/model.h"
#include "workers/engine/tokenizer/tokenizer.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/runner/device_usage.h"

namespace squeeze {

struct ReportOptions {
  // Zero-shot task files (llm-foundry JSONL, engine/eval/tasks.h).
  std::vector<std::string> task_paths;
  // Examples per task; 0 = all. With task_seed set, a seeded sample of
  // task_limit examples (indices recorded in the report); else the first.
  int64_t task_limit = 0;
  std::optional<uint64_t> task_seed;
  bool agreement = true;  // KL / top-1 vs the dense model (needs eval text)
  int agreement_max_chunks = 16;
  bool latency = true;    // measured latency of both models
  // How the compressed model's packed int4 / int8 layers multiply while it is
  // evaluated (perplexity after, tasks, agreement, latency); the dense model
  // has none. Recorded as quality.evaluation.packed_activations.
  PackedActivations packed_activations = PackedActivations::kFp32;
  LatencyOptions latency_options;  // prompt_len / decode_tokens clamped to the context
  int cost_context = 0;   // FLOPs at this context; 0 = the eval window (or the model's context)
};

// Loads the task files, sampling as the options say; errors name the file.
struct SampledTask {
  Task task;
  std::vector<int64_t> indices;  // empty: the first task.examples.size() of the file
  std::string path;              // the task file
  std::string file_sha256;       // of the task file's bytes
  // The subset's identity: sha256 of "<file_sha256>\n<indices as JSON>" (or
  // "<file_sha256>\nfirst <n>" for the first n). Two jobs scored the same
  // examples exactly when their subset hashes are equal.
  std::string subset_sha256;
};
absl::StatusOr<std::vector<SampledTask>> LoadReportTasks(const ReportOptions& options);

// Task score in percent used by the scores: acc_norm (multiple choice,
// schema) or acc (language modelling) times 100.
double TaskScorePercent(const TaskResult& r);

// Process CPU seconds (user + system) so far, from getrusage.
double ProcessCpuSeconds();

// Device figures of one stage: GPU seconds and what its modules ran on.
struct StageDeviceFigures {
  double gpu_s = 0;
  StageDeviceUsage usage;
};
// The run's device and per-stage figures ("stage:<name>" keys, as
// stage_seconds) for AddMeasured.
struct MeasuredDevice {
  std::string requested = "auto";  // DeviceRequestName
  std::string selected = "cpu";    // DeviceKindName
  std::string description = "cpu";
  std::string reason;
  std::map<std::string, StageDeviceFigures> stages;
};

class ReportEvaluator {
 public:
  ReportEvaluator(const ReportOptions& options, ThreadPool& pool) : options_(options), pool_(pool) {}

  // Loads the task files (call first: a bad file fails before any work).
  absl::Status Prepare();
  // `ppl` may be null (no eval text). tokenizer may be null when there are
  // no tasks.
  absl::Status EvaluateDense(const Model& model, const Tokenizer* tokenizer, const PerplexityResult* ppl,
                             int ppl_seq_len);
  absl::Status EvaluateCompressed(const Model& model, const Tokenizer* tokenizer, const PerplexityResult* ppl);
  absl::Status EvaluateAgreement(const Model& dense, const Model& compressed, const Tokenizer& tokenizer,
                                 const std::string& text);
  bool wants_agreement() const { return options_.agreement; }

  void AddDeterministic(nlohmann::json* report) const;
  // stage_seconds: "stage:<name>" -> {wall, cpu}; job_wall_s / job_cpu_s: the
  // whole run in this process.
  // `device`: the run's device and per-stage GPU figures; without it every
  // stage is reported as run on the CPU (gpu_s 0).
  void AddMeasured(nlohmann::json* report, const std::map<std::string, std::pair<double, double>>& stage_seconds,
                   double job_wall_s, double job_cpu_s) const;
  void AddMeasured(nlohmann::json* report, const std::map<std::string, std::pair<double, double>>& stage_seconds,
                   double job_wall_s, double job_cpu_s, const MeasuredDevice& device) const;

 private:
  struct Side {
    bool done = false;
    ModelCost cost;
    std::optional<PerplexityResult> ppl;
    std::vector<TaskResult> tasks;
    std::optional<LatencyResult> latency;
  };
  absl::Status Evaluate(const Model& model, const Tokenizer* tokenizer, const PerplexityResult* ppl, Side* side);
  VariantPoint Point(const std::string& name, const Side& side) const;

  const ReportOptions& options_;
  ThreadPool& pool_;
  std::vector<SampledTask> tasks_;
  int context_ = 0;
  int ppl_seq_len_ = 0;
  Side dense_, compressed_;
  std::optional<AgreementResult> agreement_;
};

// JSON of one engine result (also used by the CLI).
nlohmann::json CostJson(const ModelCost& c);
nlohmann::json TaskResultJson(const TaskResult& r);
nlohmann::json AgreementJson(const AgreementResult& a);
nlohmann::json LatencyJson(const LatencyResult& l);

}  // namespace squeeze
