#include "workers/engine/train/loss_curve.h"

#include <algorithm>

namespace squeeze::train {

std::vector<LossPoint> LossCurve(const std::vector<StepLog>& history, int64_t max_points) {
  std::vector<LossPoint> out;
  const int64_t n = static_cast<int64_t>(history.size());
  if (n == 0) return out;
  max_points = std::max<int64_t>(1, max_points);
  const int64_t every = (n + max_points - 1) / max_points;
  for (int64_t prev = 0; prev < n;) {
    const int64_t end = std::min(prev + every, n);
    double sum = 0;
    for (int64_t i = prev; i < end; ++i) sum += history[i].loss;  // in step order
    LossPoint p;
    p.step = history[end - 1].step;
    p.loss = sum / static_cast<double>(end - prev);
    p.lr = history[end - 1].lr;
    p.steps_covered = end - prev;
    out.push_back(p);
    prev = end;
  }
  return out;
}

}  // namespace squeeze::train
