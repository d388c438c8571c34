// Loaders for compressed LinearLayer kinds, so LoadModel can rebuild what
// SaveModel wrote.
//
// SaveModel records every linear layer's kind() in the safetensors
// "__metadata__" ("squeeze" -> {"linear_kinds": {module: kind}}) and stores
// the layer's StoredTensors() as "<module>.<suffix>". On load, a module whose
// recorded kind starts with "dense_" (or that has no record, e.g. a plain HF
// checkpoint) becomes a DenseLinear; any other kind is handed to the loader
// registered for it. Registration is explicit (call it from the method's
// library before loading); a kind with no loader is an InvalidArgument that
// names the file, the module and the kind.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/model/linear.h"

namespace squeeze {

// Builds the layer from its saved tensors: suffix ("weight_packed", "bias",
// ...) -> view. Views keep their file mapped; a loader may keep them.
using LinearLoader = std::function<absl::StatusOr<std::unique_ptr<LinearLayer>>(
    const std::string& kind, const std::map<std::string, TensorView>& tensors)>;

// Registers `loader` for every kind that starts with `kind_prefix` (the
// longest registered prefix wins; "int4_g" covers "int4_g128"). Thread-safe;
// re-registering a prefix replaces its loader.
void RegisterLinearLoader(const std::string& kind_prefix, LinearLoader loader);

// The loader for `kind`, or nullptr.
LinearLoader FindLinearLoader(const std::string& kind);

}  // namespace squeeze
