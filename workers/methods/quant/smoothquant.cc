#include "workers/methods/quant/smoothquant.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/methods/quant/awq.h"

namespace squeeze {

absl::StatusOr<std::vector<float>> SmoothQuantScales(const std::vector<float>& act_max,
                                                     const std::vector<const MatrixRM*>& weights, double alpha) {
  if (!(alpha >= 0.0 && alpha <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("smoothing_strength ", alpha, " is outside [0, 1]"));
  }
  if (weights.empty()) return absl::InvalidArgumentError("empty smoothing group");
  const int64_t in = static_cast<int64_t>(act_max.size());
  std::vector<double> wmax(static_cast<size_t>(in), 0.0);
  for (const MatrixRM* w : weights) {
    if (w->cols() != in) {
      return absl::InvalidArgumentError(absl::StrCat("weight has ", w->cols(), " inputs, activations ", in));
    }
    for (int64_t r = 0; r < w->rows(); ++r) {
      for (int64_t c = 0; c < in; ++c) wmax[c] = std::max(wmax[c], static_cast<double>(std::fabs((*w)(r, c))));
    }
  }
  std::vector<float> s(static_cast<size_t>(in));
  for (int64_t c = 0; c < in; ++c) {
    const double a = static_cast<double>(act_max[c]);
    if (!(a > 0.0)) {
      s[c] = 1.0f;
      continue;
    }
    const double v = std::pow(a, alpha) / std::pow(std::max(wmax[c], 1e-5), 1.0 - alpha);
    s[c] = static_cast<float>(std::max(v, 1e-5));
  }
  return s;
}

absl::StatusOr<SmoothQuantBlockResult> ApplySmoothQuantBlock(TransformerBlock& block,
                                                             const std::array<const std::vector<float>*, 2>& act_max,
                                                             double alpha) {
  SmoothQuantBlockResult res;
  struct Mapping {
    std::vector<float>* norm;
    std::vector<std::unique_ptr<LinearLayer>*> linears;
  };
  const std::array<Mapping, 2> maps = {Mapping{&block.attn_norm, {&block.q_proj, &block.k_proj, &block.v_proj}},
                                       Mapping{&block.ffn_norm, {&block.gate_proj, &block.up_proj}}};
  for (int m = 0; m < 2; ++m) {
    if (act_max[m] == nullptr) continue;
    if (act_max[m]->size() != maps[m].norm->size()) {
      return absl::InvalidArgumentError(absl::StrCat("activation maxima have ", act_max[m]->size(),
                                                     " channels, the norm ", maps[m].norm->size()));
    }
    std::vector<MatrixRM> w;
    std::vector<const MatrixRM*> wp;
    w.reserve(maps[m].linears.size());
    for (auto* slot : maps[m].linears) w.push_back((*slot)->DenseWeight());
    for (const MatrixRM& x : w) wp.push_back(&x);
    auto s = SmoothQuantScales(*act_max[m], wp, alpha);
    if (!s.ok()) return s.status();
    for (size_t c = 0; c < s->size(); ++c) (*maps[m].norm)[c] /= (*s)[c];
    for (size_t i = 0; i < maps[m].linears.size(); ++i) {
      std::unique_ptr<LinearLayer>& slot = *maps[m].linears[i];
      std::vector<float> bias(slot->bias().begin(), slot->bias().end());
      slot = DenseLinear::FromMatrix(ScaleColumns(w[i], *s), std::move(bias));
    }
    res.applied[m] = true;
    res.scales[m] = std::move(*s);
  }
  return res;
}

}  // namespace squeeze
