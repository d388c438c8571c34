// Training losses on logits [N, vocab] (row = one token position), each
// returning the mean loss over the counted rows and writing dLoss/dlogits.
//
// p = softmax(teacher / T) (teacher), q = softmax(student / T) (student).
//   CrossEntropy      -log softmax(student)[target]; target < 0 = row ignored
//   ForwardKl         T^2 * KL(p || q) = T^2 sum p (log p - log q)  — standard
//                     KD (Hinton et al. 2015); T^2 keeps gradient magnitudes
//                     comparable across temperatures
//   ReverseKl         T^2 * KL(q || p) — the divergence MiniLLM (Gu et al.
//                     2023) minimises (mode seeking)
//   GeneralizedJsd    T^2 * [beta KL(p || m) + (1 - beta) KL(q || m)],
//                     m = beta p + (1 - beta) q, for 0 < beta < 1. Endpoints
//                     follow the GKD paper (Agarwal et al. 2023) and its
//                     reference implementation (TRL generalized_jsd_loss):
//                     beta = 0 is forward KL(p || q), beta = 1 is reverse
//                     KL(q || p) (the formula itself vanishes at both ends;
//                     near them it behaves like those KLs scaled by beta
//                     resp. 1 - beta).
// Gradients: dKL(p||q)/ds = (q - p)/T; dKL(q||p)/ds_j = q_j (log q_j/p_j - KL)/T;
// dJSD/dq_v = (1 - beta) log(q_v / m_v), chained through the softmax.
// Row weights: rows with weight 0 are skipped; the mean divides by the sum of
// weights (empty span = all rows weight 1). `scale` multiplies both the loss
// and the gradient (e.g. 1 / gradient-accumulation steps).
// Row sums run in double; rows are independent, so the parallel split does
// not change any result.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/core/thread_pool.h"

namespace squeeze::train {

enum class LossKind { kCrossEntropy, kForwardKl, kReverseKl, kGeneralizedJsd };
// "ce" | "forward_kl" | "reverse_kl" | "gkd" (aliases "cross_entropy", "kd", "minillm", "jsd").
absl::StatusOr<LossKind> ParseLossKind(absl::string_view name);
const char* LossKindName(LossKind kind);

double CrossEntropy(const MatrixRM& logits, absl::Span<const int> targets, double scale, MatrixRM* grad,
                    ThreadPool& pool);

struct DistillLossOptions {
  LossKind kind = LossKind::kForwardKl;
  float temperature = 1.0f;
  float beta = 0.5f;  // GeneralizedJsd only
};

// student, teacher: [N, vocab]. grad may be null.
absl::StatusOr<double> DistillLoss(const MatrixRM& student, const MatrixRM& teacher, const DistillLossOptions& options,
                                   absl::Span<const float> row_weights, double scale, MatrixRM* grad,
                                   ThreadPool& pool);

}  // namespace squeeze::train
