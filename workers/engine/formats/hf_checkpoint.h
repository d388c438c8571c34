// Hugging Face checkpoint directories: config.json plus either
// model.safetensors or model-0000k-of-0000N.safetensors shards listed in
// model.safetensors.index.json ({"metadata": {"total_size": bytes},
// "weight_map": {tensor name: shard file name}}).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/formats/checkpoint_tensors.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/formats/sharded_safetensors.h"

namespace squeeze {

inline constexpr char kHfConfigFile[] = "config.json";
inline constexpr char kHfSingleFile[] = "model.safetensors";
inline constexpr char kHfIndexFile[] = "model.safetensors.index.json";

// Reads config.json and maps every safetensors file (the index wins when both
// exist). Each tensor named in the index must be in its shard, and no shard
// may hold a tensor the index does not assign to it; shard names must be
// plain "*.safetensors" names inside `dir`; a missing or unreadable shard is
// named with the tensors it should hold (details in hf_checkpoint.cc).
absl::StatusOr<CheckpointTensors> ReadHfCheckpoint(const std::string& dir);

// Writes `model` as an HF directory (see SaveModel in model_io.h). Tensors are
// assigned to shards in name order, each shard holding at most
// options.max_shard_bytes of tensor data (a larger single tensor gets its own
// shard). One shard is written as model.safetensors; several as
// model-0000k-of-0000N.safetensors plus the index (sharded_safetensors.h).
// Stale model files of the other layout (or another shard count) left in
// `dir` are removed; config.json is written last.
absl::StatusOr<ShardedWrite> WriteHfCheckpoint(const Model& model, const std::string& dir,
                                               const SaveOptions& options);

}  // namespace squeeze
