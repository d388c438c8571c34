// Runner checkpoints: what a graceful stop leaves in the work dir so that a
// later RunRecipe resumes instead of starting over.
//
// Files (the JSON is the commit point, written last and atomically):
//   checkpoint.safetensors  "<module>.<tensor>" for every linear changed so far,
//                           exactly as the layer's StoredTensors() give them
//   checkpoint.json         {"version": 1, "fingerprint": {...}, "stage": s,
//                            "next_layer": l, "modules": [...], "report": [...]}
// `fingerprint` identifies the run (canonical recipe, model path, seed, data
// paths); a checkpoint with another fingerprint is refused, never applied.
#pragma once

#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/model/model.h"

namespace squeeze {

struct CheckpointPosition {
  int stage = 0;       // index of the stage in progress
  int next_layer = 0;  // first layer unit of that stage not done yet
  nlohmann::json report = nlohmann::json::array();  // per-stage report so far
};

// Writes the checkpoint for `model` (only `modules` are stored).
absl::Status SaveRunCheckpoint(const std::string& work_dir, const nlohmann::json& fingerprint, Model& model,
                               const std::set<std::string>& modules, const CheckpointPosition& position);

// When work_dir holds a checkpoint: checks its fingerprint, replaces the
// stored modules in `model` and their names into `modules`, and returns the
// position. nullopt when there is none. FailedPrecondition when it belongs to
// another run; InvalidArgument when it is damaged (errors name the file).
absl::StatusOr<std::optional<CheckpointPosition>> LoadRunCheckpoint(const std::string& work_dir,
                                                                    const nlohmann::json& fingerprint,
                                                                    Model& model, std::set<std::string>* modules);

// Removes the checkpoint files (not the directory's other contents).
absl::Status RemoveRunCheckpoint(const std::string& work_dir);

}  // namespace squeeze
