// squeeze eval: offline perplexity of a local model on a text file.
//   squeeze eval --model PATH [--tokenizer FILE] --text FILE [--seq-len N]
//                [--protocol rolling|gptq] [--separator LINE] [--max-bytes N] [--json]
// --json prints ONE object with keys tokens, nll_per_token, perplexity,
// bits_per_byte (plus extras). Progress goes to stderr when it is a terminal.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "client/cli/args.h"
#include "client/cli/command.h"
#include "client/cli/gguf_weights_flag.h"
#include "client/cli/packed_activations_flag.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/eval/loaded_model.h"
#include "workers/engine/eval/perplexity.h"

namespace squeeze::cli {
namespace {

// The longest prefix of `s` of at most n bytes that does not cut a UTF-8
// sequence.
std::string Utf8Prefix(const std::string& s, size_t n) {
  if (n >= s.size()) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

int RunEval(const std::vector<std::string>& args) {
  ArgParser p("squeeze eval --model PATH --text FILE [options]",
              "Measures perplexity of a local model on a text file (lm-evaluation-harness rolling\n"
              "windows by default, or the GPTQ protocol).");
  p.Option("model", "model: Hugging Face directory, llama2.c .bin or .gguf", "", true)
      .Option("tokenizer", "tokenizer file (default: the one found beside the model)")
      .Option("text", "UTF-8 text file to score", "", true)
      .Option("seq-len", "window length in tokens (default: the model's context length)", "0")
      .Option("protocol", "rolling (lm-eval, every token once, BOS first) or gptq (fixed windows)", "rolling")
      .Option("separator", "a line that separates documents (e.g. <|endoftext|>); each document is scored "
                           "on its own (rolling)", "")
      .Option("max-bytes", "score only the first N bytes of the file (0 = all)", "0")
      .Flag("json", "print one JSON object: tokens, nll_per_token, perplexity, bits_per_byte, ...");
  AddPackedActivationsOption(p);
  AddGgufWeightsOption(p);
  if (auto exit = ParseOrExit(p, args, "eval")) return *exit;
  auto load_options = GetLoadModelOptions(p);
  if (!load_options.ok()) {
    std::cerr << "squeeze eval: " << load_options.status().message() << "\n";
    return kExitUsage;
  }
  auto packed_act = GetPackedActivations(p);
  if (!packed_act.ok()) {
    std::cerr << "squeeze eval: " << packed_act.status().message() << "\n";
    return kExitUsage;
  }
  auto seq_len = p.GetInt("seq-len");
  auto max_bytes = p.GetInt("max-bytes");
  auto protocol = ParsePplProtocol(p.Get("protocol"));
  for (const absl::Status& s : {seq_len.status(), max_bytes.status(), protocol.status()}) {
    if (!s.ok()) {
      std::cerr << "squeeze eval: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  if (*seq_len < 0 || *max_bytes < 0) {
    std::cerr << "squeeze eval: --seq-len and --max-bytes must be >= 0\n";
    return kExitUsage;
  }
  auto text = ReadFileToString(p.Get("text"));
  if (!text.ok()) {
    std::cerr << "squeeze eval: --text " << p.Get("text") << ": " << text.status().message() << "\n";
    return kExitUsage;
  }
  if (*max_bytes > 0) *text = Utf8Prefix(*text, static_cast<size_t>(*max_bytes));
  auto loaded = LoadModelAndTokenizer(p.Get("model"), p.Get("tokenizer"), *load_options);
  if (!loaded.ok()) {
    std::cerr << "squeeze eval: " << loaded.status().message() << "\n";
    return kExitUsage;
  }
  const int64_t packed_layers = ApplyPackedActivations(loaded->model, *packed_act);
  PerplexityOptions opt;
  opt.seq_len = static_cast<int>(*seq_len);
  opt.protocol = *protocol;
  if (isatty(STDERR_FILENO)) {
    opt.progress = [](int64_t done, int64_t total) {
      std::cerr << absl::StrFormat("\reval: window %d/%d (%.0f%%)", done, total, 100.0 * done / total)
                << (done == total ? "\n" : "") << std::flush;
    };
  }
  const std::vector<std::string> docs = SplitDocuments(*text, p.Get("separator"));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = EvaluatePerplexity(loaded->model, *loaded->tokenizer, docs, opt);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok()) {
    std::cerr << "squeeze eval: " << r.status().message() << "\n";
    return absl::IsInvalidArgument(r.status()) ? kExitUsage : kExitJobFailed;
  }
  const int seq = opt.seq_len > 0 ? opt.seq_len : loaded->model.config.max_seq_len;
  if (p.GetFlag("json")) {
    nlohmann::json j;
    j["tokens"] = r->tokens;
    j["nll_per_token"] = r->nll_per_token;
    j["perplexity"] = r->perplexity;
    j["bits_per_byte"] = r->bits_per_byte;
    j["nll"] = r->nll;
    j["bytes"] = r->bytes;
    j["windows"] = r->windows;
    j["documents"] = docs.size();
    j["seq_len"] = seq;
    j["protocol"] = p.Get("protocol");
    j["packed_activations"] = PackedActivationsName(*packed_act);
    j["packed_layers"] = packed_layers;
    nlohmann::json kinds = nlohmann::json::object();  // linear layer kind -> count
    for (const LinearSlot& s : loaded->model.AllLinears()) {
      const std::string kind = (*s.slot)->kind();
      kinds[kind] = kinds.value(kind, 0) + 1;
    }
    j["layer_kinds"] = kinds;
    j["gguf_weights"] = p.Get("gguf-weights");
    j["seconds"] = seconds;
    j["tokens_per_second"] = seconds > 0 ? r->tokens / seconds : 0.0;
    std::cout << j.dump() << "\n";
  } else {
    std::cout << absl::StrFormat(
        "tokens         %d\nnll_per_token  %.6f\nperplexity     %.4f\nbits_per_byte  %.6f\n"
        "(%s protocol, seq_len %d, %d windows, %d documents, %.2f s)\n",
        r->tokens, r->nll_per_token, r->perplexity, r->bits_per_byte, p.Get("protocol"), seq, r->windows,
        docs.size(), seconds);
  }
  return kExitOk;
}

}  // namespace
}  // namespace squeeze::cli

SQUEEZE_COMMAND("eval", "perplexity of a local model on a text file", squeeze::cli::RunEval);
