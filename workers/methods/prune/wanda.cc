#include "workers/methods/prune/wanda.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace squeeze {
namespace {

// Zeroes v[i] for the k lowest score[i] among i in idx (ties: lower index first).
void PruneLowest(float* v, const std::vector<double>& score, std::vector<int64_t>& idx, int64_t k) {
  if (k <= 0) return;
  auto less = [&score](int64_t a, int64_t b) { return score[a] < score[b] || (score[a] == score[b] && a < b); };
  if (k < static_cast<int64_t>(idx.size())) std::nth_element(idx.begin(), idx.begin() + k, idx.end(), less);
  for (int64_t i = 0; i < k && i < static_cast<int64_t>(idx.size()); ++i) v[idx[i]] = 0.0f;
}

}  // namespace

absl::StatusOr<MatrixRM> WandaPrune(const MatrixRM& w, const std::vector<double>& channel_norms,
                                    const WandaOptions& options, PruneStats* stats) {
  const int64_t out = w.rows(), in = w.cols();
  if (static_cast<int64_t>(channel_norms.size()) != in) {
    return absl::InvalidArgumentError(absl::StrCat("wanda: ", channel_norms.size(),
                                                   " input channel norms for a weight with ", in, " inputs"));
  }
  for (int64_t j = 0; j < in; ++j) {
    if (!std::isfinite(channel_norms[j]) || channel_norms[j] < 0.0) {
      return absl::InvalidArgumentError(
          absl::StrCat("wanda: input channel ", j, " has norm ", channel_norms[j], " (expected finite, >= 0)"));
    }
  }
  MatrixRM r = w;
  float* v = r.data();
  // score, flat row-major like w.
  std::vector<double> score(static_cast<size_t>(out * in));
  for (int64_t i = 0; i < out; ++i) {
    for (int64_t j = 0; j < in; ++j) {
      score[i * in + j] = std::fabs(static_cast<double>(v[i * in + j])) * channel_norms[j];
    }
  }
  if (!options.mask.unstructured()) {
    const int m = options.mask.m, n = options.mask.n;
    if (in % m != 0) {
      return absl::InvalidArgumentError(absl::StrCat("mask structure ", options.mask.ToString(), ": ", in,
                                                     " inputs are not a multiple of ", m));
    }
    std::vector<int64_t> idx(m);
    for (int64_t g = 0; g < out * in; g += m) {
      std::iota(idx.begin(), idx.end(), g);
      PruneLowest(v, score, idx, n);
    }
  } else {
    if (!(options.sparsity >= 0.0 && options.sparsity < 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat("sparsity ", options.sparsity, " is outside [0, 1)"));
    }
    if (options.comparison == PruneComparison::kLayer) {
      std::vector<int64_t> idx(static_cast<size_t>(out * in));
      std::iota(idx.begin(), idx.end(), 0);
      PruneLowest(v, score, idx, std::llround(options.sparsity * static_cast<double>(out * in)));
    } else {
      const int64_t k = std::llround(options.sparsity * static_cast<double>(in));
      std::vector<int64_t> idx(static_cast<size_t>(in));
      for (int64_t row = 0; row < out; ++row) {
        std::iota(idx.begin(), idx.end(), row * in);
        PruneLowest(v, score, idx, k);
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
