#include "workers/methods/prune/wanda.h"

#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/methods/prune/lowest_score_mask.h"

namespace squeeze {

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
  const float* v = r.data();
  // score, flat row-major like w.
  std::vector<double> score(static_cast<size_t>(out * in));
  for (int64_t i = 0; i < out; ++i) {
    for (int64_t j = 0; j < in; ++j) {
      score[i * in + j] = std::fabs(static_cast<double>(v[i * in + j])) * channel_norms[j];
    }
  }
  auto less = [&score](int64_t a, int64_t b) { return score[a] < score[b] || (score[a] == score[b] && a < b); };
  if (absl::Status s = ZeroLowestScores(r, options.mask, options.sparsity, options.comparison, less, stats); !s.ok()) {
    return s;
  }
  return r;
}

}  // namespace squeeze
