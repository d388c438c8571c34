// Magnitude pruning: zero the weights of smallest |w| (the baseline of the
// pruning literature). The result is a masked dense weight.
//
// Comparison groups:
//   unstructured, per layer: the k = round(sparsity * out * in) smallest of
//     the whole matrix are zeroed;
//   unstructured, per row:   k = round(sparsity * in) smallest of each row;
//   N:M:                     the N smallest of every M consecutive inputs of
//     each row (in % M must be 0); `sparsity` is then N / M.
// Ties are broken by position (lower flat index is pruned first), so the mask
// is deterministic. Weights that are already zero count as the smallest.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/methods/prune/mask_structure.h"

namespace squeeze {

enum class PruneComparison { kLayer, kRow };

struct MagnitudeOptions {
  double sparsity = 0.5;  // fraction zeroed, in [0, 1); ignored for N:M
  MaskStructure mask;     // default unstructured
  PruneComparison comparison = PruneComparison::kLayer;
};

struct PruneStats {
  int64_t total = 0;
  int64_t zeros = 0;  // zeros in the result (including ones already there)
  double sparsity() const { return total == 0 ? 0.0 : static_cast<double>(zeros) / total; }
};

// Returns the pruned copy of `w`. InvalidArgument when sparsity is out of
// range or, for N:M, the number of inputs is not a multiple of M.
absl::StatusOr<MatrixRM> MagnitudePrune(const MatrixRM& w, const MagnitudeOptions& options,
                                        PruneStats* stats = nullptr);

// Counts exact zeros of `w`.
int64_t CountZeros(const MatrixRM& w);

}  // namespace squeeze
