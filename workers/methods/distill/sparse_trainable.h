// SparseTrainable: a SparseLinear (prune/sparse_linear.h, the pruning
// modifiers' default storage) trained as the masked sparse kind and given
// back in the SAME storage format.
//
// Invariants:
//  - training runs on a dense fp32 copy of the weight with the sparsity
//    pattern as the Param mask (engine/train/param.h): pruned entries get no
//    gradient and stay exactly 0, so the set of stored positions never grows;
//  - ToInference() rebuilds a SparseLinear with the original format: a
//    bitmask layer stays "sparse_bitmask", an N:M layer stays
//    "sparse_<K>of<M>" with the same K and M. Its mask equals the layer's
//    before training except where a kept weight has trained to exactly 0.0f
//    (a bitmask layer never stores a 0, so that entry is dropped; N:M pads
//    it back at the same position). The plain reference is the dense kind
//    (DenseTrainableFrom with keep_zeros_as_mask), which this wraps.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "workers/engine/train/trainable_linear.h"
#include "workers/methods/prune/sparse_linear.h"

namespace squeeze {

absl::StatusOr<std::unique_ptr<train::TrainableLinear>> MakeSparseTrainable(const SparseLinear& layer);

}  // namespace squeeze
