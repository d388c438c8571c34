// SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can
// Be Accurately Pruned in One-Shot"): prunes a linear weight W [out, in] and
// updates the kept weights to minimize the layer's output error
// ||(W - W_hat) X^T||_F^2 over the calibration inputs X [rows, in], the OBS
// scheme with the Hessian H = 2 X^T X / rows.
//
// Steps (as the reference code, sparsegpt.py `fasterprune`), all in double:
//   1. dead inputs (H[j, j] == 0: channel j never nonzero): H[j, j] = 1 and
//      W[:, j] = 0;
//   2. dampening: H += dampening_frac * mean(diag H) * I (retried with 10x the
//      dampening, at most 3 times, if H is still not positive definite);
//   3. U = upper Cholesky factor of H^-1 (H^-1 = U^T U), computed from one
//      Cholesky factorization (of J H J, J the reversal permutation);
//   4. columns in blocks of block_size: the mask of a block is chosen from
//      w^2 / U[j, j]^2 of the block's (already updated) weights — unstructured:
//      the k lowest of the whole block over all rows, where the per-block k
//      are round(s * out * i2) - round(s * out * i1) so the layer gets exactly
//      round(s * out * in) zeros; N:M: the N lowest of every M consecutive
//      columns of each row, chosen when the sweep reaches the group;
//      then column by column: q = masked w, err = (w - q) / U[j, j], the rest
//      of the block -= err * U[j, j:] (OBS update), and the columns after the
//      block get the block's errors in one matrix product (lazy batch update).
// Ties in mask selection go to the lower index, so results are deterministic.
// Weights already zero (and dead columns) score 0 and are pruned first; the
// zero count is then at least (not exactly) the target.
#pragma once

#include <cstdint>

#include <Eigen/Core>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/methods/prune/magnitude.h"
#include "workers/methods/prune/mask_structure.h"

namespace squeeze {

struct SparseGptOptions {
  double sparsity = 0.5;  // fraction zeroed, in [0, 1); ignored for N:M
  MaskStructure mask;     // default unstructured
  int block_size = 128;   // columns per block, >= 1; a multiple of M for N:M
  double dampening_frac = 0.01;  // of mean(diag H), >= 0
};

struct SparseGptResult {
  MatrixRM weight;  // W_hat: pruned and updated
  PruneStats stats;
  int64_t dead_columns = 0;
  double damp = 0;  // the value added to diag(H)
  // ||(W - W_hat) X^T||_F^2 = tr((W - W_hat) X^T X (W - W_hat)^T) (undamped,
  // unscaled X^T X) and its ratio to ||W X^T||_F, not squared (0 if W X^T == 0).
  double output_error_sq = 0;
  double rel_output_error = 0;
};

// `xtx`: sum over calibration rows of x^T x, [in, in] (ActivationStats::xtx());
// `rows`: the number of rows summed (> 0). InvalidArgument on bad shapes or
// options; FailedPrecondition when H stays indefinite after the retries.
// Runs on `pool` (the inverse and the per-block row sweeps are split into
// fixed chunks: the result does not depend on the pool's size).
absl::StatusOr<SparseGptResult> SparseGptPrune(const MatrixRM& w, const Eigen::MatrixXd& xtx, int64_t rows,
                                               const SparseGptOptions& options,
                                               ThreadPool& pool = ThreadPool::Default());

// The plain reference: the same algorithm with no blocked / lazy updates
// (every column's OBS update is applied at once to all later columns; masks
// are still chosen per block_size columns), and U computed the plain way
// (Cholesky of H, inverse, Cholesky of H^-1) where SparseGptPrune gets it from
// one Cholesky factorization of the reversed H. Slow; for tests.
absl::StatusOr<SparseGptResult> SparseGptPruneReference(const MatrixRM& w, const Eigen::MatrixXd& xtx,
                                                        int64_t rows, const SparseGptOptions& options);

// ||(W - W_hat) X^T||_F^2 from xtx = X^T X (trace form, in double).
double OutputErrorSq(const MatrixRM& w, const MatrixRM& w_hat, const Eigen::MatrixXd& xtx);

}  // namespace squeeze
