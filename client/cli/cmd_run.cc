// squeeze run: runs a recipe in-process, without a coordinator (laptops, CI).
//   squeeze run --recipe FILE --model PATH --out DIR [--calib FILE]
//               [--eval-text FILE] [--seed N] [--work-dir DIR] [--json]
//               [--tasks NAMES [--data-dir DIR] [--task-limit N] [--task-seed N]]
//               [--no-latency] [--no-agreement] [--packed-activations fp32|int8] [--print-report]
//               [--device auto|cpu|cuda]   (where GPTQ runs; engine/device/device.h)
// The evaluation stage (workers/runner/report_eval.h) scores the dense and the
// compressed model; --print-report prints report.md rendered from the full
// report (with the measured latency, which stays out of the artifact).
// Progress: a bar per stage on stderr when it is a terminal, else one line per
// layer. SIGINT / SIGTERM stop at the next layer boundary and leave a
// checkpoint in the work dir; running the same command again resumes.
// Exit codes: 0 ok, 1 the run failed (or was stopped: 130 / 143 after SIGINT /
// SIGTERM), 2 bad usage or input (unreadable / invalid recipe, missing model,
// non-empty output directory). --json prints one object on stdout:
// {"status", "output_dir", "resumed", "report", "timings_s"} or
// {"status": "failed"|"stopped", "error"}.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "client/cli/packed_activations_flag.h"
#include "client/cli/args.h"
#include "client/cli/command.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/eval/task_files.h"
#include "workers/methods/stored_linear.h"
#include "workers/runner/recipe.h"
#include "workers/runner/report_render.h"
#include "workers/runner/stage_runner.h"

namespace squeeze::cli {
namespace {

RunControl* g_control = nullptr;  // set while a run is in progress
volatile std::sig_atomic_t g_signal = 0;

extern "C" void OnStopSignal(int sig) {
  g_signal = sig;
  if (g_control != nullptr) g_control->RequestStop();  // lock-free atomic store
}

class CliProgress final : public ProgressSink {
 public:
  explicit CliProgress(bool tty) : tty_(tty) {}
  void OnProgress(const ProgressEvent& e) override {
    if (e.unit != "layer") {
      if (tty_ && open_bar_) std::cerr << "\n";
      open_bar_ = false;
      std::cerr << absl::StrFormat("%s: %s\n", e.stage, e.message);
      return;
    }
    if (!tty_) {
      std::cerr << absl::StrFormat("%s: %d/%d %s\n", e.stage, e.i, e.n, e.message);
      return;
    }
    constexpr int kWidth = 30;
    const int filled = e.n > 0 ? static_cast<int>(kWidth * e.i / e.n) : kWidth;
    std::cerr << absl::StrFormat("\r\033[K%-14s [%s%s] %d/%d %s", e.stage, std::string(filled, '#'),
                                 std::string(kWidth - filled, ' '), e.i, e.n, e.message);
    open_bar_ = e.i < e.n;
    if (!open_bar_) std::cerr << "\n";
    std::cerr << std::flush;
  }

