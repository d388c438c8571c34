#include "workers/methods/quant/awq.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/methods/quant/quant_grid.h"
#include "workers/methods/quant/rtn.h"

namespace squeeze {
namespace {

constexpr int kQ = 0, kK = 1, kV = 2, kO = 3, kGate = 4, kUp = 5, kDown = 6;

// Per-column mean of |w[r, c]| / max|w[r, group(c)]| over the rows of every
// member (the AWQ reference's w_mean).
std::vector<double> WeightMagnitude(const std::vector<AwqGroupMember>& members, int64_t in) {
  std::vector<double> sum(in, 0.0);
  int64_t rows = 0;
  for (const AwqGroupMember& m : members) {
    const MatrixRM& w = *m.w;
    const int64_t g = m.args->EffectiveGroupSize(in);
    for (int64_t r = 0; r < w.rows(); ++r) {
      for (int64_t c0 = 0; c0 < in; c0 += g) {
        const int64_t c1 = std::min(in, c0 + g);
        float mx = 0.0f;
        for (int64_t c = c0; c < c1; ++c) mx = std::max(mx, std::fabs(w(r, c)));
        if (mx == 0.0f) continue;
        for (int64_t c = c0; c < c1; ++c) sum[c] += std::fabs(w(r, c)) / mx;
      }
    }
    rows += w.rows();
  }
  for (double& v : sum) v /= static_cast<double>(std::max<int64_t>(rows, 1));
  return sum;
}

std::vector<float> ScalesForRatio(const std::vector<double>& x_mag, const std::vector<double>& w_mag, double alpha,
                                  bool duo) {
  const size_t n = x_mag.size();
  std::vector<double> s(n);
  for (size_t c = 0; c < n; ++c) {
    double v = std::pow(std::max(x_mag[c], 0.0), alpha);
    if (duo) v /= std::pow(std::max(w_mag[c], 1e-4), 1.0 - alpha);
    s[c] = std::max(v, 1e-4);
  }
  const double mx = *std::max_element(s.begin(), s.end());
  const double mn = *std::min_element(s.begin(), s.end());
  const double norm = std::sqrt(mx * mn);
  std::vector<float> out(n);
  for (size_t c = 0; c < n; ++c) out[c] = static_cast<float>(s[c] / norm);
  return out;
}

std::vector<float> Inverse(const std::vector<float>& s) {
  std::vector<float> inv(s.size());
  for (size_t i = 0; i < s.size(); ++i) inv[i] = 1.0f / s[i];
  return inv;
}

// Loss of RTN applied to W diag(s), measured in the original coordinates.
double ScaledRtnLoss(const AwqGroupMember& m, const std::vector<float>& s, const std::vector<float>& inv) {
  const MatrixRM q = FakeQuantRtnReference(ScaleColumns(*m.w, s), *m.args);
  return AwqOutputLoss(*m.w, ScaleColumns(q, inv), *m.h);
}

}  // namespace

double AwqOutputLoss(const MatrixRM& w, const MatrixRM& w_hat, const Eigen::MatrixXd& h) {
  const Eigen::MatrixXd d = (w_hat - w).cast<double>();
  return ((d * h).cwiseProduct(d)).sum();
}

MatrixRM ScaleColumns(const MatrixRM& w, const std::vector<float>& s) {
  MatrixRM out = w;
  for (int64_t r = 0; r < out.rows(); ++r) {
    for (int64_t c = 0; c < out.cols(); ++c) out(r, c) *= s[c];
  }
  return out;
}

Eigen::MatrixXd ScaleHessian(const Eigen::MatrixXd& h, const std::vector<float>& s) {
  Eigen::MatrixXd out = h;
  for (int64_t i = 0; i < out.rows(); ++i) {
    for (int64_t j = 0; j < out.cols(); ++j) {
      out(i, j) /= static_cast<double>(s[i]) * static_cast<double>(s[j]);
    }
  }
  return out;
}

absl::StatusOr<AwqScaleResult> SearchAwqScales(const std::vector<AwqGroupMember>& members,
                                               const std::vector<double>& x_mag, const AwqOptions& options) {
  if (members.empty()) return absl::InvalidArgumentError("AWQ: empty smoothing group");
  const int64_t in = static_cast<int64_t>(x_mag.size());
  if (in == 0) return absl::InvalidArgumentError("AWQ: no input channels");
  for (const AwqGroupMember& m : members) {
    if (m.w == nullptr || m.args == nullptr || m.h == nullptr) {
      return absl::InvalidArgumentError("AWQ: group member without weight, scheme or X^T X");
    }
    if (m.w->cols() != in || m.h->rows() != in || m.h->cols() != in) {
      return absl::InvalidArgumentError(absl::StrCat("AWQ: shapes differ: weight [", m.w->rows(), ", ", m.w->cols(),
                                                     "], X^T X [", m.h->rows(), ", ", m.h->cols(),
                                                     "], activation magnitudes [", in, "]"));
    }
  }
  if (options.n_grid <= 0) return absl::InvalidArgumentError("AWQ: n_grid must be positive");
  const std::vector<double> w_mag = options.duo_scaling ? WeightMagnitude(members, in) : std::vector<double>(in, 1.0);

  AwqScaleResult best;
  best.loss = std::numeric_limits<double>::infinity();
  const std::vector<float> ones(in, 1.0f);
  for (const AwqGroupMember& m : members) best.rtn_loss += ScaledRtnLoss(m, ones, ones);

  std::vector<double> ratios;
  if (options.fixed_ratio >= 0.0) {
    ratios.push_back(options.fixed_ratio);
  } else {
    for (int i = 0; i < options.n_grid; ++i) ratios.push_back(static_cast<double>(i) / options.n_grid);
  }
  for (double alpha : ratios) {
    const std::vector<float> s = ScalesForRatio(x_mag, w_mag, alpha, options.duo_scaling);
    const std::vector<float> inv = Inverse(s);
    double loss = 0.0;
    for (const AwqGroupMember& m : members) loss += ScaledRtnLoss(m, s, inv);
    if (loss < best.loss) {  // strict: the first (smallest) ratio wins ties
      best.loss = loss;
      best.ratio = alpha;
      best.scales = s;
    }
  }
  if (!std::isfinite(best.loss)) {
    return absl::InvalidArgumentError("AWQ: no finite loss on the grid (non-finite weights or inputs?)");
  }
  return best;
}

MatrixRM AwqClipWeight(const MatrixRM& w, const Eigen::MatrixXd& h, const WeightQuantArgs& args,
                       const AwqOptions& options) {
  MatrixRM out = w;
  if (args.strategy == QuantStrategy::kTensor) return out;
  const int64_t in = w.cols();
  const int64_t gs = args.EffectiveGroupSize(in);
  const int n_shrink = static_cast<int>(options.max_shrink * options.clip_grid);
  std::vector<float> v, best_v;
  Eigen::VectorXd d;
  for (int64_t r = 0; r < w.rows(); ++r) {
    for (int64_t c0 = 0; c0 < in; c0 += gs) {
      const int64_t n = std::min(in, c0 + gs) - c0;
      float org = 0.0f;
      for (int64_t c = 0; c < n; ++c) org = std::max(org, std::fabs(w(r, c0 + c)));
      if (org == 0.0f) continue;
      const auto hg = h.block(c0, c0, n, n);
      double best = std::numeric_limits<double>::infinity();
      v.resize(n);
      d.resize(n);
      for (int k = 0; k < std::max(n_shrink, 1); ++k) {
        const float m = org * (1.0f - static_cast<float>(k) / static_cast<float>(options.clip_grid));
        for (int64_t c = 0; c < n; ++c) v[c] = std::clamp(w(r, c0 + c), -m, m);
        const QuantGroupParams p = ComputeQuantGroupParams(v.data(), n, args);
        for (int64_t c = 0; c < n; ++c) {
          d[c] = static_cast<double>(DequantCode(QuantCode(v[c], p, args), p)) - static_cast<double>(w(r, c0 + c));
        }
        const double loss = d.dot(hg * d);
        if (loss < best) {
          best = loss;
          best_v = v;
        }
      }
      for (int64_t c = 0; c < n; ++c) out(r, c0 + c) = best_v[c];
    }
  }
  return out;
}

absl::StatusOr<AwqBlockResult> ApplyAwqBlockScales(const ModelConfig& config, TransformerBlock& block,
                                                   const std::array<const WeightQuantArgs*, 7>& args,
                                                   const std::array<const Eigen::MatrixXd*, 7>& h,
                                                   const std::array<std::vector<double>, 7>& x_mag,
                                                   const AwqOptions& options) {
  std::array<std::unique_ptr<LinearLayer>*, 7> slots = {&block.q_proj,    &block.k_proj, &block.v_proj,
                                                         &block.o_proj,    &block.gate_proj, &block.up_proj,
                                                         &block.down_proj};
  AwqBlockResult res;
  std::array<MatrixRM, 7> w;
  std::array<std::vector<float>, 7> bias;
  std::array<bool, 7> changed{};
  for (int i = 0; i < 7; ++i) {
    if (args[i] == nullptr || h[i] == nullptr || *slots[i] == nullptr) continue;
    w[i] = (*slots[i])->DenseWeight();
    bias[i].assign((*slots[i])->bias().begin(), (*slots[i])->bias().end());
    res.h[i] = *h[i];
  }
  auto usable = [&](std::initializer_list<int> ids) {
    for (int i : ids) {
      if (args[i] == nullptr || h[i] == nullptr || *slots[i] == nullptr) return false;
    }
    return true;
  };
  // Searches the group `consumers` (sharing input i0 = consumers[0]) and
  // rescales its columns and its input's H; the caller folds 1/s into the producer.
  auto search = [&](const std::vector<int>& consumers) -> absl::StatusOr<std::vector<float>> {
    std::vector<AwqGroupMember> members;
    for (int i : consumers) members.push_back({&w[i], args[i], &res.h[i]});
    auto r = SearchAwqScales(members, x_mag[consumers[0]], options);
    if (!r.ok()) return r.status();
    for (int i : consumers) {
      w[i] = ScaleColumns(w[i], r->scales);
      res.h[i] = ScaleHessian(res.h[i], r->scales);
      res.input_scales[i] = r->scales;
      res.search[i] = *r;
      res.scaled[i] = true;
      changed[i] = true;
    }
    return r->scales;
  };
  auto fold_into_norm = [](std::vector<float>& norm, const std::vector<float>& s) {
    for (size_t c = 0; c < norm.size(); ++c) norm[c] /= s[c];
  };
  auto fold_into_rows = [&](int p, const std::vector<float>& s) {
    for (int64_t r = 0; r < w[p].rows(); ++r) {
      for (int64_t c = 0; c < w[p].cols(); ++c) w[p](r, c) /= s[r];
      if (!bias[p].empty()) bias[p][r] /= s[r];
    }
    changed[p] = true;
  };
  const int64_t dim = static_cast<int64_t>(block.attn_norm.size());
  if (usable({kQ, kK, kV}) && w[kQ].cols() == dim) {
    auto s = search({kQ, kK, kV});
    if (!s.ok()) return s.status();
    fold_into_norm(block.attn_norm, *s);
  }
  if (usable({kV, kO}) && config.n_kv_heads == config.n_heads && w[kV].rows() == w[kO].cols()) {
    auto s = search({kO});
    if (!s.ok()) return s.status();
    fold_into_rows(kV, *s);
  }
  if (usable({kGate, kUp}) && w[kGate].cols() == static_cast<int64_t>(block.ffn_norm.size())) {
    auto s = search({kGate, kUp});
    if (!s.ok()) return s.status();
    fold_into_norm(block.ffn_norm, *s);
  }
  if (usable({kUp, kDown}) && w[kUp].rows() == w[kDown].cols()) {
    auto s = search({kDown});
    if (!s.ok()) return s.status();
    fold_into_rows(kUp, *s);
  }
  for (int i = 0; i < 7; ++i) {
    if (changed[i]) *slots[i] = DenseLinear::FromMatrix(std::move(w[i]), std::move(bias[i]));
  }
  return res;
}

}  // namespace squeeze
