// Wanda pruning (Sun et al. 2023, "A Simple and Effective Pruning Approach
// for Large Language Models"): the importance of weight W[i, j] is
//   score[i, j] = |W[i, j]| * ||X_j||_2
// where ||X_j||_2 is the L2 norm of input channel j over all calibration
// tokens (ActivationStats::ChannelNorms()). The lowest scores are zeroed; the
// kept weights are not changed (no weight update).
//
// Comparison groups (as in the paper, per output row by default):
//   unstructured, per row:   k = round(sparsity * in) lowest of each row;
//   unstructured, per layer: k = round(sparsity * out * in) lowest overall;
//   N:M:                     the N lowest of every M consecutive inputs of
//     each row (in % M must be 0); `sparsity` is then N / M.
// Ties are broken by position (lower flat index pruned first), so the mask is
// deterministic. Scores are formed in double: with all norms equal to c > 0
// the order of |W| is preserved exactly, so Wanda then equals magnitude
// pruning with the same comparison group.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/methods/prune/magnitude.h"
#include "workers/methods/prune/mask_structure.h"

namespace squeeze {

struct WandaOptions {
  double sparsity = 0.5;  // fraction zeroed, in [0, 1); ignored for N:M
  MaskStructure mask;     // default unstructured
  PruneComparison comparison = PruneComparison::kRow;
};

// Returns the pruned copy of `w` ([out, in]). `channel_norms` has `in`
// entries, each finite and >= 0. InvalidArgument on a size mismatch, a bad
// norm, a bad sparsity or (N:M) `in` not a multiple of M.
absl::StatusOr<MatrixRM> WandaPrune(const MatrixRM& w, const std::vector<double>& channel_norms,
                                    const WandaOptions& options, PruneStats* stats = nullptr);

}  // namespace squeeze
