#include "workers/engine/train/losses.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace squeeze::train {
namespace {

// log_softmax(x / T) of one row into out (double).
void LogSoftmax(const float* x, int64_t v, double inv_t, double* out) {
  double mx = -INFINITY;
  for (int64_t j = 0; j < v; ++j) mx = std::max(mx, x[j] * inv_t);
  double sum = 0;
  for (int64_t j = 0; j < v; ++j) sum += std::exp(x[j] * inv_t - mx);
  const double lse = mx + std::log(sum);
  for (int64_t j = 0; j < v; ++j) out[j] = x[j] * inv_t - lse;
}

}  // namespace

absl::StatusOr<LossKind> ParseLossKind(absl::string_view name) {
  if (name == "ce" || name == "cross_entropy") return LossKind::kCrossEntropy;
  if (name == "forward_kl" || name == "kd") return LossKind::kForwardKl;
  if (name == "reverse_kl" || name == "minillm") return LossKind::kReverseKl;
  if (name == "gkd" || name == "jsd" || name == "generalized_jsd") return LossKind::kGeneralizedJsd;
  return absl::InvalidArgumentError(absl::StrCat("loss \"", std::string(name),
                                                 "\" is not one of ce, forward_kl, reverse_kl, gkd"));
}

const char* LossKindName(LossKind kind) {
  switch (kind) {
    case LossKind::kCrossEntropy: return "ce";
    case LossKind::kForwardKl: return "forward_kl";
    case LossKind::kReverseKl: return "reverse_kl";
    case LossKind::kGeneralizedJsd: return "gkd";
  }
  return "?";
}

double CrossEntropy(const MatrixRM& logits, absl::Span<const int> targets, double scale, MatrixRM* grad,
                    ThreadPool& pool) {
  const int64_t n = logits.rows(), v = logits.cols();
  int64_t counted = 0;
  for (int64_t i = 0; i < n; ++i) counted += targets[i] >= 0;
  if (grad) grad->setZero(n, v);
  if (counted == 0) return 0.0;
  std::vector<double> row_loss(n, 0.0);
  const double w = scale / counted;
  pool.ParallelFor(n, 1, [&](int64_t b, int64_t e) {
    std::vector<double> lp(v);
    for (int64_t i = b; i < e; ++i) {
      if (targets[i] < 0) continue;
      LogSoftmax(logits.data() + i * v, v, 1.0, lp.data());
      row_loss[i] = -lp[targets[i]];
      if (grad) {
        for (int64_t j = 0; j < v; ++j) (*grad)(i, j) = static_cast<float>(w * std::exp(lp[j]));
        (*grad)(i, targets[i]) -= static_cast<float>(w);
      }
    }
  });
  double total = 0;
  for (double l : row_loss) total += l;
  return total * w;
}

absl::StatusOr<double> DistillLoss(const MatrixRM& student, const MatrixRM& teacher, const DistillLossOptions& o,
                                   absl::Span<const float> row_weights, double scale, MatrixRM* grad,
                                   ThreadPool& pool) {
  const int64_t n = student.rows(), v = student.cols();
  if (teacher.rows() != n || teacher.cols() != v) {
    return absl::InvalidArgumentError(absl::StrCat("distill loss: teacher logits [", teacher.rows(), ", ",
                                                   teacher.cols(), "] do not match student [", n, ", ", v, "]"));
  }
  if (!row_weights.empty() && static_cast<int64_t>(row_weights.size()) != n) {
    return absl::InvalidArgumentError("distill loss: row_weights size does not match the logits rows");
  }
  if (!(o.temperature > 0)) return absl::InvalidArgumentError("distill loss: temperature must be > 0");
  if (!(o.beta >= 0 && o.beta <= 1)) return absl::InvalidArgumentError("distill loss: beta must be in [0, 1]");
  if (o.kind == LossKind::kCrossEntropy) {
    return absl::InvalidArgumentError("distill loss: cross-entropy takes targets, not teacher logits");
  }
  double wsum = 0;
  for (int64_t i = 0; i < n; ++i) wsum += row_weights.empty() ? 1.0 : row_weights[i];
  if (grad) grad->setZero(n, v);
  if (wsum <= 0) return 0.0;
  const double inv_t = 1.0 / o.temperature, t2 = double{o.temperature} * o.temperature;
  const double beta = o.beta;
  std::vector<double> row_loss(n, 0.0);
  pool.ParallelFor(n, 1, [&](int64_t b, int64_t e) {
    std::vector<double> lq(v), lp(v), g(v);
    for (int64_t i = b; i < e; ++i) {
      const double rw = row_weights.empty() ? 1.0 : row_weights[i];
      if (rw == 0) continue;
      LogSoftmax(student.data() + i * v, v, inv_t, lq.data());
      LogSoftmax(teacher.data() + i * v, v, inv_t, lp.data());
      double loss = 0;
      // g = dLoss/dq (per unit row weight), then chained through softmax(s/T).
      if (o.kind == LossKind::kForwardKl || (o.kind == LossKind::kGeneralizedJsd && beta == 0)) {
        for (int64_t j = 0; j < v; ++j) loss += std::exp(lp[j]) * (lp[j] - lq[j]);
        // direct: dKL/ds = (q - p)/T
        for (int64_t j = 0; j < v; ++j) g[j] = (std::exp(lq[j]) - std::exp(lp[j])) * inv_t;
      } else if (o.kind == LossKind::kReverseKl || beta == 1) {
        for (int64_t j = 0; j < v; ++j) loss += std::exp(lq[j]) * (lq[j] - lp[j]);
        for (int64_t j = 0; j < v; ++j) g[j] = std::exp(lq[j]) * ((lq[j] - lp[j]) - loss) * inv_t;
      } else {
        // m = beta p + (1 - beta) q, in log space.
        double dot = 0;
        for (int64_t j = 0; j < v; ++j) {
          const double p = std::exp(lp[j]), q = std::exp(lq[j]);
          const double lm = std::log(beta * p + (1 - beta) * q);
          if (p > 0) loss += beta * p * (lp[j] - lm);
          if (q > 0) loss += (1 - beta) * q * (lq[j] - lm);
          g[j] = (1 - beta) * (lq[j] - lm);  // dLoss/dq_j
          dot += q * g[j];
        }
        for (int64_t j = 0; j < v; ++j) g[j] = std::exp(lq[j]) * (g[j] - dot) * inv_t;
      }
      row_loss[i] = rw * loss * t2;
      if (grad) {
        const double w = scale * rw * t2 / wsum;
        for (int64_t j = 0; j < v; ++j) (*grad)(i, j) = static_cast<float>(w * g[j]);
      }
    }
  });
  double total = 0;
  for (double l : row_loss) total += l;
  return total * scale / wsum;
}

}  // namespace squeeze::train
