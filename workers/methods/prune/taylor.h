// First-order Taylor importance of structures (LLM-Pruner, Ma et al. 2023,
// "vector-wise" importance), from the training engine's backward pass
// (workers/engine/train).
//
//   L(W)  = mean next-token cross-entropy over every predicted token of the
//           calibration sequences (each an independent causal sequence from
//           position 0; token t predicts token t + 1)
//   I(S)  = | sum over the parameters w of structure S of dL/dw * w |
//
// I(S) is the first-order estimate of |L(W with S removed) - L(W)|: removing
// S sets its parameters to 0, i.e. moves W by -W_S, and the change of L is
// -grad . W_S to first order. Equivalently I(S) = |d/dt L(W + t W_S)| at
// t = 0, which is what the finite-difference test checks.
//
// Structures are those of structured.h: head group g (GQA-aware: q rows and
// o columns of the query heads sharing kv head g, k / v rows of kv head g,
// and the q / k / v bias entries of those rows), and MLP channel c (gate /
// up row c with their bias entries, down column c).
#pragma once

#include <array>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/model.h"

namespace squeeze {

// dL/dW and dL/db of one block linear (bias grad empty when it has no bias).
struct LinearGradient {
  MatrixRM weight;           // [out, in]
  std::vector<double> bias;  // [out] or empty
};

// Gradients of L (above) with respect to every block linear, [layer][which]
// in BlockLinear order. Sequences shorter than 2 tokens predict nothing and
// are skipped; InvalidArgument when none is left, or for a bad model / ids.
// Deterministic (the backward does not depend on the pool size).
absl::StatusOr<std::vector<std::array<LinearGradient, kNumBlockLinears>>> BlockLinearGradients(
    const Model& model, const std::vector<std::vector<int>>& sequences, ThreadPool& pool);

struct TaylorScores {
  std::vector<std::vector<double>> head_groups;  // [layer][kv head group]
  std::vector<std::vector<double>> channels;     // [layer][MLP channel]
};

// I(S) for every head group and MLP channel of every block.
absl::StatusOr<TaylorScores> TaylorImportance(const Model& model, const std::vector<std::vector<int>>& sequences,
                                              ThreadPool& pool);

}  // namespace squeeze
