// Sharded safetensors, the layout transformers' save_pretrained writes for
// every safetensors-based checkpoint (HF dense, compressed-tensors, GPTQ,
// AWQ) and the readers load (hf_checkpoint.h):
//   one shard:  model.safetensors
//   N shards:   model-0000k-of-0000N.safetensors (k = 1..N, five digits each)
//               + model.safetensors.index.json
//               {"metadata": {"total_size": <bytes of tensor data, all
//                shards>}, "weight_map": {<tensor name>: <shard file>}}
// Assignment (huggingface_hub's split_state_dict_into_shards): tensors in
// the order given (callers pass them sorted by name), a new shard starts when
// adding the next tensor would take the current one past max_shard_bytes; a
// tensor larger than the limit gets a shard of its own. Sizes count tensor
// data only (no headers), as total_size does.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/formats/safetensors.h"

namespace squeeze {

// transformers' default max_shard_size "5GB" (decimal: 5 * 10^9 bytes).
inline constexpr int64_t kDefaultMaxShardBytes = 5'000'000'000LL;

// Parses a shard size as transformers' convert_file_size_to_int does: a
// plain integer is bytes; otherwise an integer followed by a unit,
// case-insensitive: GiB / MiB / KiB are 2^30 / 2^20 / 2^10 bytes, GB / MB /
// KB are 10^9 / 10^6 / 10^3 bytes, except that a decimal unit ending in a
// lower-case "b" ("5Gb") means bits (divided by 8). The result must be > 0
// and fit int64. Errors quote the text and list the accepted forms.
absl::StatusOr<int64_t> ParseShardSize(absl::string_view text);

struct ShardedWrite {
  int64_t total_bytes = 0;         // tensor data of all shards
  int shards = 0;                  // safetensors files written
  std::set<std::string> files;     // file names written (shards + index)
};

// Writes `entries` (unique names, in the order to lay them out) into `dir`
// (which must exist) as described above; every file appears atomically, the
// index last. Then removes model files of another layout or shard count left
// in `dir` (model.safetensors, model-*-of-*.safetensors, the index) that this
// write did not produce. `metadata` goes into every shard's __metadata__.
absl::StatusOr<ShardedWrite> WriteShardedSafetensors(const std::string& dir, std::vector<SafetensorsEntry> entries,
                                                     const std::map<std::string, std::string>& metadata,
                                                     int64_t max_shard_bytes);

}  // namespace squeeze
