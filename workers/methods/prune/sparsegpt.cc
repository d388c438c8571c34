#include "workers/methods/prune/sparsegpt.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <Eigen/Cholesky>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace squeeze {
namespace {

using MatD = Eigen::MatrixXd;  // column-major: the sweep works on columns

absl::Status Validate(const MatrixRM& w, const Eigen::MatrixXd& xtx, int64_t rows, const SparseGptOptions& o) {
  const int64_t in = w.cols();
  if (xtx.rows() != in || xtx.cols() != in) {
    return absl::InvalidArgumentError(absl::StrCat("sparsegpt: X^T X is ", xtx.rows(), "x", xtx.cols(),
                                                   " for a weight with ", in, " inputs"));
  }
  if (rows <= 0) return absl::InvalidArgumentError("sparsegpt: no calibration rows");
  if (!xtx.allFinite()) return absl::InvalidArgumentError("sparsegpt: X^T X has non-finite entries");
  if (o.block_size < 1) return absl::InvalidArgumentError(absl::StrCat("block_size ", o.block_size, " is < 1"));
  if (!(o.dampening_frac >= 0.0 && std::isfinite(o.dampening_frac))) {
    return absl::InvalidArgumentError(absl::StrCat("dampening_frac ", o.dampening_frac, " is not a number >= 0"));
  }
  if (o.mask.unstructured()) {
    if (!(o.sparsity >= 0.0 && o.sparsity < 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat("sparsity ", o.sparsity, " is outside [0, 1)"));
    }
  } else {
    if (in % o.mask.m != 0) {
      return absl::InvalidArgumentError(absl::StrCat("mask structure ", o.mask.ToString(), ": ", in,
                                                     " inputs are not a multiple of ", o.mask.m));
    }
    if (o.block_size % o.mask.m != 0) {
      return absl::InvalidArgumentError(absl::StrCat("block_size ", o.block_size, " is not a multiple of M = ",
                                                     o.mask.m, " (mask structure ", o.mask.ToString(), ")"));
    }
  }
  return absl::OkStatus();
}

// U upper with H^-1 = U^T U, the plain way: H^-1 from the Cholesky factor of
// H, then the Cholesky factor of H^-1 (what the reference code does;
// ~2.7 n^3 flops). False when H or H^-1 is not positive definite.
bool InverseFactorPlain(const MatD& h, MatD* u) {
  Eigen::LLT<MatD> llt(h);
  if (llt.info() != Eigen::Success) return false;
  MatD hinv = llt.solve(MatD::Identity(h.rows(), h.cols()));
  hinv = 0.5 * (hinv + hinv.transpose());
  Eigen::LLT<MatD> llt2(hinv);
  if (llt2.info() != Eigen::Success) return false;
  *u = llt2.matrixU();
  return true;
}

// The same U from one Cholesky factorization (~0.7 n^3 flops): with J the
// reversal permutation and J H J = L L^T, H^-1 = (J L^-1 J)^T (J L^-1 J) and
// J L^-1 J is upper triangular with a positive diagonal, hence it is U.
// L^-1 is found by columns in fixed chunks of kSolveChunk (independent of the
// pool size, so the bits are too); chunk [c0, c1) solves only the trailing
// system L[c0:, c0:] X = I[c0:, c0:c1], since L^-1 is lower triangular.
constexpr int64_t kSolveChunk = 128;
constexpr int64_t kRowChunk = 64;  // rows per task of the column sweep

bool InverseFactorFast(const MatD& h, MatD* u, ThreadPool& pool) {
  const int64_t n = h.rows();
  const MatD jhj = h.reverse();  // rows and columns reversed
  Eigen::LLT<MatD> llt(jhj);
  if (llt.info() != Eigen::Success) return false;
  const MatD& l_full = llt.matrixLLT();  // lower triangle holds L
  MatD linv = MatD::Zero(n, n);
  const int64_t chunks = (n + kSolveChunk - 1) / kSolveChunk;
  pool.ParallelFor(chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const int64_t c0 = c * kSolveChunk, c1 = std::min(n, c0 + kSolveChunk);
      MatD x = MatD::Identity(n - c0, c1 - c0);
      l_full.bottomRightCorner(n - c0, n - c0).triangularView<Eigen::Lower>().solveInPlace(x);
      linv.block(c0, c0, n - c0, c1 - c0) = x;
    }
  });
  *u = linv.reverse();
  return true;
}

