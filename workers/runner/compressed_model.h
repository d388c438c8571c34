// Loading models whose linears may be compressed kinds (the runner's own
// artifacts): registers the methods' layer loaders (methods/stored_linear.h)
// with engine/formats/linear_loaders.h, then calls LoadModel, which rebuilds
// each module from the kind SaveModel recorded. Dense checkpoints and
// llama2.c files load as with LoadModel.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/model/model.h"

namespace squeeze {

absl::StatusOr<Model> LoadCompressedModel(const std::string& path);

}  // namespace squeeze
