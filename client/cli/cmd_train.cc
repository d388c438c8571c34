// squeeze train --config FILE [--json]: pre-trains (or distills) a Llama-family
// model with the engine's training loop (workers/engine/train/train_config.h
// documents the YAML). Progress (step, loss, lr, tokens/s, ETA) goes to
// stderr; the result is an HF checkpoint in OUT_DIR/model that every other
// command loads. SIGTERM / SIGINT write a checkpoint (when checkpoint_every
// is set) and exit 1; rerunning the same command resumes bit-identically.
#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "client/cli/args.h"
#include "client/cli/command.h"
#include "workers/engine/train/train_config.h"

namespace squeeze::cli {
namespace {

std::atomic<bool> g_train_stop{false};
void OnTrainStopSignal(int) { g_train_stop.store(true); }

int RunTrain(const std::vector<std::string>& args) {
  ArgParser p("squeeze train --config FILE [--json]",
              "Trains a model from a YAML config: from scratch, from a checkpoint, or by distillation.");
  p.Option("config", "YAML training config (see README, Training)", "", true)
      .Option("log-every", "print progress every N steps", "10")
      .Flag("json", "print one JSON object with the result");
  if (auto exit = ParseOrExit(p, args, "train")) return *exit;
  auto log_every = p.GetInt("log-every");
  if (!log_every.ok() || *log_every <= 0) {
    std::cerr << "squeeze train: --log-every must be a positive integer\n";
    return kExitUsage;
  }
  auto config = train::LoadTrainConfig(p.Get("config"));
  if (!config.ok()) {
    std::cerr << "squeeze train: " << config.status().message() << "\n";
    return kExitUsage;
  }
  std::signal(SIGTERM, OnTrainStopSignal);
  std::signal(SIGINT, OnTrainStopSignal);
  const auto start = std::chrono::steady_clock::now();
  int64_t first_step = -1;
  const int64_t total = config->options.steps;
  auto result = train::RunTraining(*config, [&](const train::StepLog& l) {
    if (first_step < 0) first_step = l.step - 1;
    if (l.step % *log_every != 0 && l.step != total) return;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double per_step = secs / static_cast<double>(l.step - first_step);
    std::cerr << absl::StrFormat("step %d/%d  loss %.4f  lr %.2e  grad_norm %.3f  %.0f tok/s  ETA %.0fs\n", l.step,
                                 total, l.loss, l.lr, l.grad_norm, l.tokens_per_second, per_step * (total - l.step));
  }, &g_train_stop);
  if (!result.ok()) {
    std::cerr << "squeeze train: " << result.status().message() << "\n";
    if (absl::IsCancelled(result.status())) {
      std::cerr << "squeeze train: rerun the same command to resume from the last checkpoint\n";
      return kExitJobFailed;
    }
    return absl::IsInvalidArgument(result.status()) || absl::IsNotFound(result.status()) ? kExitUsage
                                                                                          : kExitJobFailed;
  }
  if (p.GetFlag("json")) {
    nlohmann::json j;
    j["steps"] = result->steps_done;
    j["resumed"] = result->resumed;
    j["first_loss"] = result->first_loss;
    j["final_loss"] = result->final_loss;
    j["model_dir"] = result->model_dir;
    std::cout << j.dump() << "\n";
  } else {
    std::cout << absl::StrFormat("trained %d steps (%s): loss %.4f -> %.4f; model in %s\n", result->steps_done,
                                 result->resumed ? "resumed" : "fresh", result->first_loss, result->final_loss,
                                 result->model_dir);
  }
  return kExitOk;
}

}  // namespace
}  // namespace squeeze::cli

SQUEEZE_COMMAND("train", "train or distill a model from a YAML config", squeeze::cli::RunTrain);
