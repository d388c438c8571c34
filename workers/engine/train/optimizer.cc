#include "workers/engine/train/optimizer.h"

#include <cmath>

namespace squeeze::train {

void AdamW::EnsureState(const std::vector<NamedParam>& params) {
  if (m_.size() != params.size()) {
    m_.assign(params.size(), {});
    v_.assign(params.size(), {});
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (m_[i].size() != params[i].param->value.size()) m_[i].assign(params[i].param->value.size(), 0.0f);
    if (v_[i].size() != params[i].param->value.size()) v_[i].assign(params[i].param->value.size(), 0.0f);
  }
}

void AdamW::Step(const std::vector<NamedParam>& params, float lr) {
  EnsureState(params);
  ++step_;
  const float b1 = options_.beta1, b2 = options_.beta2;
  const float c1 = 1.0f - static_cast<float>(std::pow(double{b1}, double(step_)));
  const float c2 = 1.0f - static_cast<float>(std::pow(double{b2}, double(step_)));
  for (size_t p = 0; p < params.size(); ++p) {
    Param& prm = *params[p].param;
    std::vector<float>& m = m_[p];
    std::vector<float>& v = v_[p];
    const float wd = prm.decay ? options_.weight_decay : 0.0f;
    const bool masked = !prm.mask.empty();
    for (size_t i = 0; i < prm.value.size(); ++i) {
      if (masked && !prm.mask[i]) continue;
      const float g = prm.grad[i];
      m[i] = b1 * m[i] + (1.0f - b1) * g;
      v[i] = b2 * v[i] + (1.0f - b2) * g * g;
      const float mh = m[i] / c1, vh = v[i] / c2;
      prm.value[i] -= lr * (mh / (std::sqrt(vh) + options_.eps) + wd * prm.value[i]);
    }
  }
}

float ScheduledLr(const ScheduleOptions& s, int64_t step) {
  if (step < s.warmup_steps) return s.lr * static_cast<float>(step + 1) / static_cast<float>(s.warmup_steps);
  const int64_t span = s.total_steps - 1 - s.warmup_steps;
  if (span <= 0) return s.lr;
  const double t = std::min(1.0, static_cast<double>(step - s.warmup_steps) / span);
  return static_cast<float>(s.min_lr + 0.5 * (s.lr - s.min_lr) * (1.0 + std::cos(M_PI * t)));
}

double ClipGradNorm(const std::vector<NamedParam>& params, double max_norm) {
  double ss = 0;
  for (const NamedParam& p : params)
    for (float g : p.param->grad) ss += static_cast<double>(g) * g;
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float f = static_cast<float>(max_norm / norm);
    for (const NamedParam& p : params)
      for (float& g : p.param->grad) g *= f;
  }
  return norm;
}

}  // namespace squeeze::train
