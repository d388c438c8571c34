#include "workers/methods/prune/magnitude.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace squeeze {
namespace {

// Zeroes the k smallest |v| among v[idx[0..n)] (ties: lower index first).
void PruneSmallest(float* v, std::vector<int64_t>& idx, int64_t k) {
  if (k <= 0) return;
  auto less = [v](int64_t a, int64_t b) {
    const float fa = std::fabs(v[a]), fb = std::fabs(v[b]);
    return fa < fb || (fa == fb && a < b);
  };
  if (k < static_cast<int64_t>(idx.size())) {
    std::nth_element(idx.begin(), idx.begin() + k, idx.end(), less);
  }
  for (int64_t i = 0; i < k && i < static_cast<int64_t>(idx.size()); ++i) v[idx[i]] = 0.0f;
}

}  // namespace

int64_t CountZeros(const MatrixRM& w) {
  return static_cast<int64_t>((w.array() == 0.0f).count());
}

absl::StatusOr<MatrixRM> MagnitudePrune(const MatrixRM& w, const MagnitudeOptions& options,
                                        PruneStats* stats) {
  const int64_t out = w.rows(), in = w.cols();
  MatrixRM r = w;
  float* v = r.data();
  if (!options.mask.unstructured()) {
    const int m = options.mask.m, n = options.mask.n;
    if (in % m != 0) {
      return absl::InvalidArgumentError(absl::StrCat("mask structure ", options.mask.ToString(), ": ", in,
                                                     " inputs are not a multiple of ", m));
    }
    std::vector<int64_t> idx(m);
    for (int64_t g = 0; g < out * in; g += m) {
      std::iota(idx.begin(), idx.end(), g);
      PruneSmallest(v, idx, n);
    }
  } else {
    if (!(options.sparsity >= 0.0 && options.sparsity < 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat("sparsity ", options.sparsity, " is outside [0, 1)"));
    }
    if (options.comparison == PruneComparison::kLayer) {
      std::vector<int64_t> idx(static_cast<size_t>(out * in));
      std::iota(idx.begin(), idx.end(), 0);
      PruneSmallest(v, idx, std::llround(options.sparsity * static_cast<double>(out * in)));
    } else {
      const int64_t k = std::llround(options.sparsity * static_cast<double>(in));
      std::vector<int64_t> idx(static_cast<size_t>(in));
      for (int64_t row = 0; row < out; ++row) {
        std::iota(idx.begin(), idx.end(), row * in);
        PruneSmallest(v, idx, k);
      }
    }
  }
  if (stats) {
    stats->total = out * in;
    stats->zeros = CountZeros(r);
  }
  return r;
}

}  // namespace squeeze
