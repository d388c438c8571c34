// squeeze export: writes a local model in a format other tools load.
//   squeeze export --model PATH --format gguf [--type F32|F16|Q8_0|Q4_0|Q4_1|Q4_K|Q6_K]
//                  [--tokenizer FILE] [--no-fallback] [--name NAME] --out FILE [--json]
//   squeeze export --model PATH --format compressed-tensors|gptq|awq|hf --out DIR
//                  [--dtype F32|F16|BF16] [--scale-dtype ...] [--unfit-dense] [--gptq-v2] [--recipe FILE]
//                  [--sparse-format auto|sparse-bitmask|sparse-24-bitmask|dense] [--max-shard-size 5GB]
// Prints one line per tensor / layer (how it was written and its relative
// error against the model's own weight), or one JSON object.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/args.h"
#include "client/cli/command.h"
#include "workers/engine/formats/awq_format.h"
#include "workers/engine/formats/compressed_tensors_format.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/formats/gptq_format.h"
#include "workers/engine/formats/hf_dense_export.h"
#include "workers/engine/formats/sharded_safetensors.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/tokenizer/tokenizer.h"
#include "workers/methods/stored_linear.h"

namespace squeeze::cli {
namespace {

int RunQuantizedExport(const ArgParser& p, const std::string& format) {
  auto dtype_of = [&](const std::string& flag, DType dflt) -> absl::StatusOr<DType> {
    const std::string v = p.Get(flag);
    if (v.empty()) return dflt;
    auto d = ParseDTypeName(absl::AsciiStrToUpper(v));
    if (!d.ok() || (*d != DType::kF32 && *d != DType::kF16 && *d != DType::kBF16)) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", v, ": must be F32, F16 or BF16"));
    }
    return *d;
  };
  const DType default_dtype = format == "compressed-tensors" || format == "hf" ? DType::kF32 : DType::kF16;
  auto dense = dtype_of("dtype", default_dtype);
  auto scale = dense.ok() ? dtype_of("scale-dtype", *dense) : dense;
  if (!dense.ok() || !scale.ok()) {
    std::cerr << "squeeze export: " << (dense.ok() ? scale.status() : dense.status()).message() << "\n";
    return kExitUsage;
  }
  auto max_shard = ParseShardSize(p.Get("max-shard-size"));
  if (!max_shard.ok()) {
    std::cerr << "squeeze export: --max-shard-size: " << max_shard.status().message() << "\n";
    return kExitUsage;
  }
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
  absl::StatusOr<QuantizedExportResult> result;
  if (format == "hf") {
    SaveOptions o;
    o.dtype = *dense;
    o.max_shard_bytes = *max_shard;
    result = ExportDenseHf(*model, p.Get("out"), o);
  } else if (format == "compressed-tensors") {
    CompressedTensorsExportOptions o;
    o.dense_dtype = *dense;
    o.scale_dtype = *scale;
    o.sparse_format = p.Get("sparse-format");
    o.max_shard_bytes = *max_shard;
    std::string recipe = p.Get("recipe");
    if (recipe.empty()) {
      const std::filesystem::path beside = std::filesystem::path(p.Get("model")) / "recipe.yaml";
      std::error_code ec;
      if (std::filesystem::is_regular_file(beside, ec)) recipe = beside.string();
    }
    if (!recipe.empty()) {
      std::ifstream in(recipe, std::ios::binary);
      if (!in) {
        std::cerr << "squeeze export: --recipe " << recipe << ": cannot open\n";
        return kExitUsage;
      }
      o.recipe_yaml.assign(std::istreambuf_iterator<char>(in), {});
    }
    result = ExportCompressedTensors(*model, p.Get("out"), o);
  } else if (format == "gptq") {
    GptqExportOptions o;
    o.dense_dtype = *dense;
    o.scale_dtype = *scale;
    o.v2 = p.GetFlag("gptq-v2");
    o.unfit_as_dense = p.GetFlag("unfit-dense");
    o.max_shard_bytes = *max_shard;
    result = ExportGptq(*model, p.Get("out"), o);
  } else {
    AwqExportOptions o;
    o.dense_dtype = *dense;
    o.scale_dtype = *scale;
    o.unfit_as_dense = p.GetFlag("unfit-dense");
    o.max_shard_bytes = *max_shard;
    result = ExportAwq(*model, p.Get("out"), o);
  }
  if (!result.ok()) {
    std::cerr << "squeeze export: " << result.status().message() << "\n";
    return absl::IsInvalidArgument(result.status()) || absl::IsUnimplemented(result.status()) ? kExitUsage
                                                                                                : kExitJobFailed;
  }
  // The tokenizer files of an HF model directory travel with the weights
  // (serving stacks read tokenizer.json; squeeze finds tok*.bin too).
  std::vector<std::string> copied;
  {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path src(p.Get("model"));
    if (fs::is_directory(src, ec) && fs::weakly_canonical(src, ec) != fs::weakly_canonical(p.Get("out"), ec)) {
      for (const fs::directory_entry& de : fs::directory_iterator(src, ec)) {
        const std::string name = de.path().filename().string();
        const bool tok = name == "tokenizer.json" || name == "tokenizer_config.json" ||
                         name == "special_tokens_map.json" || name == "tokenizer.model" ||
                         name == "generation_config.json" ||
                         ((absl::StartsWith(name, "tokenizer") || absl::StartsWith(name, "tok")) &&
                          absl::EndsWith(name, ".bin"));
        if (!tok || !de.is_regular_file(ec)) continue;
        fs::copy_file(de.path(), fs::path(p.Get("out")) / name, fs::copy_options::overwrite_existing, ec);
        if (ec) {
          std::cerr << "squeeze export: copying " << de.path().string() << ": " << ec.message() << "\n";
          return kExitJobFailed;
        }
        copied.push_back(name);
      }
    }
  }
  if (p.GetFlag("json")) {
    nlohmann::json j;
    j["dir"] = p.Get("out");
    j["tokenizer_files"] = copied;
    j["format"] = format;
    j["bytes"] = result->bytes;
    j["shards"] = result->shards;
    nlohmann::json layers = nlohmann::json::array();
    for (const QuantizedLayerReport& l : result->layers) {
      layers.push_back({{"module", l.module}, {"source", l.source_kind}, {"how", l.how}, {"rel_error", l.rel_error}});
    }
    j["layers"] = layers;
    std::cout << j.dump() << "\n";
    return kExitOk;
  }
  for (const QuantizedLayerReport& l : result->layers) {
    std::cout << absl::StrFormat("%-36s %-26s %-9.3e %s\n", l.module, l.source_kind, l.rel_error, l.how);
  }
  std::cout << absl::StrFormat("wrote %s (%s, %d tensor bytes in %d safetensors file%s, %d linear layers)\n",
                               p.Get("out"), format, result->bytes, result->shards, result->shards == 1 ? "" : "s",
                               result->layers.size());
  return kExitOk;
}

int RunExport(const std::vector<std::string>& args) {
  ArgParser p("squeeze export --model PATH --format gguf|compressed-tensors|gptq|awq|hf [--type TYPE] --out PATH",
              "Exports a local model (HF directory, llama2.c .bin, or a squeeze artifact with packed-int\n"
              "layers) to a format other tools load. GGUF (llama.cpp): 2-D weights take --type; rows whose\n"
              "length is not a multiple of the type's block size fall back per tensor (Q4_K -> Q4_0 -> F16,\n"
              "Q6_K -> Q8_0 -> F16, others -> F16) unless --no-fallback. Packed-int layers are copied\n"
              "exactly where the GGUF type holds their codes, re-quantized otherwise (both reported).\n"
              "compressed-tensors (vLLM / transformers), gptq (AutoGPTQ) and awq (AutoAWQ gemm) write an HF\n"
              "directory with packed-int layers copied code for code; combinations the format cannot hold\n"
              "are refused with the reason (nothing is written). Pruned (sparse_*) layers go to compressed-tensors'\n"
              "sparse-bitmask / sparse-24-bitmask. hf writes a plain dense Hugging Face directory. Every\n"
              "safetensors export is sharded past --max-shard-size (model-0000k-of-0000N.safetensors + index).");
  p.Option("model", "model: Hugging Face directory, squeeze artifact directory or llama2.c .bin", "", true)
      .Option("format", "gguf, compressed-tensors, gptq, awq or hf (dense safetensors)", "", true)
      .Option("type", "GGUF type of 2-D weights: F32, F16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K, or auto "
                      "(dense F32, packed-int layers their exact GGUF type)", "auto")
      .Option("tokenizer", "tokenizer file (default: the one found beside the model)")
      .Option("name", "general.name to record", "")
      .Option("out", "output file (gguf) or directory (compressed-tensors, gptq, awq, hf)", "", true)
      .Option("dtype", "compressed-tensors / gptq / awq / hf: dtype of embeddings, norms, dense layers and biases: "
                       "F32, F16 or BF16 (default F32 for compressed-tensors and hf, F16 for gptq / awq)", "")
      .Option("scale-dtype", "compressed-tensors / gptq / awq: dtype of the scales (F32 keeps them exact; default "
                             "as --dtype)", "")
      .Option("recipe", "compressed-tensors: recipe file copied as recipe.yaml (default: recipe.yaml beside the "
                        "model, if any)", "")
      .Option("sparse-format", "compressed-tensors: pruned layers as auto (sparse-24-bitmask when every one is 2:4, "
                               "else sparse-bitmask), sparse-bitmask, sparse-24-bitmask (refuses layers that are "
                               "not 2:4) or dense", "auto")
      .Option("max-shard-size", "compressed-tensors / gptq / awq / hf: largest safetensors shard (tensor data), "
                                "e.g. 5GB, 500MB, 100KB, 2GiB or bytes; larger models get model-0000k-of-0000N "
                                "shards + model.safetensors.index.json", "5GB")
      .Flag("unfit-dense", "gptq / awq: write layers whose shapes the format cannot pack as dense layers (listed "
                           "as unquantized in the config) instead of refusing")
      .Flag("gptq-v2", "gptq: checkpoint_format gptq_v2 (zero points stored as is, not minus one)")
      .Flag("no-fallback", "refuse tensors whose rows do not fit the type's block size instead of falling back")
      .Flag("json", "print one JSON object: file, bytes, file_type, tensors [{name, source, requested, type, how, "
                    "rel_error}]");
  if (auto exit = ParseOrExit(p, args, "export")) return *exit;
  const std::string format = p.Get("format");
  if (format == "compressed-tensors" || format == "gptq" || format == "awq" || format == "hf") {
    return RunQuantizedExport(p, format);
  }
  if (format != "gguf") {
    std::cerr << "squeeze export: --format must be gguf, compressed-tensors, gptq, awq or hf (got \"" << format
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

SQUEEZE_COMMAND("export", "export a local model to GGUF, compressed-tensors, GPTQ or AWQ", squeeze::cli::RunExport);
