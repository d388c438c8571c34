// squeeze export: writes a local model in a format other tools load.
//   squeeze export --model PATH --format gguf [--type F32|F16|Q8_0|Q4_0|Q4_1|Q4_K|Q6_K]
//                  [--tokenizer FILE] [--no-fallback] [--name NAME] --out FILE [--json]
// Only GGUF is written so far; compressed-tensors / gptq / awq are refused
// with exit 2. Prints one line per tensor (how it was written and its
// relative error against the model's own weight), or one JSON object.
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "client/cli/args.h"
#include "client/cli/command.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/tokenizer/tokenizer.h"
#include "workers/methods/stored_linear.h"

namespace squeeze::cli {
namespace {

int RunExport(const std::vector<std::string>& args) {
  ArgParser p("squeeze export --model PATH --format gguf [--type TYPE] --out FILE",
              "Exports a local model (HF directory, llama2.c .bin, or a squeeze artifact with packed-int\n"
              "layers) to a format other tools load. GGUF (llama.cpp): 2-D weights take --type; rows whose\n"
              "length is not a multiple of the type's block size fall back per tensor (Q4_K -> Q4_0 -> F16,\n"
              "Q6_K -> Q8_0 -> F16, others -> F16) unless --no-fallback. Packed-int layers are copied\n"
              "exactly where the GGUF type holds their codes, re-quantized otherwise (both reported).");
  p.Option("model", "model: Hugging Face directory, squeeze artifact directory or llama2.c .bin", "", true)
      .Option("format", "gguf (compressed-tensors, gptq, awq: not yet supported)", "", true)
      .Option("type", "GGUF type of 2-D weights: F32, F16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K, or auto "
                      "(dense F32, packed-int layers their exact GGUF type)", "auto")
      .Option("tokenizer", "tokenizer file (default: the one found beside the model)")
      .Option("name", "general.name to record", "")
      .Option("out", "output file", "", true)
      .Flag("no-fallback", "refuse tensors whose rows do not fit the type's block size instead of falling back")
      .Flag("json", "print one JSON object: file, bytes, file_type, tensors [{name, source, requested, type, how, "
                    "rel_error}]");
  if (auto exit = ParseOrExit(p, args, "export")) return *exit;
  const std::string format = p.Get("format");
  if (format == "compressed-tensors" || format == "gptq" || format == "awq") {
    std::cerr << "squeeze export: --format " << format
              << " is not supported yet (only gguf is written so far); nothing was written\n";
    return kExitUsage;
  }
  if (format != "gguf") {
    std::cerr << "squeeze export: --format must be gguf, compressed-tensors, gptq or awq (got \"" << format
              << "\")\n";
    return kExitUsage;
  }
  GgufExportOptions opt;
  if (p.Get("type") != "auto") {
    auto type = ParseGgmlTypeName(p.Get("type"));
    if (!type.ok()) {
      std::cerr << "squeeze export: --type: " << type.status().message() << "\n";
      return kExitUsage;
    }
    opt.type = *type;
  }
  opt.allow_fallback = !p.GetFlag("no-fallback");
  opt.name = p.Get("name");

  RegisterMethodLinearLoaders();
  auto model = LoadModel(p.Get("model"));
  if (!model.ok()) {
    std::cerr << "squeeze export: " << model.status().message() << "\n";
    return kExitUsage;
  }
  if (absl::Status s = ValidateModel(*model); !s.ok()) {
    std::cerr << "squeeze export: " << p.Get("model") << ": " << s.message() << "\n";
    return kExitUsage;
  }
  std::string tokenizer = p.Get("tokenizer");
  if (tokenizer.empty()) {
    auto found = FindTokenizerFor(p.Get("model"));
    if (!found.ok()) {
      std::cerr << "squeeze export: " << found.status().message() << " (pass --tokenizer)\n";
      return kExitUsage;
    }
    tokenizer = *found;
  }
  auto result = ExportGguf(*model, tokenizer, p.Get("out"), opt);
  if (!result.ok()) {
    std::cerr << "squeeze export: " << result.status().message() << "\n";
    return absl::IsInvalidArgument(result.status()) || absl::IsUnimplemented(result.status()) ? kExitUsage
                                                                                                : kExitJobFailed;
  }
  if (p.GetFlag("json")) {
    nlohmann::json j;
    j["file"] = p.Get("out");
    j["format"] = "gguf";
    j["bytes"] = result->bytes;
    j["file_type"] = result->file_type;
    j["tokenizer"] = tokenizer;
    nlohmann::json tensors = nlohmann::json::array();
    for (const GgufTensorReport& t : result->tensors) {
      tensors.push_back({{"name", t.name},
                         {"source", t.source},
                         {"requested", std::string(GgmlTypeName(t.requested))},
                         {"type", std::string(GgmlTypeName(t.type))},
                         {"how", t.how},
                         {"rel_error", t.rel_error}});
    }
    j["tensors"] = tensors;
    std::cout << j.dump() << "\n";
    return kExitOk;
  }
  std::map<std::string, int> by_how;
  for (const GgufTensorReport& t : result->tensors) {
    std::cout << absl::StrFormat("%-28s %-22s %-5s %-9.3e %s\n", t.name, t.source, GgmlTypeName(t.type),
                                 t.rel_error, t.how);
  }
  std::cout << absl::StrFormat("wrote %s (%d bytes, general.file_type %d, %d tensors, tokenizer %s)\n",
                               p.Get("out"), result->bytes, result->file_type, result->tensors.size(), tokenizer);
  return kExitOk;
}

}  // namespace
}  // namespace squeeze::cli

SQUEEZE_COMMAND("export", "export a local model to GGUF (llama.cpp)", squeeze::cli::RunExport);
