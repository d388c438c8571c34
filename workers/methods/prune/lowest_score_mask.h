// The mask selection shared by magnitude pruning and Wanda: zero the weights
// of lowest score, by mask structure and comparison group (magnitude.h):
//   N:M:                     the N lowest of every M consecutive inputs of
//                            each row (in % M must be 0);
//   unstructured, per layer: the round(sparsity * out * in) lowest overall;
//   unstructured, per row:   the round(sparsity * in) lowest of each row.
// The score order is given by `less(a, b)` on flat row-major indices; it must
// be a strict total order (the callers break ties by the lower index, so the
// mask is deterministic).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/tensor.h"
#include "workers/methods/prune/magnitude.h"
#include "workers/methods/prune/mask_structure.h"

namespace squeeze {
namespace prune_internal {

// Zeroes v[i] for the k lowest i of idx under `less`.
template <typename Less>
void ZeroLowest(float* v, std::vector<int64_t>& idx, int64_t k, const Less& less) {
  if (k <= 0) return;
  if (k < static_cast<int64_t>(idx.size())) std::nth_element(idx.begin(), idx.begin() + k, idx.end(), less);
  for (int64_t i = 0; i < k && i < static_cast<int64_t>(idx.size()); ++i) v[idx[i]] = 0.0f;
}

}  // namespace prune_internal

// Zeroes the lowest-scoring weights of `r` ([out, in], in place) and fills
// `stats` when non-null. `less` may read r: each selection completes before
// its weights are zeroed, and selections cover disjoint weights.
// InvalidArgument when sparsity is outside [0, 1) (unstructured) or in is not
// a multiple of M (N:M).
template <typename Less>
absl::Status ZeroLowestScores(MatrixRM& r, const MaskStructure& mask, double sparsity, PruneComparison comparison,
                              const Less& less, PruneStats* stats) {
  const int64_t out = r.rows(), in = r.cols();
  float* v = r.data();
  if (!mask.unstructured()) {
    const int m = mask.m, n = mask.n;
    if (in % m != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("mask structure ", mask.ToString(), ": ", in, " inputs are not a multiple of ", m));
    }
    std::vector<int64_t> idx(m);
    for (int64_t g = 0; g < out * in; g += m) {
      std::iota(idx.begin(), idx.end(), g);
      prune_internal::ZeroLowest(v, idx, n, less);
    }
  } else {
    if (!(sparsity >= 0.0 && sparsity < 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat("sparsity ", sparsity, " is outside [0, 1)"));
    }
    if (comparison == PruneComparison::kLayer) {
      std::vector<int64_t> idx(static_cast<size_t>(out * in));
      std::iota(idx.begin(), idx.end(), 0);
      prune_internal::ZeroLowest(v, idx, std::llround(sparsity * static_cast<double>(out * in)), less);
    } else {
      const int64_t k = std::llround(sparsity * static_cast<double>(in));
      std::vector<int64_t> idx(static_cast<size_t>(in));
      for (int64_t row = 0; row < out; ++row) {
        std::iota(idx.begin(), idx.end(), row * in);
        prune_internal::ZeroLowest(v, idx, k, less);
      }
    }
  }
  if (stats) {
    stats->total = out * in;
    stats->zeros = CountZeros(r);
  }
  return absl::OkStatus();
}

}  // namespace squeeze
