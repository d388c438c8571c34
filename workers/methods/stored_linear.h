// Rebuilds a LinearLayer of any kind from the tensors its StoredTensors()
// produced (names relative to the module: "weight", "weight_packed", ...).
// This is how compressed artifacts and checkpoints are read back; each new
// layer kind (sparse, low-rank) adds its recognisable tensor name here.
//   "weight_packed" present -> PackedIntLinear (quant/packed_int_linear.h)
//   "weight_u" present      -> FactorizedLinear (lowrank/factorized_linear.h)
//   "weight_values" present -> SparseLinear (prune/sparse_linear.h)
//   "weight" present        -> DenseLinear (F32 / F16 / BF16, + "bias")
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/model/linear.h"

namespace squeeze {

absl::StatusOr<std::unique_ptr<LinearLayer>> LinearFromStoredTensors(
    const std::string& module, const std::map<std::string, TensorView>& tensors);

// Registers, with engine/formats/linear_loaders.h, a loader for every
// compressed kind the methods produce ("packed_int_*", "lowrank_r*", "w8a8_*",
// "llm_int8", "sparse_*"), so LoadModel reads
// the runner's artifacts. Idempotent and thread-safe.
void RegisterMethodLinearLoaders();

// Groups "<module>.<tensor>" names of a whole file by module, keeping only the
// modules in `modules`: result[module][tensor] = view.
std::map<std::string, std::map<std::string, TensorView>> GroupTensorsByModule(
    const std::map<std::string, TensorView>& all, const std::vector<std::string>& modules);

}  // namespace squeeze
