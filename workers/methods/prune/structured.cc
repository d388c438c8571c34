#include "workers/methods/prune/structured.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "workers/engine/model/dense_linear.h"

namespace squeeze {
namespace {

// sum_j |W[r, j]| * s_j over rows r in [r0, r1) (s == nullptr: s_j = 1).
double RowScore(const MatrixRM& w, int64_t r0, int64_t r1, const std::vector<double>* s) {
  double total = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t j = 0; j < w.cols(); ++j) {
      total += std::abs(static_cast<double>(w(r, j))) * (s ? (*s)[j] : 1.0);
    }
  }
  return total;
}

// Score of the input columns [c0, c1) of `w`: kMagnitude / kWanda as
// RowScore over the columns, kOutput: sum_c ||W[:, c]||_2 * s_c.
double ColScore(const MatrixRM& w, int64_t c0, int64_t c1, StructureImportance metric,
                const std::vector<double>* s) {
  double total = 0.0;
  for (int64_t c = c0; c < c1; ++c) {
    const double sc = s ? (*s)[c] : 1.0;
    if (metric == StructureImportance::kOutput) {
      total += w.col(c).cast<double>().norm() * sc;
    } else {
      total += w.col(c).cast<double>().cwiseAbs().sum() * sc;
    }
  }
  return total;
}

absl::Status CheckNorms(const std::vector<double>& v, int64_t n, const char* name) {
  if (static_cast<int64_t>(v.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("structured pruning: ", name, " norms have ", v.size(), " channels, expected ", n));
  }
  return absl::OkStatus();
}

// Rows of `w` (and entries of `bias`) whose index `keep` says, as a DenseLinear.
std::unique_ptr<LinearLayer> KeepRows(const LinearLayer& l, const std::vector<int64_t>& keep) {
  const MatrixRM w = l.DenseWeight();
  MatrixRM out(static_cast<int64_t>(keep.size()), w.cols());
  std::vector<float> bias;
  for (size_t i = 0; i < keep.size(); ++i) {
    out.row(static_cast<int64_t>(i)) = w.row(keep[i]);
    if (!l.bias().empty()) bias.push_back(l.bias()[keep[i]]);
  }
  return DenseLinear::FromMatrix(std::move(out), std::move(bias));
}

std::unique_ptr<LinearLayer> KeepCols(const LinearLayer& l, const std::vector<int64_t>& keep) {
  const MatrixRM w = l.DenseWeight();
  MatrixRM out(w.rows(), static_cast<int64_t>(keep.size()));
  for (size_t i = 0; i < keep.size(); ++i) out.col(static_cast<int64_t>(i)) = w.col(keep[i]);
  std::vector<float> bias(l.bias().begin(), l.bias().end());
  return DenseLinear::FromMatrix(std::move(out), std::move(bias));
}

// The complement of `remove` in [0, total), each index expanded to `unit`
// consecutive entries (index i -> [i*unit, (i+1)*unit)). InvalidArgument for
// duplicates, out-of-range indices or removing everything.
absl::StatusOr<std::vector<int64_t>> Kept(const std::vector<int>& remove, int total, int64_t unit, const char* what) {
  std::vector<bool> gone(total, false);
  for (int i : remove) {
    if (i < 0 || i >= total || gone[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat("structured pruning: ", what, " index ", i, " is out of range [0, ", total, ") or repeated"));
    }
    gone[i] = true;
  }
  if (static_cast<int>(remove.size()) >= total) {
    return absl::InvalidArgumentError(absl::StrCat("structured pruning: cannot remove all ", total, " ", what, "s"));
  }
  std::vector<int64_t> keep;
  for (int i = 0; i < total; ++i) {
    if (gone[i]) continue;
    for (int64_t u = 0; u < unit; ++u) keep.push_back(i * unit + u);
  }
  return keep;
}

struct HeadShape {
  int64_t n_heads = 0, n_kv = 0, rep = 0;
};

absl::StatusOr<HeadShape> Heads(const TransformerBlock& b, int head_dim) {
  if (!b.q_proj || !b.k_proj || !b.v_proj || !b.o_proj || head_dim <= 0) {
    return absl::InvalidArgumentError("structured pruning: block is missing attention linears");
  }
  HeadShape h;
  h.n_heads = b.q_proj->out_features() / head_dim;
  h.n_kv = b.k_proj->out_features() / head_dim;
  if (h.n_kv <= 0 || h.n_heads % h.n_kv != 0 || b.q_proj->out_features() % head_dim != 0 ||
      b.v_proj->out_features() != b.k_proj->out_features() || b.o_proj->in_features() != b.q_proj->out_features()) {
    return absl::InvalidArgumentError(absl::StrCat("structured pruning: inconsistent attention shapes (q ",
                                                   b.q_proj->out_features(), ", k ", b.k_proj->out_features(),
                                                   ", head_dim ", head_dim, ")"));
  }
  h.rep = h.n_heads / h.n_kv;
  return h;
}

}  // namespace

