#include "workers/methods/lowrank/svd_llm.h"

#include <cmath>

#include <Eigen/Cholesky>
#include <Eigen/SVD>

#include "absl/strings/str_cat.h"

namespace squeeze {

absl::StatusOr<SvdLlmResult> SvdLlmFactorize(const MatrixRM& w, const Eigen::MatrixXd& xtx, const LowRankOptions& o) {
  if (absl::Status s = ValidateLowRankOptions(o); !s.ok()) return s;
  const int64_t out = w.rows(), in = w.cols();
  if (out < 1 || in < 1) return absl::InvalidArgumentError("empty weight");
  if (!w.allFinite()) return absl::InvalidArgumentError("weight has non-finite values");
  if (xtx.rows() != in || xtx.cols() != in) {
    return absl::InvalidArgumentError(
        absl::StrCat("SVD-LLM needs X^T X of [", in, ", ", in, "], got [", xtx.rows(), ", ", xtx.cols(), "]"));
  }
  if (!xtx.allFinite()) return absl::InvalidArgumentError("X^T X has non-finite values");
  const double mean_diag = xtx.diagonal().mean();
  if (!(mean_diag > 0)) return absl::InvalidArgumentError("X^T X is zero (no calibration signal)");

  SvdLlmResult res;
  Eigen::LLT<Eigen::MatrixXd> llt(xtx);
  double eps = 1e-6 * mean_diag;
  for (int tries = 0; llt.info() != Eigen::Success; ++tries, eps *= 10) {
    if (tries >= 12) return absl::InvalidArgumentError("X^T X stays indefinite after damping");
    res.damping = eps;
    llt.compute(xtx + eps * Eigen::MatrixXd::Identity(in, in));
  }
  const Eigen::MatrixXd s = llt.matrixL();  // H (+ damping) = S S^T
  const Eigen::MatrixXd ws = w.cast<double>() * s;
  Eigen::BDCSVD<Eigen::MatrixXd> svd(ws, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::VectorXd& sv = svd.singularValues();
  LowRankResult& f = res.factors;
  f.singular_values.assign(sv.data(), sv.data() + sv.size());
  const int64_t r = SelectRank(f.singular_values, out, in, o);
  if (r * (out + in) >= out * in && !o.allow_no_savings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank ", r, " saves no parameters for a [", out, ", ", in, "] weight (r * (out + in) = ", r * (out + in),
        " >= out * in = ", out * in, "; the largest useful rank is ", (out * in - 1) / (out + in),
        "); lower the rank or set allow_no_savings: true"));
  }
  f.rank = r;
  double total = 0, kept = 0;
  for (int64_t i = 0; i < sv.size(); ++i) {
    total += sv[i] * sv[i];
    if (i < r) kept += sv[i] * sv[i];
  }
  f.energy_kept = total > 0 ? kept / total : 1.0;
  const Eigen::VectorXd root = sv.head(r).cwiseSqrt();
  const Eigen::MatrixXd u = svd.matrixU().leftCols(r) * root.asDiagonal();  // [out, r]
  // V = root Q_r^T S^-1  <=>  S^T V^T = Q_r root.
  const Eigen::MatrixXd qr = svd.matrixV().leftCols(r) * root.asDiagonal();  // [in, r]
  const Eigen::MatrixXd vt = s.transpose().triangularView<Eigen::Upper>().solve(qr);
  if (!u.allFinite() || !vt.allFinite()) return absl::InternalError("SVD-LLM factors are not finite");
  f.u = u.cast<float>();
  f.v = vt.transpose().cast<float>();
  return res;
}

}  // namespace squeeze
