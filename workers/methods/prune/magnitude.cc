#include "workers/methods/prune/magnitude.h"

#include <cmath>

#include "absl/status/status.h"
#include "workers/methods/prune/lowest_score_mask.h"

namespace squeeze {

int64_t CountZeros(const MatrixRM& w) {
  return static_cast<int64_t>((w.array() == 0.0f).count());
}

absl::StatusOr<MatrixRM> MagnitudePrune(const MatrixRM& w, const MagnitudeOptions& options,
                                        PruneStats* stats) {
  MatrixRM r = w;
  const float* v = r.data();
  // |w| ascending, ties: lower index first.
  auto less = [v](int64_t a, int64_t b) {
    const float fa = std::fabs(v[a]), fb = std::fabs(v[b]);
    return fa < fb || (fa == fb && a < b);
  };
  if (absl::Status s = ZeroLowestScores(r, options.mask, options.sparsity, options.comparison, less, stats); !s.ok()) {
    return s;
  }
  return r;
}

}  // namespace squeeze
