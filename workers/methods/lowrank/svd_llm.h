// SVD-LLM (Wang et al. 2024, "SVD-LLM: Truncation-aware Singular Value
// Decomposition for Large Language Model Compression"): truncation-aware
// data whitening.
//
// With H = X^T X of the calibration inputs ([in, in]) and its Cholesky factor
// S (H = S S^T, S lower-triangular), factor W S = P diag(s) Q^T and keep the
// top r triplets:
//   U = P_r diag(sqrt(s_r))                 [out, r]
//   V = diag(sqrt(s_r)) Q_r^T S^-1          [r, in]
// Since ||(W - U V) X^T||_F^2 = ||(W - U V) S||_F^2 = sum_{i>=r} s_i^2, the
// truncation of each singular value costs exactly its square in output
// error, and U V is the best rank-r weight for the output on this data (the
// paper's Theorem 3.2), so its output error is at most plain SVD's and
// ASVD's at the same rank.
// H that is not positive definite (dead channels, fewer rows than inputs) is
// damped: H + eps I with eps = 1e-6 * mean(diag H), multiplied by 10 until the
// Cholesky succeeds (at most 12 tries); the damping used is reported.
// Rank selection as lowrank.h (energy is of W S's singular values).
#pragma once

#include <Eigen/Core>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/methods/lowrank/lowrank.h"

namespace squeeze {

struct SvdLlmResult {
  LowRankResult factors;  // singular_values / energy_kept of W S
  double damping = 0.0;   // eps added to H's diagonal (0 when H was PD)
};

// Factorizes w [out, in] with xtx = X^T X [in, in] (symmetric). InvalidArgument
// on a bad option, a wrong-sized or non-finite xtx, non-finite weights, an
// all-zero H, or a rank that saves no parameters (unless allow_no_savings).
// o.method is ignored.
absl::StatusOr<SvdLlmResult> SvdLlmFactorize(const MatrixRM& w, const Eigen::MatrixXd& xtx,
                                             const LowRankOptions& o);

}  // namespace squeeze
