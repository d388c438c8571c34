// A model and its tokenizer loaded together, as the offline CLI commands and
// the stage runner need them.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/model/model.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze {

struct LoadedModel {
  Model model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string tokenizer_path;
};

struct LoadModelOptions {
  // ".gguf": keep Q4_0 / Q8_0 linear weights as the file's blocks
  // (GgufImportOptions::keep_ggml_blocks; the block kernels run them, as
  // llama.cpp would) instead of dequantizing every weight to fp32. The
  // process must have registered the "gguf_q" layer loader
  // (RegisterMethodLinearLoaders, workers/methods/stored_linear.h).
  bool gguf_keep_blocks = false;
};

// LoadModel(model_path) (HF directory or llama2.c .bin) and the tokenizer at
// tokenizer_path, or FindTokenizerFor(model_path) when it is empty. A
// ".gguf" file is read with LoadGgufModel (formats/gguf_model.h): weights
// dequantized to fp32 unless options.gguf_keep_blocks, tokenizer from its
// metadata unless tokenizer_path is given. Checks the tokenizer's
// vocabulary fits the model's. Errors name the file.
absl::StatusOr<LoadedModel> LoadModelAndTokenizer(const std::string& model_path,
                                                  const std::string& tokenizer_path = "",
                                                  const LoadModelOptions& options = {});

}  // namespace squeeze
