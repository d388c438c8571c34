#include "workers/engine/formats/model_io.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/checkpoint_tensors.h"
#include "workers/engine/formats/gguf.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/formats/hf_checkpoint.h"
#include "workers/engine/formats/llama2c.h"
#include "workers/engine/formats/quantized_checkpoint.h"

namespace squeeze {

absl::StatusOr<Model> LoadModel(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
  if (fs::is_directory(st)) {
    SQ_ASSIGN_OR_RETURN(CheckpointTensors ck, ReadHfCheckpoint(path));
    // compressed-tensors / GPTQ / AWQ directories (quantized_checkpoint.h).
    SQ_RETURN_IF_ERROR(ConvertQuantizedCheckpoint(path, &ck));
    return BuildModel(std::move(ck));
  }
  if (absl::EndsWith(path, ".safetensors") || absl::EndsWith(path, ".json")) {
    // A file inside an HF directory: load the directory.
    const fs::path parent = fs::path(path).parent_path();
    const std::string dir = parent.empty() ? std::string(".") : parent.string();
    SQ_ASSIGN_OR_RETURN(CheckpointTensors ck, ReadHfCheckpoint(dir));
    SQ_RETURN_IF_ERROR(ConvertQuantizedCheckpoint(dir, &ck));
    return BuildModel(std::move(ck));
  }
  if (absl::EndsWith(path, ".gguf")) {
    // Weights only (dequantized to fp32); the tokenizer inside the file is
    // read by LoadModelAndTokenizer (engine/eval/loaded_model.h).
    SQ_ASSIGN_OR_RETURN(GgufFile file, ReadGguf(path));
    SQ_ASSIGN_OR_RETURN(CheckpointTensors ck, GgufToCheckpoint(file));
    return BuildModel(std::move(ck));
  }
  SQ_ASSIGN_OR_RETURN(CheckpointTensors ck, ReadLlama2c(path));
  return BuildModel(std::move(ck));
}

absl::Status SaveModel(const Model& model, const std::string& dir, const SaveOptions& options) {
  return WriteHfCheckpoint(model, dir, options).status();
}

}  // namespace squeeze
