// squeeze generate: offline text generation with a local model.
//   squeeze generate --model PATH [--tokenizer FILE] [--prompt TEXT] --max-tokens N
//                    [--temperature T] [--top-p P] [--seed S] [--json]
// Streams the text to stdout (the prompt first), a summary to stderr; --json
// prints one object instead.
//   squeeze generate --model PATH --prompts-file FILE [options]
// generates for every line of FILE at once (GenerateBatch: one batched
// forward per step); prints each prompt and its text, or with --json one
// object {"results": [...], "batch": B, ...}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "client/cli/args.h"
#include "client/cli/command.h"
#include "client/cli/gguf_weights_flag.h"
#include "client/cli/packed_activations_flag.h"
#include "workers/engine/eval/generate.h"
#include "workers/engine/eval/generate_batch.h"
#include "workers/engine/eval/loaded_model.h"

namespace squeeze::cli {
namespace {

// --prompts-file: every line a prompt, all generated in one batch.
int RunBatch(const LoadedModel& loaded, const std::string& path, const GenerateOptions& opt, bool json) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "squeeze generate: --prompts-file: cannot open " << path << "\n";
    return kExitUsage;
  }
  std::vector<std::string> texts;
  std::vector<std::vector<int>> prompts;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    texts.push_back(line);
    prompts.push_back(loaded.tokenizer->Encode(line, true));
    if (prompts.back().empty()) prompts.back().push_back(loaded.model.config.bos_token_id);
  }
  if (prompts.empty()) {
    std::cerr << "squeeze generate: --prompts-file: " << path << " has no lines\n";
    return kExitUsage;
  }
  auto results = GenerateBatch(loaded.model, *loaded.tokenizer, prompts, opt);
  if (!results.ok()) {
    std::cerr << "squeeze generate: " << results.status().message() << "\n";
    return absl::IsInvalidArgument(results.status()) ? kExitUsage : kExitJobFailed;
  }
  double decode_s = 0;
  size_t tokens = 0, decoded = 0;  // decoded: tokens produced by decode steps (as single-prompt tok/s counts)
  for (const GenerateResult& r : *results) {
    decode_s = std::max(decode_s, r.decode_seconds);  // the steps are shared: the longest stream's
    tokens += r.ids.size();
    decoded += r.ids.empty() ? 0 : r.ids.size() - 1;
  }
  const double decode_tps = decode_s > 0 ? decoded / decode_s : 0.0;
  const double prefill_s = results->front().prefill_seconds;
  if (json) {
    nlohmann::json j;
    j["batch"] = prompts.size();
    j["results"] = nlohmann::json::array();
    for (size_t b = 0; b < results->size(); ++b) {
      const GenerateResult& r = (*results)[b];
      j["results"].push_back({{"prompt", texts[b]},
                              {"text", r.text},
                              {"tokens", r.ids.size()},
                              {"ids", r.ids},
                              {"prompt_tokens", r.prompt_ids.size()},
                              {"stop_reason", r.stop_reason}});
    }
    j["tokens"] = tokens;
    j["seconds"] = prefill_s + decode_s;
    j["tokens_per_second"] = decode_tps;
    j["temperature"] = opt.temperature;
    j["top_p"] = opt.top_p;
    j["seed"] = opt.seed;
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    for (size_t b = 0; b < results->size(); ++b) {
      std::cout << "[" << b << "] " << texts[b] << (*results)[b].text << "\n";
    }
    std::cerr << absl::StrFormat("[batch %d: %d tokens, prefill %.3f s, decode %.1f tok/s]\n", prompts.size(), tokens,
                                 prefill_s, decode_tps);
  }
  return kExitOk;
}

