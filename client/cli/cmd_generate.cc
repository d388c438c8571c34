// squeeze generate: offline text generation with a local model.
//   squeeze generate --model PATH [--tokenizer FILE] [--prompt TEXT] --max-tokens N
//                    [--temperature T] [--top-p P] [--seed S] [--json]
// Streams the text to stdout (the prompt first), a summary to stderr; --json
// prints one object instead.
#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "client/cli/args.h"
#include "client/cli/command.h"
#include "workers/engine/eval/generate.h"
#include "workers/engine/eval/loaded_model.h"

namespace squeeze::cli {
namespace {

int RunGenerate(const std::vector<std::string>& args) {
  ArgParser p("squeeze generate --model PATH [--prompt TEXT] [--max-tokens N] [options]",
              "Generates text with a local model (HF directory or llama2.c .bin) on the CPU.");
  p.Option("model", "model: Hugging Face directory, llama2.c .bin or .gguf", "", true)
      .Option("tokenizer", "tokenizer file (default: the one found beside the model)")
      .Option("prompt", "text to continue (BOS is prepended)", "")
      .Option("max-tokens", "new tokens at most", "256")
      .Option("temperature", "sampling temperature; 0 = greedy", "0")
      .Option("top-p", "nucleus sampling mass in (0, 1]", "1")
      .Option("seed", "random seed for sampling", "0")
      .Flag("no-stop", "do not stop at EOS/BOS")
      .Flag("json", "print one JSON object (text, ids, tokens, tokens_per_second, ...)");
  if (auto exit = ParseOrExit(p, args, "generate")) return *exit;
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

  auto loaded = LoadModelAndTokenizer(p.Get("model"), p.Get("tokenizer"));
  if (!loaded.ok()) {
    std::cerr << "squeeze generate: " << loaded.status().message() << "\n";
    return kExitUsage;
  }
  const Tokenizer& tok = *loaded->tokenizer;
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
