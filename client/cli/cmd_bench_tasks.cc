// squeeze eval-tasks: zero-shot task accuracy (lm-evaluation-harness scoring),
// agreement with a reference model and the analytic cost of a local model.
//   squeeze eval-tasks --model PATH [--tokenizer FILE] [--tasks arc_easy,piqa,...]
//                      [--data-dir DIR] [--limit N] [--seq-len N] [--no-bos]
//                      [--reference PATH --kl-text FILE [--kl-seq-len N] [--kl-chunks N]]
//                      [--cost-context N] [--latency [--latency-batch 1,8] ...] [--json]
// Task names resolve against --data-dir, else $SQUEEZE_TASKS_DIR (no
// compile-time default); --tasks "" scores no task (cost / latency only).
// --json prints ONE object: {"tasks": {name: {format, n, acc, acc_stderr,
// acc_norm, acc_norm_stderr[, perplexity, token_perplexity]}}, "cost": {...},
// "agreement": {...} (with --reference), "latency": {...} (with --latency),
// "seconds"}.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "client/cli/args.h"
#include "client/cli/command.h"
#include "client/cli/gguf_weights_flag.h"
#include "client/cli/packed_activations_flag.h"
#include "workers/runner/report_eval.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/eval/agreement.h"
#include "workers/engine/eval/cost.h"
#include "workers/engine/eval/latency.h"
#include "workers/engine/eval/loaded_model.h"
#include "workers/engine/eval/task_files.h"
#include "workers/engine/eval/tasks.h"