// Steps 1-3: zeroes dead columns of `wd`; returns U (upper, H^-1 = U^T U).
absl::StatusOr<MatD> PrepareInverseFactor(const Eigen::MatrixXd& xtx, int64_t rows, double frac, bool fast,
                                          MatD& wd, SparseGptResult* res, ThreadPool& pool) {
  const int64_t in = xtx.rows();
  MatD h = xtx * (2.0 / static_cast<double>(rows));
  h = 0.5 * (h + h.transpose());
  res->dead_columns = 0;
  for (int64_t j = 0; j < in; ++j) {
    if (h(j, j) == 0.0) {
      h(j, j) = 1.0;
      wd.col(j).setZero();
      ++res->dead_columns;
    }
  }
  double damp = frac * h.diagonal().mean();
  for (int attempt = 0; attempt < 4; ++attempt) {
    MatD hd = h;
    hd.diagonal().array() += damp;
    MatD u;
    if (fast ? InverseFactorFast(hd, &u, pool) : InverseFactorPlain(hd, &u)) {
      res->damp = damp;
      return u;
    }
    damp = damp > 0.0 ? damp * 10.0 : 1e-8 * std::max(1.0, h.diagonal().mean());
  }
  return absl::FailedPreconditionError(
      "sparsegpt: the Hessian 2 X^T X / n is not positive definite even with 1000x the dampening "
      "(raise dampening_frac or use more calibration samples)");
}

// Marks the k lowest of score[0..n) (ties: lower index) in mask.
void MarkLowest(const std::vector<double>& score, int64_t k, std::vector<char>& mask) {
  if (k <= 0) return;
  std::vector<int64_t> idx(score.size());
  std::iota(idx.begin(), idx.end(), 0);
  auto less = [&score](int64_t a, int64_t b) { return score[a] < score[b] || (score[a] == score[b] && a < b); };
  if (k < static_cast<int64_t>(idx.size())) std::nth_element(idx.begin(), idx.begin() + k, idx.end(), less);
  for (int64_t i = 0; i < k && i < static_cast<int64_t>(idx.size()); ++i) mask[idx[i]] = 1;
}

// Unstructured mask of a block: `cols` ([out, count] current weights starting
// at column i1), d = diag(U) of the block. mask is [out * count], row-major.
std::vector<char> BlockMask(const MatD& cols, const Eigen::VectorXd& d, int64_t i1, int64_t out,
                            const SparseGptOptions& o) {
  const int64_t count = cols.cols();
  std::vector<char> mask(static_cast<size_t>(out * count), 0);
  const auto target = [&](int64_t c) { return std::llround(o.sparsity * static_cast<double>(out * c)); };
  const int64_t k = target(i1 + count) - target(i1);
  std::vector<double> score(static_cast<size_t>(out * count));
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < count; ++c) score[r * count + c] = cols(r, c) * cols(r, c) / (d(c) * d(c));
  }
  MarkLowest(score, k, mask);
  return mask;
}

// N:M: marks, in mask ([out * count], row-major), the N lowest of columns
// c0..c0+M-1 of each row from the current weights `cols` and diag `d`.
void GroupMask(const MatD& cols, const Eigen::VectorXd& d, int64_t c0, int64_t count, const MaskStructure& s,
               char* mask) {
  const int64_t out = cols.rows();
  std::vector<double> score(s.m);
  std::vector<char> m(s.m);
  for (int64_t r = 0; r < out; ++r) {
    for (int j = 0; j < s.m; ++j) {
      score[j] = cols(r, c0 + j) * cols(r, c0 + j) / (d(c0 + j) * d(c0 + j));
      m[j] = 0;
    }
    MarkLowest(score, s.n, m);
    for (int j = 0; j < s.m; ++j) mask[r * count + c0 + j] = m[j];
  }
}

SparseGptResult Finish(const MatrixRM& w, const MatD& wd, const Eigen::MatrixXd& xtx, SparseGptResult res) {
  res.weight = wd.cast<float>();
  res.stats.total = w.size();
  res.stats.zeros = CountZeros(res.weight);
  res.output_error_sq = OutputErrorSq(w, res.weight, xtx);
  const Eigen::MatrixXd wo = w.cast<double>();
  const double base = (wo * xtx).cwiseProduct(wo).sum();
  res.rel_output_error = base > 0.0 ? std::sqrt(std::max(0.0, res.output_error_sq) / base) : 0.0;
  return res;
}

}  // namespace

double OutputErrorSq(const MatrixRM& w, const MatrixRM& w_hat, const Eigen::MatrixXd& xtx) {
  const Eigen::MatrixXd delta = (w.cast<double>() - w_hat.cast<double>());
  // tr(D X^T X D^T) = sum_ij (D X^T X)_ij D_ij
  return (delta * xtx).cwiseProduct(delta).sum();
}

