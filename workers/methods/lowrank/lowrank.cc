#include "workers/methods/lowrank/lowrank.h"

#include <algorithm>
#include <cmath>

#include <Eigen/SVD>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace squeeze {

std::string LowRankMethodName(LowRankMethod m) {
  switch (m) {
    case LowRankMethod::kAsvd: return "asvd";
    case LowRankMethod::kSvdLlm: return "svd_llm";
    case LowRankMethod::kSvd: break;
  }
  return "svd";
}

absl::Status ValidateLowRankOptions(const LowRankOptions& o) {
  const int set = (o.rank > 0) + (o.rank_ratio > 0) + (o.energy > 0);
  if (set != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "exactly one of rank (> 0), rank_ratio (in (0, 1]) or energy (in (0, 1]) must be given, got ", set));
  }
  if (o.rank < 0) return absl::InvalidArgumentError(absl::StrCat("rank ", o.rank, " is negative"));
  if (!(o.rank_ratio >= 0 && o.rank_ratio <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("rank_ratio ", o.rank_ratio, " is outside (0, 1]"));
  }
  if (!(o.energy >= 0 && o.energy <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("energy ", o.energy, " is outside (0, 1]"));
  }
  if (!(o.asvd_alpha >= 0 && std::isfinite(o.asvd_alpha))) {
    return absl::InvalidArgumentError(absl::StrCat("asvd_alpha ", o.asvd_alpha, " must be a finite value >= 0"));
  }
  return absl::OkStatus();
}

int64_t SelectRank(const std::vector<double>& s, int64_t out, int64_t in, const LowRankOptions& o) {
  const int64_t full = std::min(out, in);
  int64_t r = full;
  if (o.rank > 0) {
    r = o.rank;
  } else if (o.rank_ratio > 0) {
    r = static_cast<int64_t>(std::llround(o.rank_ratio * static_cast<double>(full)));
  } else if (o.energy > 0) {
    double total = 0;
    for (double v : s) total += v * v;
    double kept = 0;
    r = 0;
    while (r < static_cast<int64_t>(s.size()) && (total <= 0 || kept < o.energy * total * (1 - 1e-12))) {
      kept += s[r] * s[r];
      ++r;
    }
  }
  return std::clamp<int64_t>(r, 1, full);
}

std::vector<double> AsvdScales(const std::vector<double>& m, double alpha) {
  std::vector<double> s(m.size(), 1.0);
  double top = 0;
  for (size_t j = 0; j < m.size(); ++j) {
    s[j] = std::pow(std::max(0.0, m[j]), alpha);
    top = std::max(top, s[j]);
  }
  if (!(top > 0) || !std::isfinite(top)) return std::vector<double>(m.size(), 1.0);
  for (double& v : s) v = std::max(v, 1e-8 * top);
  return s;
}

absl::StatusOr<LowRankResult> LowRankFactorize(const MatrixRM& w, const std::vector<double>& channel_magnitudes,
                                               const LowRankOptions& o) {
  if (absl::Status s = ValidateLowRankOptions(o); !s.ok()) return s;
  const int64_t out = w.rows(), in = w.cols();
  if (out < 1 || in < 1) return absl::InvalidArgumentError("empty weight");
  if (!w.allFinite()) return absl::InvalidArgumentError("weight has non-finite values");
  if (o.method == LowRankMethod::kSvdLlm) {
    return absl::InvalidArgumentError("SVD-LLM needs X^T X: use SvdLlmFactorize (svd_llm.h)");
  }
  Eigen::MatrixXd a = w.cast<double>();
  std::vector<double> scale;
  if (o.method == LowRankMethod::kAsvd) {
    if (static_cast<int64_t>(channel_magnitudes.size()) != in) {
      return absl::InvalidArgumentError(absl::StrCat("ASVD needs ", in, " input channel magnitudes, got ",
                                                     channel_magnitudes.size()));
    }
    scale = AsvdScales(channel_magnitudes, o.asvd_alpha);
    for (int64_t j = 0; j < in; ++j) a.col(j) *= scale[j];
  }
  Eigen::BDCSVD<Eigen::MatrixXd> svd(a, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::VectorXd& sv = svd.singularValues();
  LowRankResult res;
  res.singular_values.assign(sv.data(), sv.data() + sv.size());
  const int64_t r = SelectRank(res.singular_values, out, in, o);
  if (r * (out + in) >= out * in && !o.allow_no_savings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank ", r, " saves no parameters for a [", out, ", ", in, "] weight (r * (out + in) = ", r * (out + in),
        " >= out * in = ", out * in, "; the largest useful rank is ", (out * in - 1) / (out + in),
        "); lower the rank or set allow_no_savings: true"));
  }
  res.rank = r;
  double total = 0, kept = 0;
  for (int64_t i = 0; i < sv.size(); ++i) {
    total += sv[i] * sv[i];
    if (i < r) kept += sv[i] * sv[i];
  }
  res.energy_kept = total > 0 ? kept / total : 1.0;
  const Eigen::VectorXd root = sv.head(r).cwiseSqrt();
  Eigen::MatrixXd u = svd.matrixU().leftCols(r) * root.asDiagonal();               // [out, r]
  Eigen::MatrixXd v = root.asDiagonal() * svd.matrixV().leftCols(r).transpose();  // [r, in]
  if (!scale.empty()) {
    for (int64_t j = 0; j < in; ++j) v.col(j) /= scale[j];
  }
  res.u = u.cast<float>();
  res.v = v.cast<float>();
  return res;
}

}  // namespace squeeze
