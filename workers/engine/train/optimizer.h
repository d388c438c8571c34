// AdamW (Loshchilov & Hutter 2019), learning-rate schedule and gradient
// clipping.
//
// AdamW step t (1-based) for every entry of a trainable parameter, with
// gradient g:
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   m^ = m / (1 - b1^t);    v^ = v / (1 - b2^t)      (bias correction)
//   w -= lr * (m^ / (sqrt(v^) + eps) + wd * w)       (decoupled decay; only
//                                                     params with decay=true)
// Entries whose mask is 0 are skipped (value, m and v stay 0). Arithmetic in
// fp32 per entry in a fixed order: deterministic.
// Schedule: linear warmup lr * (s + 1) / warmup for s < warmup, then cosine
// from lr down to min_lr at s = total_steps - 1 (s = 0-based step).
#pragma once

#include <cstdint>
#include <vector>

#include "workers/engine/train/param.h"

namespace squeeze::train {

struct AdamWOptions {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
};

class AdamW {
 public:
  explicit AdamW(AdamWOptions options) : options_(options) {}
  // Applies one step to `params` (the same list, in the same order, at every
  // call); allocates moments on first use.
  void Step(const std::vector<NamedParam>& params, float lr);
  int64_t step() const { return step_; }
  // Moments, one pair per parameter in the order of Step's list (for checkpoints).
  std::vector<std::vector<float>>& m() { return m_; }
  std::vector<std::vector<float>>& v() { return v_; }
  void set_step(int64_t step) { step_ = step; }
  // Allocates zero moments sized for `params` (no-op when sizes already match).
  void EnsureState(const std::vector<NamedParam>& params);

 private:
  AdamWOptions options_;
  int64_t step_ = 0;
  std::vector<std::vector<float>> m_, v_;
};

struct ScheduleOptions {
  float lr = 1e-3f;
  float min_lr = 0.0f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
};
float ScheduledLr(const ScheduleOptions& s, int64_t step);

// The global L2 norm of all gradients (double, in parameter order); when it
// exceeds max_norm > 0, every gradient is scaled by max_norm / norm. Returns
// the norm before clipping.
double ClipGradNorm(const std::vector<NamedParam>& params, double max_norm);

}  // namespace squeeze::train