 private:
  bool tty_;
  bool open_bar_ = false;
};

bool IsInputError(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument || s.code() == absl::StatusCode::kNotFound ||
         s.code() == absl::StatusCode::kFailedPrecondition;
}

int RunRun(const std::vector<std::string>& args) {
  ArgParser p("squeeze run --recipe FILE --model PATH --out DIR [options]",
              "Runs a compression recipe in-process (no coordinator) and writes an HF-style\n"
              "artifact directory: config.json, model.safetensors, tokenizer, recipe.yaml, report.json.");
  p.Option("recipe", "recipe YAML (llm-compressor dialect)", "", true)
      .Option("model", "input model: Hugging Face directory or llama2.c .bin", "", true)
      .Option("out", "output directory (must not exist or be empty)", "", true)
      .Option("calib", "calibration text file (for methods that need data)")
      .Option("eval-text", "evaluation text: perplexity before and after goes into report.json")
      .Option("eval-max-bytes", "score only the first N bytes of the eval text (0 = all)", "65536")
      .Option("seed", "seed (the recipe's seed, when given, wins)", "0")
      .Option("work-dir", "checkpoint directory (default: <out>.work)")
      .Option("threads", "worker threads (0 = SQUEEZE_THREADS or all cores)", "0")
      .Option("device", "where GPTQ runs: auto (cuda when built with CUDA and a GPU is present), cpu, cuda", "auto")
      .Option("tasks", "zero-shot task names (DIR/NAME.jsonl) or .jsonl paths scored on both models")
      .Option("data-dir", "directory of the task files (default: $SQUEEZE_TASKS_DIR)")
      .Option("task-limit", "examples per task (0 = all)", "0")
      .Option("task-seed", "with --task-limit: score a sample drawn with this seed (recorded in the report)")
      .Flag("no-latency", "skip the latency measurement of the dense and compressed model")
      .Flag("no-agreement", "skip the KL / top-1 agreement with the dense model")
      .Flag("print-report", "print the report (Markdown, measured figures included) on stdout")
      .Flag("json", "print one JSON object with the result on stdout");
  AddPackedActivationsOption(p);
  if (auto exit = ParseOrExit(p, args, "run")) return *exit;
  const bool json_out = p.GetFlag("json");
  auto fail = [&](int code, const std::string& status, const std::string& message) {
    std::cerr << "squeeze run: " << message << "\n";
    if (json_out) std::cout << nlohmann::json{{"status", status}, {"error", message}}.dump() << "\n";
    return code;
  };
  auto seed = p.GetInt("seed");
  auto threads = p.GetInt("threads");
  auto eval_max = p.GetInt("eval-max-bytes");
  auto task_limit = p.GetInt("task-limit");
  for (const absl::Status& s : {seed.status(), threads.status(), eval_max.status(), task_limit.status()}) {
    if (!s.ok()) return fail(kExitUsage, "failed", std::string(s.message()));
  }
  if (*task_limit < 0) return fail(kExitUsage, "failed", "--task-limit must be >= 0");
  if (*seed < 0 || *threads < 0 || *eval_max < 0) {
    return fail(kExitUsage, "failed", "--seed, --threads and --eval-max-bytes must be >= 0");
  }
  auto text = ReadFileToString(p.Get("recipe"));
  if (!text.ok()) return fail(kExitUsage, "failed", absl::StrFormat("--recipe %s: %s", p.Get("recipe"), text.status().message()));
  auto recipe = ParseRecipe(*text);
  if (!recipe.ok()) return fail(kExitUsage, "failed", absl::StrFormat("%s: %s", p.Get("recipe"), recipe.status().message()));

  RunOptions o;
  o.model_path = p.Get("model");
  o.output_dir = p.Get("out");
  o.calib_text_path = p.Get("calib");
  o.eval_text_path = p.Get("eval-text");
  o.work_dir = p.Get("work-dir");
  o.seed = static_cast<uint64_t>(*seed);
  o.threads = static_cast<int>(*threads);
  auto device = ParseDeviceRequest(p.Get("device"), "--device");
  if (!device.ok()) return fail(kExitUsage, "failed", std::string(device.status().message()));
  if (auto usable = SelectDevice(*device, "--device"); !usable.ok()) {
    return fail(kExitUsage, "failed", std::string(usable.status().message()));
  }
  o.device = *device;
  o.eval_max_bytes = *eval_max;
  if (!p.Get("tasks").empty()) {
    auto paths = ResolveTaskFiles(p.Get("tasks"), p.Get("data-dir"));
    if (!paths.ok()) return fail(kExitUsage, "failed", std::string(paths.status().message()));
    o.report.task_paths = *paths;
  }
  o.report.task_limit = *task_limit;
  if (!p.Get("task-seed").empty()) {
    auto ts = p.GetInt("task-seed");
    if (!ts.ok() || *ts < 0) return fail(kExitUsage, "failed", "--task-seed: expected an integer >= 0");
    o.report.task_seed = static_cast<uint64_t>(*ts);
  }
  o.report.latency = !p.GetFlag("no-latency");
  o.report.agreement = !p.GetFlag("no-agreement");
  auto packed_act = GetPackedActivations(p);
  if (!packed_act.ok()) return fail(kExitUsage, "failed", std::string(packed_act.status().message()));
  o.report.packed_activations = *packed_act;

  RunControl control;
  g_control = &control;
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  CliProgress progress(isatty(STDERR_FILENO) != 0);
  auto result = RunRecipe(*recipe, o, progress, control);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  g_control = nullptr;

  if (!result.ok()) {
    const absl::Status& s = result.status();
    if (IsStoppedWithCheckpoint(s)) {
      return fail(g_signal == SIGINT ? 130 : 143, "stopped", std::string(s.message()));
    }
    return fail(IsInputError(s) ? kExitUsage : kExitJobFailed, "failed", std::string(s.message()));
  }
  const nlohmann::json& r = result->report;
  if (json_out) {
    std::cout << nlohmann::json{{"status", "succeeded"},
                                {"output_dir", result->output_dir},
                                {"resumed", result->resumed},
                                {"report", r},
                                {"timings_s", result->timings_s}}
                     .dump()
              << "\n";
  } else {
    const auto& before = r["size"]["before"];
    const auto& after = r["size"]["after"];
    std::cout << absl::StrFormat("wrote %s (%.1fs)\n", result->output_dir, result->timings_s["total"]);
    std::cout << absl::StrFormat("linear weights: %d -> %d non-zero, %d -> %d bytes\n",
                                 before["linear_nonzero_params"].get<int64_t>(),
                                 after["linear_nonzero_params"].get<int64_t>(),
                                 before["linear_memory_bytes"].get<int64_t>(),
                                 after["linear_memory_bytes"].get<int64_t>());
    if (r.contains("perplexity") && r["perplexity"].is_object()) {
      std::cout << absl::StrFormat("perplexity: %.4f -> %.4f\n", r["perplexity"]["before"].get<double>(),
                                   r["perplexity"]["after"].get<double>());
    }
    if (r.contains("scores") && r["scores"].is_object()) {
      const auto& sc = r["scores"];
      std::cout << "compression ratio " << (sc["compression_ratio"].is_number() ? absl::StrFormat("%.3f", sc["compression_ratio"].get<double>()) : "-");
      if (sc.contains("elue") && sc["elue"].is_object()) {
        std::cout << absl::StrFormat(", ELUE-style score %+.3f", sc["elue"]["score"].get<double>());
      }
      std::cout << "\n";
    }
    if (p.GetFlag("print-report")) std::cout << "\n" << RenderReportMarkdown(r);
  }
  return kExitOk;
}

}  // namespace

// Every subcommand of this binary (eval, generate, ...) can then load the
// runner's artifacts, whose linears may be packed-integer kinds.
static const bool kMethodLoadersRegistered = (RegisterMethodLinearLoaders(), true);

SQUEEZE_COMMAND("run", "run a compression recipe locally, without a coordinator", RunRun);

}  // namespace squeeze::cli
