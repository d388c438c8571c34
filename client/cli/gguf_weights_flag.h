// --gguf-weights blocks|fp32: how the offline commands that run a model
// (eval, generate, eval-tasks) hold a .gguf file's Q4_0 / Q8_0 linear
// weights: as the file's blocks run by the block kernels (default; the
// memory of the file, llama.cpp's arithmetic with Q8_0 activations) or
// dequantized to fp32 (the exact dequantized product, 4-8x the memory).
#pragma once

#include "absl/status/statusor.h"
#include "client/cli/args.h"
#include "workers/engine/eval/loaded_model.h"

namespace squeeze::cli {

// Declares the option on p (default blocks).
void AddGgufWeightsOption(ArgParser& p);

// The load options it asks for; InvalidArgument naming --gguf-weights
// otherwise. Registers the block layer loader when blocks are kept.
absl::StatusOr<LoadModelOptions> GetLoadModelOptions(const ArgParser& p);

}  // namespace squeeze::cli
