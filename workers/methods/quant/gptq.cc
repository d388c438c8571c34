#include "workers/methods/quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <Eigen/Cholesky>
#include <Eigen/Dense>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/methods/quant/quant_grid.h"

namespace squeeze {
namespace {

using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows per task. Fixed (not derived from the pool size) so that the bits do
// not depend on the number of threads.
constexpr int64_t kRowsPerChunk = 32;

// Everything both versions share: the prepared weight, the column order, the
// inverse-Hessian factor and the parameters known before the column loop.
struct Prepared {
  int64_t out = 0, in = 0;
  MatrixD w;                  // [out, in], processing order, dead columns zeroed
  std::vector<int64_t> perm;  // processing position -> input column
  MatrixD u;                  // upper Cholesky factor of H^-1, processing order
  int64_t dead = 0;
  double damp = 0;
  int64_t gs = 0, gpr = 0;  // effective group size, groups per row
  // Parameters fixed before the loop ([out, gpr], in the group order of the
  // stored layer): tensor, channel, group + static act-order. Empty when
  // groups are computed as they start (group strategy otherwise).
  std::vector<QuantGroupParams> fixed;
  bool dynamic_groups() const { return fixed.empty(); }
};

absl::StatusOr<Prepared> Prepare(const MatrixRM& w, const Eigen::MatrixXd& hessian, const GptqOptions& o) {
  if (absl::Status s = o.quant.Validate(); !s.ok()) return s;
  if (o.block_size <= 0) return absl::InvalidArgumentError(absl::StrCat("block_size ", o.block_size, " must be positive"));
  if (!(o.dampening_frac >= 0.0) || !std::isfinite(o.dampening_frac)) {
    return absl::InvalidArgumentError(absl::StrCat("dampening_frac ", o.dampening_frac, " must be >= 0"));
  }
  Prepared p;
  p.out = w.rows();
  p.in = w.cols();
  if (p.out <= 0 || p.in <= 0) return absl::InvalidArgumentError("empty weight");
  if (hessian.rows() != p.in || hessian.cols() != p.in) {
    return absl::InvalidArgumentError(absl::StrCat("Hessian is [", hessian.rows(), ", ", hessian.cols(),
                                                   "], expected [", p.in, ", ", p.in, "]"));
  }
  if (!hessian.allFinite()) return absl::InvalidArgumentError("Hessian has non-finite values");
  const WeightQuantArgs& a = o.quant;
  p.gs = a.EffectiveGroupSize(p.in);
  p.gpr = a.GroupsPerRow(p.in);

  Eigen::MatrixXd h = hessian;
  MatrixD w0 = w.cast<double>();
  for (int64_t c = 0; c < p.in; ++c) {
    if (h(c, c) == 0.0) {
      h(c, c) = 1.0;
      w0.col(c).setZero();
      ++p.dead;
    }
  }
  // Parameters fixed up front, from W (dead columns zeroed) in input order.
  const MatrixRM wf = w0.cast<float>();
  if (a.strategy != QuantStrategy::kGroup || o.actorder == ActOrder::kStatic) {
    p.fixed = ComputeAllQuantGroupParams(wf, a);
  }

  p.perm.resize(static_cast<size_t>(p.in));
  std::iota(p.perm.begin(), p.perm.end(), int64_t{0});
  if (o.actorder != ActOrder::kNone) {
    std::stable_sort(p.perm.begin(), p.perm.end(), [&](int64_t x, int64_t y) { return h(x, x) > h(y, y); });
  }
  Eigen::MatrixXd hp(p.in, p.in);
  p.w.resize(p.out, p.in);
  for (int64_t j = 0; j < p.in; ++j) {
    p.w.col(j) = w0.col(p.perm[j]);
    for (int64_t k = 0; k < p.in; ++k) hp(j, k) = h(p.perm[j], p.perm[k]);
  }
  p.damp = o.dampening_frac * hp.diagonal().mean();
  hp.diagonal().array() += p.damp;
  const char* kHint =
      "the damped Hessian is not positive definite (increase dampening_frac or the number of "
      "calibration samples)";
  Eigen::LLT<Eigen::MatrixXd> llt(hp);
  if (llt.info() != Eigen::Success) return absl::FailedPreconditionError(kHint);
  const Eigen::MatrixXd hinv = llt.solve(Eigen::MatrixXd::Identity(p.in, p.in));
  Eigen::LLT<Eigen::MatrixXd> llt2(0.5 * (hinv + hinv.transpose()));
  if (llt2.info() != Eigen::Success) return absl::FailedPreconditionError(kHint);
  p.u = llt2.matrixU();
  if (!p.u.allFinite()) return absl::FailedPreconditionError(kHint);
  return p;
}

// The (row, stored group) parameters of the column at processing position j.
int64_t StoredGroup(const Prepared& p, const GptqOptions& o, int64_t j) {
  if (o.actorder == ActOrder::kGroup) return j / p.gs;  // groups in processing order
  return p.perm[j] / p.gs;                              // groups in input order
}

// Collects the results: codes in processing order [out, in] and the
// parameters of every (row, stored group).
struct Output {
  std::vector<int32_t> codes;        // [out, in], processing order
  std::vector<QuantGroupParams> params;   // [out, gpr]
  std::vector<double> row_loss;      // [out]
};

absl::StatusOr<GptqResult> Finish(const Prepared& p, const GptqOptions& o, const Output& res,
                                  std::vector<float> bias) {
  const WeightQuantArgs& a = o.quant;
  std::vector<int32_t> q(static_cast<size_t>(p.out * p.in));
  for (int64_t r = 0; r < p.out; ++r) {
    for (int64_t j = 0; j < p.in; ++j) q[r * p.in + p.perm[j]] = res.codes[r * p.in + j];
  }
  std::vector<float> scales;
  std::vector<int32_t> zeros;
  SplitQuantGroupParams(res.params, a, &scales, &zeros);
  std::vector<int32_t> g_idx;
  if (o.actorder == ActOrder::kGroup && a.strategy == QuantStrategy::kGroup) {
    g_idx.resize(static_cast<size_t>(p.in));
    for (int64_t j = 0; j < p.in; ++j) g_idx[p.perm[j]] = static_cast<int32_t>(j / p.gs);
  }
  auto layer = PackedIntLinear::FromCodes(a, p.out, p.in, q, std::move(scales), std::move(zeros), std::move(bias),
                                          std::move(g_idx));
  if (!layer.ok()) return layer.status();
  GptqResult r;
  r.layer = std::move(*layer);
  for (double l : res.row_loss) r.loss += l;
  r.dead_columns = p.dead;
  r.damp = p.damp;
  return r;
}

// Quantizes the value block `vals` (rows x 1, the current column) with the
// per-row parameters; writes codes, returns errors (w - q) / d in `err`, adds
// losses.
void QuantizeColumn(const double* vals, int64_t rows, int64_t stride, const QuantGroupParams* params,
                    int64_t params_stride, const WeightQuantArgs& a, double d, int32_t* codes,
                    int64_t codes_stride, double* err, double* row_loss) {
  for (int64_t r = 0; r < rows; ++r) {
    const double v = vals[r * stride];
    const QuantGroupParams& gp = params[r * params_stride];
    const int32_t c = QuantCode(static_cast<float>(v), gp, a);
    codes[r * codes_stride] = c;
    const double e = v - static_cast<double>(DequantCode(c, gp));
    err[r] = e / d;
    row_loss[r] += e * e / (d * d) / 2.0;
  }
}

// Parameters of rows [0, rows) for the group starting at processing position
// j, from `cur` (rows x n, the group's current values).
void DynamicParams(const MatrixD& cur, const WeightQuantArgs& a, QuantGroupParams* dst, int64_t dst_stride) {
  std::vector<float> buf(static_cast<size_t>(cur.cols()));
  for (int64_t r = 0; r < cur.rows(); ++r) {
    for (int64_t k = 0; k < cur.cols(); ++k) buf[k] = static_cast<float>(cur(r, k));
    dst[r * dst_stride] = ComputeQuantGroupParams(buf.data(), cur.cols(), a);
  }
}

}  // namespace

absl::string_view ActOrderName(ActOrder a) {
  switch (a) {
    case ActOrder::kNone: return "none";
    case ActOrder::kStatic: return "static";
    case ActOrder::kGroup: return "group";
  }
  return "?";
}

absl::StatusOr<ActOrder> ParseActOrder(absl::string_view name) {
  if (name == "none") return ActOrder::kNone;
  if (name == "static" || name == "weight") return ActOrder::kStatic;
  if (name == "group" || name == "dynamic") return ActOrder::kGroup;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown actorder \"", name, "\" (expected null, false, static, weight, group or dynamic)"));
}