int RunGenerate(const std::vector<std::string>& args) {
  ArgParser p("squeeze generate --model PATH [--prompt TEXT] [--max-tokens N] [options]",
              "Generates text with a local model (HF directory or llama2.c .bin) on the CPU.");
  p.Option("model", "model: Hugging Face directory, llama2.c .bin or .gguf", "", true)
      .Option("tokenizer", "tokenizer file (default: the one found beside the model)")
      .Option("prompt", "text to continue (BOS is prepended)", "")
      .Option("prompts-file", "file of prompts, one per line, generated together in one batch")
      .Option("max-tokens", "new tokens at most", "256")
      .Option("temperature", "sampling temperature; 0 = greedy", "0")
      .Option("top-p", "nucleus sampling mass in (0, 1]", "1")
      .Option("seed", "random seed for sampling", "0")
      .Flag("no-stop", "do not stop at EOS/BOS")
      .Flag("json", "print one JSON object (text, ids, tokens, tokens_per_second, ...)");
  AddPackedActivationsOption(p);
  AddGgufWeightsOption(p);
  if (auto exit = ParseOrExit(p, args, "generate")) return *exit;
  auto load_options = GetLoadModelOptions(p);
  if (!load_options.ok()) {
    std::cerr << "squeeze generate: " << load_options.status().message() << "\n";
    return kExitUsage;
  }
  auto packed_act = GetPackedActivations(p);
  if (!packed_act.ok()) {
    std::cerr << "squeeze generate: " << packed_act.status().message() << "\n";
    return kExitUsage;
  }
  GenerateOptions opt;
  auto max_tokens = p.GetInt("max-tokens");
  auto temperature = p.GetDouble("temperature");
  auto top_p = p.GetDouble("top-p");
  auto seed = p.GetInt("seed");
  for (const absl::Status& s : {max_tokens.status(), temperature.status(), top_p.status(), seed.status()}) {
    if (!s.ok()) {
      std::cerr << "squeeze generate: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  if (*max_tokens < 0 || *top_p <= 0 || *top_p > 1 || *temperature < 0) {
    std::cerr << "squeeze generate: need --max-tokens >= 0, --temperature >= 0 and --top-p in (0, 1]\n";
    return kExitUsage;
  }
  opt.max_tokens = static_cast<int>(*max_tokens);
  opt.temperature = static_cast<float>(*temperature);
  opt.top_p = static_cast<float>(*top_p);
  opt.seed = static_cast<uint64_t>(*seed);
  opt.stop_at_eos = !p.GetFlag("no-stop");
  const bool json = p.GetFlag("json");

  auto loaded = LoadModelAndTokenizer(p.Get("model"), p.Get("tokenizer"), *load_options);
  if (!loaded.ok()) {
    std::cerr << "squeeze generate: " << loaded.status().message() << "\n";
    return kExitUsage;
  }
  ApplyPackedActivations(loaded->model, *packed_act);
  const Tokenizer& tok = *loaded->tokenizer;
  if (!p.Get("prompts-file").empty()) return RunBatch(*loaded, p.Get("prompts-file"), opt, json);
  const std::string prompt = p.Get("prompt");
  std::vector<int> prompt_ids = tok.Encode(prompt, true);
  if (prompt_ids.empty()) prompt_ids.push_back(loaded->model.config.bos_token_id);
  if (!json) {
    std::cout << prompt << std::flush;
  }
  auto result = Generate(loaded->model, tok, prompt_ids, opt, [&](int, const std::string& piece) {
    if (!json) std::cout << piece << std::flush;
  });
  if (!result.ok()) {
    if (!json) std::cout << "\n";
    std::cerr << "squeeze generate: " << result.status().message() << "\n";
    return absl::IsInvalidArgument(result.status()) ? kExitUsage : kExitJobFailed;
  }
  const double decode_tps =
      result->decode_seconds > 0 && result->ids.size() > 1 ? (result->ids.size() - 1) / result->decode_seconds : 0.0;
  const double prefill_tps = result->prefill_seconds > 0 ? prompt_ids.size() / result->prefill_seconds : 0.0;
  if (json) {
    nlohmann::json j;
    j["text"] = result->text;
    j["prompt"] = prompt;
    j["tokens"] = result->ids.size();
    j["ids"] = result->ids;
    j["prompt_tokens"] = prompt_ids.size();
    j["stop_reason"] = result->stop_reason;
    j["tokens_per_second"] = decode_tps;
    j["prefill_tokens_per_second"] = prefill_tps;
    j["seconds"] = result->prefill_seconds + result->decode_seconds;
    j["temperature"] = opt.temperature;
    j["top_p"] = opt.top_p;
    j["seed"] = opt.seed;
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "\n";
    std::cerr << absl::StrFormat("[%d tokens, stop: %s, prefill %.1f tok/s, decode %.1f tok/s]\n",
                                 result->ids.size(), result->stop_reason, prefill_tps, decode_tps);
  }
  return kExitOk;
}

}  // namespace
}  // namespace squeeze::cli

SQUEEZE_COMMAND("generate", "generate text with a local model", squeeze::cli::RunGenerate);
