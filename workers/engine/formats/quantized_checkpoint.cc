#include "workers/engine/formats/quantized_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/awq_format.h"
#include "workers/engine/formats/compressed_tensors_format.h"
#include "workers/engine/formats/gptq_format.h"
#include "workers/engine/formats/hf_checkpoint.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;

struct Found {
  std::string format;
  std::string config;  // the format's config object as JSON text
  std::string source;  // file it came from
};

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<Found> Detect(const std::string& dir) {
  Found f;
  const std::string config_path = (fs::path(dir) / kHfConfigFile).string();
  std::error_code ec;
  if (fs::exists(config_path, ec)) {
    SQ_ASSIGN_OR_RETURN(std::string text, ReadText(config_path));
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("quantization_config") && !j["quantization_config"].is_null()) {
      const nlohmann::json& qc = j["quantization_config"];
      if (!qc.is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(config_path, ": quantization_config is not an object"));
      }
      const std::string method = qc.contains("quant_method") && qc["quant_method"].is_string()
                                     ? qc["quant_method"].get<std::string>()
                                     : "";
      if (method != "compressed-tensors" && method != "gptq" && method != "awq") {
        return absl::UnimplementedError(absl::StrCat(config_path, ": quantization_config.quant_method \"", method,
                                                     "\" is not supported (compressed-tensors, gptq and awq are)"));
      }
      f.format = method;
      f.config = qc.dump();
      f.source = config_path;
      return f;
    }
  }
  for (const auto& [file, format] : {std::pair<const char*, const char*>{"quantize_config.json", "gptq"},
                                     std::pair<const char*, const char*>{"quant_config.json", "awq"}}) {
    const std::string path = (fs::path(dir) / file).string();
    if (!fs::exists(path, ec)) continue;
    SQ_ASSIGN_OR_RETURN(f.config, ReadText(path));
    f.format = format;
    f.source = path;
    return f;
  }
  return f;
}

}  // namespace

absl::StatusOr<std::string> QuantizedCheckpointFormat(const std::string& dir) {
  SQ_ASSIGN_OR_RETURN(Found f, Detect(dir));
  return f.format;
}

absl::Status ConvertQuantizedCheckpoint(const std::string& dir, CheckpointTensors* ck) {
  SQ_ASSIGN_OR_RETURN(Found f, Detect(dir));
  if (f.format.empty()) return absl::OkStatus();
  if (f.format == "compressed-tensors") return CompressedTensorsToCheckpoint(f.config, f.source, ck);
  if (f.format == "gptq") return GptqToCheckpoint(f.config, f.source, ck);
  return AwqToCheckpoint(f.config, f.source, ck);
}

}  // namespace squeeze