namespace squeeze::cli {
namespace {

int Fail(const absl::Status& s) {
  std::cerr << "squeeze eval-tasks: " << s.message() << "\n";
  return absl::IsInvalidArgument(s) || absl::IsNotFound(s) ? kExitUsage : kExitJobFailed;
}

int RunEvalTasks(const std::vector<std::string>& args) {
  ArgParser p("squeeze eval-tasks --model PATH [options]",
              "Zero-shot multiple-choice / schema / LAMBADA-style accuracy scored like lm-evaluation-harness\n"
              "(acc, acc_norm, stderr), agreement (KL, top-1) with a reference model, and the analytic cost\n"
              "(parameters, bytes, FLOPs per token) of a local model.");
  p.Option("model", "model: Hugging Face directory or llama2.c .bin", "", true)
      .Option("tokenizer", "tokenizer file (default: the one found beside the model)")
      .Option("tasks", "comma-separated task names (files DIR/NAME.jsonl) or .jsonl paths",
              "arc_easy,piqa,lambada_openai")
      .Option("data-dir", "directory of the task files (default: $SQUEEZE_TASKS_DIR)")
      .Option("limit", "score only the first N examples of each task (0 = all)", "0")
      .Option("delimiter", "text between the query/context and the choice", " ")
      .Option("seq-len", "context length (default: the model's)", "0")
      .Flag("no-bos", "do not prepend BOS (lm-eval's Hugging Face default)")
      .Option("reference", "reference model for KL divergence / top-1 agreement")
      .Option("kl-text", "UTF-8 text for the agreement measurement (needed with --reference)")
      .Option("kl-seq-len", "chunk length for the agreement (default: the models' context length)", "0")
      .Option("kl-chunks", "chunks at most for the agreement (0 = all)", "0")
      .Option("cost-context", "context length for FLOPs per token (default: the model's)", "0")
      .Flag("latency", "measure prefill / decode latency (engine/eval/latency.h)")
      .Option("latency-batch", "batch sizes for --latency", "1,8")
      .Option("latency-prompt", "prompt tokens per sequence for --latency", "64")
      .Option("latency-decode", "decode steps per sequence for --latency", "32")
      .Option("latency-reps", "timed repetitions for --latency (after 1 warm-up)", "5")
      .Flag("json", "print one JSON object with keys tasks, cost, agreement, seconds");
  AddPackedActivationsOption(p);
  AddGgufWeightsOption(p);
  if (auto exit = ParseOrExit(p, args, "eval-tasks")) return *exit;
  auto packed_act = GetPackedActivations(p);
  if (!packed_act.ok()) return Fail(packed_act.status());
  auto load_options = GetLoadModelOptions(p);
  if (!load_options.ok()) return Fail(load_options.status());
  auto limit = p.GetInt("limit");
  auto seq_len = p.GetInt("seq-len");
  auto kl_seq = p.GetInt("kl-seq-len");
  auto kl_chunks = p.GetInt("kl-chunks");
  auto cost_ctx = p.GetInt("cost-context");
  auto lat_prompt = p.GetInt("latency-prompt");
  auto lat_decode = p.GetInt("latency-decode");
  auto lat_reps = p.GetInt("latency-reps");
  for (const absl::Status& s : {limit.status(), seq_len.status(), kl_seq.status(), kl_chunks.status(),
                                cost_ctx.status(), lat_prompt.status(), lat_decode.status(), lat_reps.status()}) {
    if (!s.ok()) return Fail(s);
  }
  LatencyOptions lat;
  lat.prompt_len = static_cast<int>(*lat_prompt);
  lat.decode_tokens = static_cast<int>(*lat_decode);
  lat.repetitions = static_cast<int>(*lat_reps);
  lat.batch_sizes.clear();
  for (absl::string_view b : absl::StrSplit(p.Get("latency-batch"), ',', absl::SkipWhitespace())) {
    int v = 0;
    if (!absl::SimpleAtoi(b, &v) || v < 1) {
      std::cerr << "squeeze eval-tasks: --latency-batch: \"" << b << "\" is not a batch size >= 1\n";
      return kExitUsage;
    }
    lat.batch_sizes.push_back(v);
  }
  if (*limit < 0 || *seq_len < 0 || *kl_seq < 0 || *kl_chunks < 0 || *cost_ctx < 0) {
    std::cerr << "squeeze eval-tasks: numeric options must be >= 0\n";
    return kExitUsage;
  }
  if (p.Get("reference").empty() != p.Get("kl-text").empty()) {
    std::cerr << "squeeze eval-tasks: --reference and --kl-text go together\n";
    return kExitUsage;
  }
  // Load every task file before the model, so a typo fails fast.
  std::vector<Task> tasks;
  std::vector<std::string> task_paths;
  if (!p.Get("tasks").empty()) {
    auto paths = ResolveTaskFiles(p.Get("tasks"), p.Get("data-dir"));
    if (!paths.ok()) return Fail(paths.status());
    task_paths = *paths;
  }
  for (const std::string& path : task_paths) {
    auto t = LoadTaskFile(path, *limit, p.Get("delimiter"));
    if (!t.ok()) return Fail(t.status());
    tasks.push_back(*std::move(t));
  }
  auto loaded = LoadModelAndTokenizer(p.Get("model"), p.Get("tokenizer"), *load_options);
  if (!loaded.ok()) return Fail(loaded.status());
  ApplyPackedActivations(loaded->model, *packed_act);  // the --reference model keeps fp32
  const auto t0 = std::chrono::steady_clock::now();
  TaskOptions opt;
  opt.add_bos = !p.GetFlag("no-bos");
  opt.seq_len = static_cast<int>(*seq_len);
  nlohmann::json j;
  j["tasks"] = nlohmann::json::object();
  for (const Task& task : tasks) {
    if (isatty(STDERR_FILENO)) {
      opt.progress = [&task](int64_t done, int64_t total) {
        std::cerr << absl::StrFormat("\r%s: %d/%d", task.name, done, total) << (done == total ? "\n" : "")
                  << std::flush;
      };
    }
    auto r = EvaluateTask(loaded->model, *loaded->tokenizer, task, opt);
    if (!r.ok()) return Fail(r.status());
    nlohmann::json t = {{"format", TaskFormatName(r->format)}, {"n", r->n},
                        {"acc", r->acc},                     {"acc_stderr", r->acc_stderr},
                        {"acc_norm", r->acc_norm},           {"acc_norm_stderr", r->acc_norm_stderr}};
    if (r->format == TaskFormat::kLanguageModeling) {
      t["perplexity"] = r->perplexity;
      t["token_perplexity"] = r->token_perplexity;
    }
    j["tasks"][task.name] = t;
    if (!p.GetFlag("json")) {
      std::cout << absl::StrFormat("%-16s n=%-5d acc %.4f ± %.4f   acc_norm %.4f ± %.4f", task.name, r->n, r->acc,
                                   r->acc_stderr, r->acc_norm, r->acc_norm_stderr);
      if (r->format == TaskFormat::kLanguageModeling) {
        std::cout << absl::StrFormat("   perplexity %.3f (per token %.3f)", r->perplexity, r->token_perplexity);
      }
      std::cout << "\n";
    }
  }
  const ModelCost c = ComputeModelCost(loaded->model, static_cast<int>(*cost_ctx));
  j["cost"] = {{"context_len", c.context_len},
               {"params_total", c.params_total},
               {"params_nonzero", c.params_nonzero},
               {"bytes_in_memory", c.bytes_total},
               {"macs_per_token", c.macs_per_token},
               {"flops_per_token", c.flops_per_token},
               {"ideal_flops_per_token", c.ideal_flops_per_token},
               {"prefill_flops_per_token", c.prefill_flops_per_token},
               {"macs_linears", c.macs_linears},
               {"macs_attention", c.macs_attention},
               {"macs_head", c.macs_head}};
  for (const auto& [kind, k] : c.by_kind) {
    j["cost"]["by_kind"][kind] = {{"layers", k.layers}, {"params", k.params}, {"nonzero", k.nonzero},
                                  {"bytes", k.bytes},   {"kernel_macs", k.kernel_macs}, {"ideal_macs", k.ideal_macs}};
  }
  if (!p.GetFlag("json")) {
    std::cout << absl::StrFormat(
        "cost: %d parameters (%d non-zero), %d bytes in memory, %d FLOPs/token at context %d "
        "(ideal %d; prefill mean %.0f)\n",
        c.params_total, c.params_nonzero, c.bytes_total, c.flops_per_token, c.context_len, c.ideal_flops_per_token,
        c.prefill_flops_per_token);
  }
  if (!p.Get("reference").empty()) {
    auto ref = LoadModelAndTokenizer(p.Get("reference"), p.Get("tokenizer"), *load_options);
    if (!ref.ok()) return Fail(ref.status());
    auto text = ReadFileToString(p.Get("kl-text"));
    if (!text.ok()) return Fail(text.status());
    AgreementOptions ao;
    ao.seq_len = static_cast<int>(*kl_seq);
    ao.max_chunks = *kl_chunks;
    auto a = EvaluateAgreement(ref->model, loaded->model, *loaded->tokenizer, *text, ao);
    if (!a.ok()) return Fail(a.status());
    j["agreement"] = {{"positions", a->positions},     {"chunks", a->chunks},
                      {"mean_kl", a->mean_kl},         {"kl_stderr", a->kl_stderr},
                      {"median_kl", a->median_kl},     {"p99_kl", a->p99_kl},
                      {"max_kl", a->max_kl},           {"top1_agreement", a->top1_agreement},
                      {"top1_stderr", a->top1_stderr}, {"reference_perplexity", a->reference_perplexity},
                      {"model_perplexity", a->model_perplexity}};
    if (!p.GetFlag("json")) {
      std::cout << absl::StrFormat(
          "agreement: mean KL %.6g ± %.3g (median %.6g, p99 %.6g, max %.6g), top-1 %.4f over %d positions; "
          "perplexity reference %.4f, model %.4f\n",
          a->mean_kl, a->kl_stderr, a->median_kl, a->p99_kl, a->max_kl, a->top1_agreement, a->positions,
          a->reference_perplexity, a->model_perplexity);
    }
  }
  if (p.GetFlag("latency")) {
    auto l = MeasureLatency(loaded->model, lat);
    if (!l.ok()) return Fail(l.status());
    j["latency"] = LatencyJson(*l);
    if (!p.GetFlag("json")) {
      for (const LatencyPoint& lp : l->points) {
        std::cout << absl::StrFormat(
            "latency batch %d: prefill %.0f tok/s (%.4f ms/token), decode %.4f ms/token p50 (p90 %.4f), %.0f tok/s\n",
            lp.batch, lp.prefill_tokens_per_s, lp.prefill_ms_per_token_p50, lp.decode_ms_per_token_p50,
            lp.decode_ms_per_token_p90, lp.decode_tokens_per_s);
      }
      std::cout << absl::StrFormat("memory: model %d bytes, KV cache %d bytes, peak RSS %d bytes (%d threads)\n",
                                   l->model_bytes, l->kv_cache_bytes, l->peak_rss_bytes, l->threads);
    }
  }
  j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (p.GetFlag("json")) std::cout << j.dump() << "\n";
  return kExitOk;
}

}  // namespace
}  // namespace squeeze::cli

SQUEEZE_COMMAND("eval-tasks", "zero-shot task accuracy, KL agreement and FLOPs of a local model",
                squeeze::cli::RunEvalTasks);
