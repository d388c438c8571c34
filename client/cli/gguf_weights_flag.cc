#include "client/cli/gguf_weights_flag.h"

#include "absl/strings/str_cat.h"
#include "workers/methods/stored_linear.h"

namespace squeeze::cli {

void AddGgufWeightsOption(ArgParser& p) {
  p.Option("gguf-weights",
           "a .gguf model's Q4_0/Q8_0 linear weights: blocks (kept as the file stores them, run by the "
           "block kernels with Q8_0 activations as llama.cpp does) or fp32 (dequantized: exact product, "
           "4-8x the memory)",
           "blocks");
}

absl::StatusOr<LoadModelOptions> GetLoadModelOptions(const ArgParser& p) {
  const std::string v = p.Get("gguf-weights");
  LoadModelOptions o;
  if (v == "blocks") {
    RegisterMethodLinearLoaders();
    o.gguf_keep_blocks = true;
  } else if (v != "fp32") {
    return absl::InvalidArgumentError(absl::StrCat("--gguf-weights: \"", v, "\" is not blocks or fp32"));
  }
  return o;
}

}  // namespace squeeze::cli
