// Which runner checkpoint a lease resumes from when the worker holds one of
// its own and the lease carries the coordinator's (task.checkpoint_digest).
//
// The coordinator's is normally the newest (it is what the last graceful stop
// uploaded), but a stop whose upload failed keeps a further-advanced copy
// only on the worker while the coordinator still names an older one. Rule:
// the local checkpoint wins only when both checkpoint.json files are readable,
// belong to the same run (equal fingerprints) and the local position
// (stage, next_layer) is strictly further; otherwise the fetched one wins (a
// local checkpoint of another run would be refused by the runner anyway).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace squeeze::worker {

struct CheckpointMark {
  nlohmann::json fingerprint;
  int stage = 0;
  int next_layer = 0;
};

// The fingerprint and position of DIR/checkpoint.json; nullopt when it is
// missing or not a version-1 checkpoint.
std::optional<CheckpointMark> ReadCheckpointMark(const std::string& dir);

enum class CheckpointChoice { kFetched, kLocal };
CheckpointChoice ChooseCheckpoint(const std::string& local_dir, const std::string& fetched_dir);

}  // namespace squeeze::worker
