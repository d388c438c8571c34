// Whole-layer removal by block influence (ShortGPT, Men et al. 2024): a
// block whose output hidden state points the same way as its input changes
// the residual stream least, so it is the cheapest to drop.
//
//   BI_i = 1 - mean over calibration tokens t of cos(h_i[t], h_{i+1}[t])
//
// where h_i is the residual stream entering block i (h_0 = the embeddings) on
// the calibration sequences (each an independent causal sequence from
// position 0), computed with the model as it is. A block whose attention and
// MLP outputs are zero is the identity and has BI = 0.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/model.h"

namespace squeeze {

// BI of every block (size = n_layers). Errors: a bad model or token ids, no
// sequences.
absl::StatusOr<std::vector<double>> BlockInfluence(const Model& model, const std::vector<std::vector<int>>& sequences,
                                                   ThreadPool& pool = ThreadPool::Default());

// Erases the blocks `layers` (distinct, in range, at least one block kept)
// and renumbers the rest; config.n_layers and any per-layer width vectors
// follow, and config.source_layers records the original layer index of each
// remaining block (so the artifact's config.json says which layers remain).
absl::Status RemoveBlocks(Model& model, const std::vector<int>& layers);

}  // namespace squeeze
