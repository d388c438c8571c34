#include "workers/methods/prune/taylor.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/train/losses.h"
#include "workers/engine/train/train_model.h"

namespace squeeze {

absl::StatusOr<std::vector<std::array<LinearGradient, kNumBlockLinears>>> BlockLinearGradients(
    const Model& model, const std::vector<std::vector<int>>& sequences, ThreadPool& pool) {
  SQ_ASSIGN_OR_RETURN(train::TrainModel tm, train::FromModel(model, train::DenseConverter(false)));
  int64_t predicted = 0;
  for (const std::vector<int>& s : sequences) {
    if (s.size() >= 2) predicted += static_cast<int64_t>(s.size()) - 1;
  }
  if (predicted == 0) return absl::InvalidArgumentError("Taylor importance: no calibration sequence of 2+ tokens");
  tm.ZeroGrad();
  for (const std::vector<int>& s : sequences) {
    if (s.size() < 2) continue;
    const int n = static_cast<int>(s.size());
    train::ForwardState state;
    SQ_RETURN_IF_ERROR(train::TrainForward(tm, s, /*batch=*/1, n, /*checkpointing=*/false, &state, pool));
    std::vector<int> targets(s.begin() + 1, s.end());
    targets.push_back(-1);  // the last position predicts nothing
    MatrixRM dlogits;
    // CrossEntropy averages over this sequence's n - 1 rows; the scale makes
    // the sum over sequences the mean over every predicted token.
    train::CrossEntropy(state.logits, targets, static_cast<double>(n - 1) / static_cast<double>(predicted),
                        &dlogits, pool);
    SQ_RETURN_IF_ERROR(train::TrainBackward(tm, state, dlogits, pool));
  }
  std::vector<std::array<LinearGradient, kNumBlockLinears>> out(tm.blocks.size());
  for (size_t l = 0; l < tm.blocks.size(); ++l) {
    for (int w = 0; w < kNumBlockLinears; ++w) {
      train::TrainableLinear& lin = *tm.blocks[l].linears[w];
      for (auto& [name, p] : lin.Params()) {
        if (name == "weight") {
          out[l][w].weight = ConstMapMatrixRM(p->grad.data(), lin.out_features(), lin.in_features());
        } else if (name == "bias") {
          out[l][w].bias.assign(p->grad.begin(), p->grad.end());
        }
      }
      if (out[l][w].weight.size() != lin.out_features() * lin.in_features()) {
        return absl::InternalError(absl::StrCat("Taylor importance: layer ", l, " linear ", w, " has no weight gradient"));
      }
    }
  }
  return out;
}

namespace {

// sum over rows [r0, r1) of g . w (+ bias terms), in double.
double RowsDot(const MatrixRM& g, const MatrixRM& w, int64_t r0, int64_t r1, const std::vector<double>& gb,
               absl::Span<const float> b) {
  double s = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t j = 0; j < w.cols(); ++j) s += static_cast<double>(g(r, j)) * static_cast<double>(w(r, j));
    if (!gb.empty() && !b.empty()) s += gb[r] * static_cast<double>(b[r]);
  }
  return s;
}

double ColsDot(const MatrixRM& g, const MatrixRM& w, int64_t c0, int64_t c1) {
  double s = 0.0;
  for (int64_t r = 0; r < w.rows(); ++r) {
    for (int64_t c = c0; c < c1; ++c) s += static_cast<double>(g(r, c)) * static_cast<double>(w(r, c));
  }
  return s;
}

}  // namespace

absl::StatusOr<TaylorScores> TaylorImportance(const Model& model, const std::vector<std::vector<int>>& sequences,
                                              ThreadPool& pool) {
  SQ_ASSIGN_OR_RETURN(auto grads, BlockLinearGradients(model, sequences, pool));
  const int64_t hd = model.config.head_dim;
  TaylorScores out;
  for (size_t l = 0; l < model.blocks.size(); ++l) {
    const TransformerBlock& b = model.blocks[l];
    const auto& g = grads[l];
    const MatrixRM q = b.q_proj->DenseWeight(), k = b.k_proj->DenseWeight(), v = b.v_proj->DenseWeight(),
                   o = b.o_proj->DenseWeight();
    const int64_t n_kv = k.rows() / hd, n_rep = (q.rows() / hd) / n_kv;
    std::vector<double> heads(n_kv);
    for (int64_t grp = 0; grp < n_kv; ++grp) {
      const int64_t q0 = grp * n_rep * hd, q1 = (grp + 1) * n_rep * hd, k0 = grp * hd, k1 = (grp + 1) * hd;
      double s = RowsDot(g[0].weight, q, q0, q1, g[0].bias, b.q_proj->bias());
      s += RowsDot(g[1].weight, k, k0, k1, g[1].bias, b.k_proj->bias());
      s += RowsDot(g[2].weight, v, k0, k1, g[2].bias, b.v_proj->bias());
      s += ColsDot(g[3].weight, o, q0, q1);
      heads[grp] = std::abs(s);
    }
    const MatrixRM gate = b.gate_proj->DenseWeight(), up = b.up_proj->DenseWeight(), down = b.down_proj->DenseWeight();
    std::vector<double> channels(gate.rows());
    for (int64_t c = 0; c < gate.rows(); ++c) {
      double s = RowsDot(g[4].weight, gate, c, c + 1, g[4].bias, b.gate_proj->bias());
      s += RowsDot(g[5].weight, up, c, c + 1, g[5].bias, b.up_proj->bias());
      s += ColsDot(g[6].weight, down, c, c + 1);
      channels[c] = std::abs(s);
    }
    out.head_groups.push_back(std::move(heads));
    out.channels.push_back(std::move(channels));
  }
  return out;
}

}  // namespace squeeze
