// OWL: outlier-weighted layerwise sparsity (Yin et al. 2023, "Outlier
// Weighed Layerwise Sparsity: A Missing Secret Sauce for Pruning LLMs to High
// Sparsity"). Layers holding more activation outliers are pruned less.
//
// Layer outlier distribution (LOD) of block l: over every weight of the
// block's pruned linears, with Wanda's score A_ij = |W_ij| * ||x_j||_2
// (x = that linear's calibration inputs),
//   D_l = #{A_ij > M * mean(A)} / #weights      (M = owl_m, the paper's 5)
// the mean taken over the whole block (all its pruned linears together), as
// in the reference code and llm-compressor.
// Allocation (reference code / llm-compressor `sparsity_profile: owl`):
//   density_l = (D_l - min D) / (max D - min D) * 2 * lambda
//   density_l += (1 - S) - mean(density)      (S = target sparsity)
//   sparsity_l = 1 - density_l
// so mean(sparsity_l) == S exactly, the spread max - min is 2 * lambda (0
// when every D_l is equal: uniform S), each sparsity_l lies within
// S +/- 2 * lambda, and more outliers means lower sparsity.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/model.h"

namespace squeeze {

// D_l of a set of score matrices (Wanda scores of one block's linears).
double OutlierRatio(const std::vector<MatrixRM>& scores, double m);

// The allocation above from the per-layer outlier ratios (non-empty).
// InvalidArgument when S is outside [0, 1), lambda < 0, or a resulting
// sparsity falls outside [0, 1) (the message names lambda).
absl::StatusOr<std::vector<double>> OwlSparsities(const std::vector<double>& outlier_ratios, double target,
                                                  double lambda);

// D_l of every block of `model` on the calibration `sequences` (run through
// the model as it is, block after block, in one pass, as OWL does): the
// linears `include(layer, which)` selects are scored; a block with none
// selected gets -1 (callers leave it out of the allocation).
absl::StatusOr<std::vector<double>> ModelOutlierRatios(const Model& model,
                                                       const std::vector<std::vector<int>>& sequences, double m,
                                                       const std::function<bool(int, BlockLinear)>& include,
                                                       ThreadPool& pool = ThreadPool::Default());

}  // namespace squeeze