absl::StatusOr<SparseGptResult> SparseGptPrune(const MatrixRM& w, const Eigen::MatrixXd& xtx, int64_t rows,
                                               const SparseGptOptions& o, ThreadPool& pool) {
  if (absl::Status s = Validate(w, xtx, rows, o); !s.ok()) return s;
  const int64_t out = w.rows(), in = w.cols();
  SparseGptResult res;
  MatD wd = w.cast<double>();
  auto u_or = PrepareInverseFactor(xtx, rows, o.dampening_frac, /*fast=*/true, wd, &res, pool);
  if (!u_or.ok()) return u_or.status();
  const MatD& u = *u_or;

  // Rows are independent once a block's mask is chosen, so each block runs
  // over fixed chunks of kRowChunk rows in parallel (same bits for any pool).
  const int64_t row_chunks = (out + kRowChunk - 1) / kRowChunk;
  for (int64_t i1 = 0; i1 < in; i1 += o.block_size) {
    const int64_t i2 = std::min<int64_t>(i1 + o.block_size, in), count = i2 - i1;
    const MatD hinv1 = u.block(i1, i1, count, count);
    const Eigen::VectorXd d = hinv1.diagonal();
    std::vector<char> mask = o.mask.unstructured() ? BlockMask(wd.middleCols(i1, count), d, i1, out, o)
                                                   : std::vector<char>(static_cast<size_t>(out * count), 0);
    pool.ParallelFor(row_chunks, 1, [&](int64_t b, int64_t e) {
      for (int64_t rc = b; rc < e; ++rc) {
        const int64_t r0 = rc * kRowChunk, nr = std::min(out, r0 + kRowChunk) - r0;
        char* mask_rows = mask.data() + r0 * count;
        MatD w1 = wd.block(r0, i1, nr, count);
        MatD err1 = MatD::Zero(nr, count);
        for (int64_t i = 0; i < count; ++i) {
          if (!o.mask.unstructured() && i % o.mask.m == 0) GroupMask(w1, d, i, count, o.mask, mask_rows);
          const Eigen::VectorXd col = w1.col(i);
          Eigen::VectorXd q = col;
          for (int64_t r = 0; r < nr; ++r) {
            if (mask_rows[r * count + i]) q(r) = 0.0;
          }
          const Eigen::VectorXd err = (col - q) / d(i);
          w1.rightCols(count - i).noalias() -= err * hinv1.row(i).tail(count - i);
          w1.col(i) = q;  // exact zeros where pruned
          err1.col(i) = err;
        }
        wd.block(r0, i1, nr, count) = w1;
        if (i2 < in) wd.block(r0, i2, nr, in - i2).noalias() -= err1 * u.block(i1, i2, count, in - i2);
      }
    });
  }
  return Finish(w, wd, xtx, std::move(res));
}

absl::StatusOr<SparseGptResult> SparseGptPruneReference(const MatrixRM& w, const Eigen::MatrixXd& xtx,
                                                        int64_t rows, const SparseGptOptions& o) {
  if (absl::Status s = Validate(w, xtx, rows, o); !s.ok()) return s;
  const int64_t out = w.rows(), in = w.cols();
  SparseGptResult res;
  MatD wd = w.cast<double>();
  auto u_or = PrepareInverseFactor(xtx, rows, o.dampening_frac, /*fast=*/false, wd, &res,
                                   ThreadPool::Default() /* unused by the plain path */);
  if (!u_or.ok()) return u_or.status();
  const MatD& u = *u_or;
  const Eigen::VectorXd diag = u.diagonal();

  std::vector<char> mask;  // of the current block, [out * count]
  int64_t i1 = 0, count = 0;
  for (int64_t j = 0; j < in; ++j) {
    if (j % o.block_size == 0) {
      i1 = j;
      count = std::min<int64_t>(o.block_size, in - j);
      mask = o.mask.unstructured()
                 ? BlockMask(wd.middleCols(i1, count), diag.segment(i1, count), i1, out, o)
                 : std::vector<char>(static_cast<size_t>(out * count), 0);
    }
    if (!o.mask.unstructured() && (j - i1) % o.mask.m == 0) {
      // GroupMask reads columns relative to a block; give it the block.
      GroupMask(wd.middleCols(i1, count), diag.segment(i1, count), j - i1, count, o.mask, mask.data());
    }
    for (int64_t r = 0; r < out; ++r) {
      if (!mask[r * count + (j - i1)]) continue;
      const double e = wd(r, j) / u(j, j);
      for (int64_t c = j; c < in; ++c) wd(r, c) -= e * u(j, c);
      wd(r, j) = 0.0;
    }
  }
  return Finish(w, wd, xtx, std::move(res));
}

}  // namespace squeeze
