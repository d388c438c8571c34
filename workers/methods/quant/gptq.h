// GPTQ weight quantization (Frantar et al. 2022, "GPTQ: Accurate Post-Training
// Quantization for Generative Pre-trained Transformers").
//
// Given W [out, in] and the layer Hessian H = 2 X^T X / n [in, in] (X: the
// calibration inputs, n rows), GPTQ quantizes W one input column at a time and
// spreads each column's rounding error over the columns not yet quantized,
// weighted by the inverse Hessian, minimizing ||W X^T - Q X^T||^2.
//
// Algorithm (as the authors' reference, with the notes below):
//   1. dead columns (H[c, c] == 0, inputs never non-zero): H[c, c] = 1,
//      W[:, c] = 0;
//   2. act-order (optional): process columns by descending H[c, c]
//      (stable sort, so ties keep input order);
//   3. dampening: H += dampening_frac * mean(diag H) * I;
//   4. U = upper Cholesky factor of H^-1 (H^-1 = U^T U), in double (Eigen);
//   5. for each column j in processing order: q_j = quant(w_j) with the
//      current (row, group) scale / zero point; err = (w_j - q_j) / U[j, j];
//      w_k -= err * U[j, k] for every later k. The blocked version applies
//      this to the columns of a block of `block_size` at once and to the
//      columns after the block by one GEMM ("lazy batch updates"); it gives
//      the same result as the column-by-column reference up to rounding
//      (tested).
// Scale / zero point (quant_grid.h: the same formulas and fp32 arithmetic as RTN):
//   - tensor / channel: computed once from W (after step 1);
//   - group, no act-order or act-order "group": computed when the group's
//     first column is reached, from the group's current (error-updated)
//     columns [j, j + G) in processing order. Unlike the authors' code, which
//     reads the group from the outer W and so misses the updates made inside
//     the current block when a group starts mid-block, the values used here
//     are the fully updated ones (the column-by-column semantics);
//   - group with act-order "static" (llm-compressor's "weight"): computed up
//     front from W in input order (the authors' static_groups), so groups stay
//     contiguous in input order and no g_idx is needed.
// act-order follows compressed-tensors' ActivationOrdering:
//   kStatic ("static" == "weight"): columns processed in act-order, groups in
//       input order: the storage format is unchanged.
//   kGroup ("group" == "dynamic"): groups are consecutive runs of G columns
//       in act-order; the packed layer stores g_idx[c] = the group of input c.
// Working precision: W and all updates in double; codes are chosen from the
// fp32 value of the updated weight (so with H = I GPTQ gives RTN's codes bit
// for bit) and the error uses the fp32 dequantized value the layer stores.
// Deterministic: rows are processed in fixed chunks independent of the pool.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <Eigen/Core>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/calib/activation_stats.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/quant_args.h"

namespace squeeze {

enum class ActOrder {
  kNone,
  kStatic,  // compressed-tensors "static" / "weight"
  kGroup,   // compressed-tensors "group" / "dynamic"
};
// "none" | "static" | "group".
absl::string_view ActOrderName(ActOrder a);
// Accepts the compressed-tensors names and aliases: "static", "weight",
// "group", "dynamic" ("none" too). InvalidArgument otherwise.
absl::StatusOr<ActOrder> ParseActOrder(absl::string_view name);

struct GptqOptions {
  WeightQuantArgs quant;
  int64_t block_size = 128;      // columns per lazy-update block (> 0)
  double dampening_frac = 0.01;  // of mean(diag H); >= 0
  ActOrder actorder = ActOrder::kNone;
};

struct GptqResult {
  std::unique_ptr<PackedIntLinear> layer;
  // The authors' per-layer loss: sum over all weights of (w - q)^2 / U[j,j]^2
  // / 2, with w the error-updated weight when quantized (printed as "error"
  // by their script). Unitless up to the scale of H.
  double loss = 0;
  int64_t dead_columns = 0;
  double damp = 0;  // the value added to diag H
};

// The Hessian 2 X^T X / n from calibration statistics (which must hold xtx).
// FailedPrecondition when stats has no xtx or saw no rows.
absl::StatusOr<Eigen::MatrixXd> GptqHessian(const ActivationStats& stats);

// Blocked GPTQ with lazy batch updates; returns the packed layer (bias copied
// through). Errors: InvalidArgument on shapes / options; FailedPrecondition
// when the damped Hessian is not positive definite.
absl::StatusOr<GptqResult> QuantizeGptq(const MatrixRM& w, const Eigen::MatrixXd& hessian,
                                        const GptqOptions& options, std::vector<float> bias = {},
                                        ThreadPool& pool = ThreadPool::Default());

// The plain reference: the same method column by column on the whole matrix,
// no blocks, no lazy updates, no threads. For tests.
absl::StatusOr<GptqResult> QuantizeGptqReference(const MatrixRM& w, const Eigen::MatrixXd& hessian,
                                                 const GptqOptions& options);

// Relative output error ||(W - W_hat) X^T||_F / ||W X^T||_F computed from
// xtx = X^T X (any positive multiple of it gives the same value); 0 when
// W X^T == 0.
double RelativeOutputError(const MatrixRM& w, const MatrixRM& w_hat, const Eigen::MatrixXd& xtx);

}  // namespace squeeze
