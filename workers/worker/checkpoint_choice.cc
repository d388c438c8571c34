#include "workers/worker/checkpoint_choice.h"

#include <utility>

#include "workers/engine/core/file_util.h"

namespace squeeze::worker {

std::optional<CheckpointMark> ReadCheckpointMark(const std::string& dir) {
  absl::StatusOr<std::string> text = ReadFileToString(dir + "/checkpoint.json");
  if (!text.ok()) return std::nullopt;
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  // Every field is type-checked before it is read: a damaged or foreign
  // checkpoint.json means "no usable mark", never an exception.
  if (j.is_discarded() || !j.is_object() || !j.contains("version") || !j["version"].is_number_integer() ||
      j["version"].get<int64_t>() != 1 || !j.contains("fingerprint") ||
      !j.contains("stage") || !j["stage"].is_number_integer() || !j.contains("next_layer") ||
      !j["next_layer"].is_number_integer()) {
    return std::nullopt;
  }
  return CheckpointMark{j["fingerprint"], j["stage"].get<int>(), j["next_layer"].get<int>()};
}

CheckpointChoice ChooseCheckpoint(const std::string& local_dir, const std::string& fetched_dir) {
  const std::optional<CheckpointMark> local = ReadCheckpointMark(local_dir);
  const std::optional<CheckpointMark> fetched = ReadCheckpointMark(fetched_dir);
  if (!local || !fetched || local->fingerprint != fetched->fingerprint) return CheckpointChoice::kFetched;
  return std::make_pair(local->stage, local->next_layer) > std::make_pair(fetched->stage, fetched->next_layer)
             ? CheckpointChoice::kLocal
             : CheckpointChoice::kFetched;
}

}  // namespace squeeze::worker