absl::StatusOr<Eigen::MatrixXd> GptqHessian(const ActivationStats& stats) {
  if (!stats.has_xtx()) return absl::FailedPreconditionError("calibration statistics hold no X^T X");
  if (stats.count() <= 0) return absl::FailedPreconditionError("calibration statistics saw no rows");
  return (2.0 / static_cast<double>(stats.count())) * stats.xtx();
}

absl::StatusOr<GptqResult> QuantizeGptq(const MatrixRM& w, const Eigen::MatrixXd& hessian,
                                        const GptqOptions& options, std::vector<float> bias, ThreadPool& pool) {
  auto prep = Prepare(w, hessian, options);
  if (!prep.ok()) return prep.status();
  const Prepared& p = *prep;
  const WeightQuantArgs& a = options.quant;
  const int64_t in = p.in, gpr = p.gpr, bs = options.block_size;
  Output res;
  res.codes.resize(static_cast<size_t>(p.out * in));
  res.params = p.fixed;
  if (p.dynamic_groups()) res.params.resize(static_cast<size_t>(p.out * gpr));
  res.row_loss.assign(static_cast<size_t>(p.out), 0.0);

  const int64_t n_chunks = (p.out + kRowsPerChunk - 1) / kRowsPerChunk;
  pool.ParallelFor(n_chunks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * kRowsPerChunk, rows = std::min(p.out, r0 + kRowsPerChunk) - r0;
      MatrixD W = p.w.middleRows(r0, rows);
      QuantGroupParams* params = res.params.data() + r0 * gpr;
      int32_t* codes = res.codes.data() + r0 * in;
      double* loss = res.row_loss.data() + r0;
      std::vector<double> err(static_cast<size_t>(rows));
      for (int64_t i1 = 0; i1 < in; i1 += bs) {
        const int64_t i2 = std::min(in, i1 + bs), count = i2 - i1;
        MatrixD W1 = W.middleCols(i1, count);
        MatrixD Err1 = MatrixD::Zero(rows, count);
        for (int64_t i = 0; i < count; ++i) {
          const int64_t j = i1 + i;
          if (p.dynamic_groups() && j % p.gs == 0) {
            // The group's current values: in-block columns from W1, later
            // columns from W minus the block's pending updates.
            const int64_t n = std::min(in, j + p.gs) - j;
            const int64_t n_in = std::min(n, i2 - j);
            MatrixD cur(rows, n);
            cur.leftCols(n_in) = W1.middleCols(i, n_in);
            if (n > n_in) {
              cur.rightCols(n - n_in) = W.middleCols(i2, n - n_in);
              if (i > 0) {
                cur.rightCols(n - n_in).noalias() -= Err1.leftCols(i) * p.u.block(i1, i2, i, n - n_in);
              }
            }
            DynamicParams(cur, a, params + StoredGroup(p, options, j), gpr);
          }
          const double d = p.u(j, j);
          QuantizeColumn(W1.data() + i, rows, W1.cols(), params + StoredGroup(p, options, j), gpr, a, d,
                         codes + j, in, err.data(), loss);
          Eigen::Map<const Eigen::VectorXd> e(err.data(), rows);
          Err1.col(i) = e;
          if (i + 1 < count) {
            W1.rightCols(count - i - 1).noalias() -= e * p.u.block(j, j + 1, 1, count - i - 1);
          }
        }
        if (i2 < in) W.rightCols(in - i2).noalias() -= Err1 * p.u.block(i1, i2, count, in - i2);
      }
    }
  });
  return Finish(p, options, res, std::move(bias));
}

