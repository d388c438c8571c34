// Runner checkpoints: what a graceful stop leaves in the work dir so that a
// later RunRecipe resumes instead of starting over.
//
// Files (the JSON is the commit point, written last and atomically):
//   checkpoint.safetensors  "<module>.<tensor>" for every linear changed so far,
//                           exactly as the layer's StoredTensors() give them
//   checkpoint.json         {"version": 1, "fingerprint": {...}, "stage": s,
//                            "next_layer": l, "modules": [...], "report": [...],
//                            "removed_layers": [[...], ...]}   (optional)
// `removed_layers`: the whole blocks removed so far (layer removal), one list
// per removal in the order they happened, each holding indices of the model
// as it was at that removal; absent = none (checkpoints written before).
// Module and norm names are those of the model after the removals.
// Stored modules may be narrower than the input model's (structured pruning
// removed heads or channels): the loaded model is checked as a whole
// (ValidateModel) instead of module by module.
// `fingerprint` identifies the run by content, never by local path (canonical
// recipe, model / calibration / evaluation digests, seed, eval options), so a
// checkpoint moved to another machine or work dir (a later lease on another
// worker) is accepted there; a checkpoint with another fingerprint is refused,
// never applied.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/model/model.h"

namespace squeeze {

struct CheckpointPosition {
  int stage = 0;       // index of the stage in progress
  int next_layer = 0;  // first layer unit of that stage not done yet
  nlohmann::json report = nlohmann::json::array();  // per-stage report so far
  // Blocks removed so far, per removal, in order (see the file comment).
  std::vector<std::vector<int>> removed_layers;
};

// The content identity of an input, for fingerprints: for a directory the
// sha256 of its canonical manifest (= its name in the object store, as
// `squeeze upload` and the coordinator's model_digest give it), for a regular
// file the sha256 of its bytes. NotFound when `path` is neither.
absl::StatusOr<std::string> ContentDigest(const std::string& path);

// True when work_dir holds a checkpoint (its checkpoint.json).
bool HasRunCheckpoint(const std::string& work_dir);

// Writes the checkpoint for `model` (only `modules` are stored).
absl::Status SaveRunCheckpoint(const std::string& work_dir, const nlohmann::json& fingerprint, Model& model,
                               const std::set<std::string>& modules, const CheckpointPosition& position);

// When work_dir holds a checkpoint: checks its fingerprint, removes the
// recorded blocks from `model` (the input model), replaces the stored modules
// and block norms, adds their names to `modules`, and returns the position. nullopt when there is none. FailedPrecondition when it belongs to
// another run; InvalidArgument when it is damaged (errors name the file).
// All or nothing: on any error `model` and `modules` are left untouched, so
// the caller may discard the checkpoint and start from zero.
absl::StatusOr<std::optional<CheckpointPosition>> LoadRunCheckpoint(const std::string& work_dir,
                                                                    const nlohmann::json& fingerprint,
                                                                    Model& model, std::set<std::string>* modules);

// Removes the checkpoint files (not the directory's other contents).
absl::Status RemoveRunCheckpoint(const std::string& work_dir);

}  // namespace squeeze
