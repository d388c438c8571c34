// Truncated-SVD low-rank factorization of a linear weight, plain (SVD) and
// activation-aware (ASVD, Yuan et al. 2023, "ASVD: Activation-aware Singular
// Value Decomposition for Compressing Large Language Models").
//
// Plain SVD: W = P diag(s) Q^T (Eigen::BDCSVD in double); keep the top r
// singular triplets: U = P_r diag(sqrt(s_r)), V = diag(sqrt(s_r)) Q_r^T
// (the singular values are split evenly between the factors so both stay
// well scaled in fp32). By Eckart-Young, ||W - U V||_F^2 = sum_{i>=r} s_i^2,
// the least possible at rank r.
//
// ASVD: with per-input-channel activation magnitudes m_j, S = diag(m_j^alpha);
// factor W S as above and fold S^-1 into V: V <- V S^-1. This minimises the
// truncation error weighted by the channel scales, so channels that carry
// large activations are reconstructed better, which lowers the output error
// ||(W - U V) X^T|| when channel scales are uneven. The paper uses
// m_j = mean |x_j|; ActivationStats does not track mean |x| (only sum of
// squares, max |x| and X^T X), so the runner passes the RMS
// m_j = sqrt(sum_sq_j / count) — the same magnitude ordering up to the
// distribution's shape. Channels whose m_j^alpha is below 1e-8 of the
// largest are clamped to that floor (S must be invertible).
//
// Rank selection (exactly one of): `rank` (r), `rank_ratio` (r =
// round(ratio * min(out, in)), at least 1), `energy` (smallest r whose kept
// singular values hold at least this fraction of sum s_i^2; of W S for ASVD).
// r is capped at min(out, in). A rank that saves no parameters,
// r * (out + in) >= out * in, is refused unless allow_no_savings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"

namespace squeeze {

// kSvdLlm: SVD-LLM's whitening (svd_llm.h; LowRankFactorize refuses it).
enum class LowRankMethod { kSvd, kAsvd, kSvdLlm };

struct LowRankOptions {
  // Exactly one of the three is set (> 0).
  int64_t rank = 0;
  double rank_ratio = 0;  // (0, 1]
  double energy = 0;      // (0, 1]
  LowRankMethod method = LowRankMethod::kSvd;
  double asvd_alpha = 0.5;  // exponent of the ASVD channel scale, >= 0
  bool allow_no_savings = false;
};

// InvalidArgument unless exactly one of rank / rank_ratio / energy is set and
// in range, and asvd_alpha >= 0.
absl::Status ValidateLowRankOptions(const LowRankOptions& o);

struct LowRankResult {
  MatrixRM u;  // [out, r]
  MatrixRM v;  // [r, in]
  int64_t rank = 0;
  // All min(out, in) singular values of the factored matrix (W, or W S for
  // ASVD), descending.
  std::vector<double> singular_values;
  // Fraction of sum s_i^2 the kept values hold.
  double energy_kept = 0;
};

// The rank options select for singular values `s` (descending) of an
// [out, in] matrix, before the savings check.
int64_t SelectRank(const std::vector<double>& s, int64_t out, int64_t in, const LowRankOptions& o);

// Factorizes w [out, in]. `channel_magnitudes` (in values, >= 0) is required
// for ASVD and ignored for SVD. InvalidArgument on a bad option, missing /
// wrong-sized magnitudes, non-finite weights, or a rank that saves no
// parameters (unless allow_no_savings).
absl::StatusOr<LowRankResult> LowRankFactorize(const MatrixRM& w, const std::vector<double>& channel_magnitudes,
                                               const LowRankOptions& o);

// ASVD's channel scales m_j^alpha, clamped below at 1e-8 of the largest
// (all ones when every magnitude is 0).
std::vector<double> AsvdScales(const std::vector<double>& channel_magnitudes, double alpha);

std::string LowRankMethodName(LowRankMethod m);  // "svd" | "asvd" | "svd_llm"

}  // namespace squeeze