absl::StatusOr<GptqResult> QuantizeGptqReference(const MatrixRM& w, const Eigen::MatrixXd& hessian,
                                                 const GptqOptions& options) {
  auto prep = Prepare(w, hessian, options);
  if (!prep.ok()) return prep.status();
  const Prepared& p = *prep;
  const WeightQuantArgs& a = options.quant;
  const int64_t in = p.in, gpr = p.gpr;
  Output res;
  res.codes.resize(static_cast<size_t>(p.out * in));
  res.params = p.fixed;
  if (p.dynamic_groups()) res.params.resize(static_cast<size_t>(p.out * gpr));
  res.row_loss.assign(static_cast<size_t>(p.out), 0.0);
  MatrixD W = p.w;
  std::vector<double> err(static_cast<size_t>(p.out));
  for (int64_t j = 0; j < in; ++j) {
    if (p.dynamic_groups() && j % p.gs == 0) {
      const MatrixD cur = W.middleCols(j, std::min(in, j + p.gs) - j);
      DynamicParams(cur, a, res.params.data() + StoredGroup(p, options, j), gpr);
    }
    const int64_t g = StoredGroup(p, options, j);
    const double d = p.u(j, j);
    for (int64_t r = 0; r < p.out; ++r) {
      const double v = W(r, j);
      const QuantGroupParams& gp = res.params[r * gpr + g];
      const int32_t c = QuantCode(static_cast<float>(v), gp, a);
      res.codes[r * in + j] = c;
      const double e = v - static_cast<double>(DequantCode(c, gp));
      err[r] = e / d;
      res.row_loss[r] += e * e / (d * d) / 2.0;
    }
    for (int64_t r = 0; r < p.out; ++r) {
      for (int64_t k = j + 1; k < in; ++k) W(r, k) -= err[r] * p.u(j, k);
    }
  }
  return Finish(p, options, res, {});
}

double RelativeOutputError(const MatrixRM& w, const MatrixRM& w_hat, const Eigen::MatrixXd& xtx) {
  const Eigen::MatrixXd wd = w.cast<double>();
  const Eigen::MatrixXd e = (w - w_hat).cast<double>();
  const double den = (wd * xtx).cwiseProduct(wd).sum();
  if (den <= 0.0) return 0.0;
  const double num = std::max(0.0, (e * xtx).cwiseProduct(e).sum());
  return std::sqrt(num / den);
}

}  // namespace squeeze
