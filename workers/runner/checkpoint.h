// Runner checkpoints: what a graceful stop leaves in the work dir so that a
// later RunRecipe resumes instead of starting over.
//
// Files (the JSON is the commit point, written last and atomically):
//   checkpoint.safetensors  "<module>.<tensor>" for every linear changed so far,
//                           exactly as the layer's StoredTensors() give them
//   checkpoint.json         {"version": 1, "fingerprint": {...}, "stage": s,
//                            "next_layer": l, "modules": [...], "report": [...]}
// `fingerprint` identifies the run by content, never by local path (canonical
// recipe, model / calibration / evaluation digests, seed, eval options), so a
// checkpoint moved to another machine or work dir (a later lease on another
// worker) is accepted there; a checkpoint with another fingerprint is refused,
// never applied.
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

// When work_dir holds a checkpoint: checks its fingerprint, replaces the
// stored modules in `model` and their names into `modules`, and returns the
// position. nullopt when there is none. FailedPrecondition when it belongs to
// another run; InvalidArgument when it is damaged (errors name the file).
// All or nothing: on any error `model` and `modules` are left untouched, so
// the caller may discard the checkpoint and start from zero.
absl::StatusOr<std::optional<CheckpointPosition>> LoadRunCheckpoint(const std::string& work_dir,
                                                                    const nlohmann::json& fingerprint,
                                                                    Model& model, std::set<std::string>* modules);

// Removes the checkpoint files (not the directory's other contents).
absl::Status RemoveRunCheckpoint(const std::string& work_dir);

}  // namespace squeeze
