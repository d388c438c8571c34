// Loading models whose linears may be compressed kinds (the runner's own
// artifacts). LoadModel (formats/model_io.h) reads dense checkpoints only;
// this reads an HF directory written by SaveModel in which some modules are
// stored as packed integers ("<module>.weight_packed", ...; see
// methods/quant/packed_int_linear.h) and rebuilds those layers through
// methods/stored_linear.h. Dense models and llama2.c files go straight to
// LoadModel.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/model/model.h"

namespace squeeze {

absl::StatusOr<Model> LoadCompressedModel(const std::string& path);

}  // namespace squeeze