absl::StatusOr<std::vector<double>> HeadGroupImportance(const TransformerBlock& b, int head_dim,
                                                        StructureImportance metric, const BlockInputNorms& norms) {
  auto hs = Heads(b, head_dim);
  if (!hs.ok()) return hs.status();
  const bool calibrated = metric != StructureImportance::kMagnitude;
  if (calibrated) {
    if (auto s = CheckNorms(norms.attn_in, b.q_proj->in_features(), "attention input"); !s.ok()) return s;
    if (auto s = CheckNorms(norms.attn_out, b.o_proj->in_features(), "o_proj input"); !s.ok()) return s;
  }
  const std::vector<double>* in = calibrated ? &norms.attn_in : nullptr;
  const std::vector<double>* out = calibrated ? &norms.attn_out : nullptr;
  const MatrixRM q = b.q_proj->DenseWeight(), k = b.k_proj->DenseWeight(), v = b.v_proj->DenseWeight(),
                 o = b.o_proj->DenseWeight();
  const int64_t hd = head_dim, qrows = hs->rep * hd;
  std::vector<double> scores(hs->n_kv, 0.0);
  for (int64_t g = 0; g < hs->n_kv; ++g) {
    double s = ColScore(o, g * qrows, (g + 1) * qrows, metric, out);
    if (metric != StructureImportance::kOutput) {
      s += RowScore(q, g * qrows, (g + 1) * qrows, in) + RowScore(k, g * hd, (g + 1) * hd, in) +
           RowScore(v, g * hd, (g + 1) * hd, in);
    }
    scores[g] = s;
  }
  return scores;
}

absl::StatusOr<std::vector<double>> ChannelImportance(const TransformerBlock& b, StructureImportance metric,
                                                      const BlockInputNorms& norms) {
  if (!b.gate_proj || !b.up_proj || !b.down_proj || b.up_proj->out_features() != b.gate_proj->out_features() ||
      b.down_proj->in_features() != b.gate_proj->out_features()) {
    return absl::InvalidArgumentError("structured pruning: inconsistent MLP shapes");
  }
  const bool calibrated = metric != StructureImportance::kMagnitude;
  if (calibrated) {
    if (auto s = CheckNorms(norms.mlp_in, b.gate_proj->in_features(), "MLP input"); !s.ok()) return s;
    if (auto s = CheckNorms(norms.mlp_hidden, b.down_proj->in_features(), "down_proj input"); !s.ok()) return s;
  }
  const std::vector<double>* in = calibrated ? &norms.mlp_in : nullptr;
  const std::vector<double>* hid = calibrated ? &norms.mlp_hidden : nullptr;
  const MatrixRM gate = b.gate_proj->DenseWeight(), up = b.up_proj->DenseWeight(), down = b.down_proj->DenseWeight();
  std::vector<double> scores(gate.rows(), 0.0);
  for (int64_t c = 0; c < gate.rows(); ++c) {
    double s = ColScore(down, c, c + 1, metric, hid);
    if (metric != StructureImportance::kOutput) s += RowScore(gate, c, c + 1, in) + RowScore(up, c, c + 1, in);
    scores[c] = s;
  }
  return scores;
}

std::vector<int> LowestScored(const std::vector<double>& scores, int n) {
  std::vector<int> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  n = std::clamp(n, 0, static_cast<int>(scores.size()));
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return scores[a] < scores[b]; });
  idx.resize(n);
  std::sort(idx.begin(), idx.end());
  return idx;
}

int StructuresToRemove(double ratio, int total) {
  if (total <= 1 || !(ratio > 0.0)) return 0;
  const int n = static_cast<int>(std::lround(ratio * total));
  return std::clamp(n, 0, total - 1);
}

absl::Status RemoveHeadGroups(TransformerBlock& b, int head_dim, const std::vector<int>& groups) {
  auto hs = Heads(b, head_dim);
  if (!hs.ok()) return hs.status();
  if (groups.empty()) return absl::OkStatus();
  auto keep_q = Kept(groups, static_cast<int>(hs->n_kv), hs->rep * head_dim, "head group");
  if (!keep_q.ok()) return keep_q.status();
  auto keep_kv = Kept(groups, static_cast<int>(hs->n_kv), head_dim, "head group");
  if (!keep_kv.ok()) return keep_kv.status();
  b.q_proj = KeepRows(*b.q_proj, *keep_q);
  b.k_proj = KeepRows(*b.k_proj, *keep_kv);
  b.v_proj = KeepRows(*b.v_proj, *keep_kv);
  b.o_proj = KeepCols(*b.o_proj, *keep_q);
  return absl::OkStatus();
}

absl::Status RemoveChannels(TransformerBlock& b, const std::vector<int>& channels) {
  if (!b.gate_proj || !b.up_proj || !b.down_proj) {
    return absl::InvalidArgumentError("structured pruning: block is missing MLP linears");
  }
  if (channels.empty()) return absl::OkStatus();
  auto keep = Kept(channels, static_cast<int>(b.gate_proj->out_features()), 1, "MLP channel");
  if (!keep.ok()) return keep.status();
  b.gate_proj = KeepRows(*b.gate_proj, *keep);
  b.up_proj = KeepRows(*b.up_proj, *keep);
  b.down_proj = KeepCols(*b.down_proj, *keep);
  return absl::OkStatus();
}

int64_t BlockLinearParams(const TransformerBlock& b) {
  int64_t n = 0;
  for (const auto* l : {&b.q_proj, &b.k_proj, &b.v_proj, &b.o_proj, &b.gate_proj, &b.up_proj, &b.down_proj}) {
    if (*l) n += (*l)->in_features() * (*l)->out_features() + static_cast<int64_t>((*l)->bias().size());
  }
  return n;
}

}  // namespace squeeze
