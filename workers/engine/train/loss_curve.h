// LossCurve: a training run's per-step loss reduced to at most `max_points`
// points for reports (report.json stages[i].training.loss_curve, plotted in
// report.md).
//
// With n = history.size() steps and every = ceil(n / max_points), point k
// (k = 1, 2, ...) covers the steps (prev, step], step = min(k * every, n):
//   loss = mean of StepLog::loss over those steps (every = 1: the step's own
//          loss), lr = StepLog::lr of `step`, steps_covered = step - prev.
// So the last point is always the last step, and for n <= max_points every
// step is its own point. Deterministic: a function of the losses only (no
// timings), so it can go into the byte-identical artifact.
#pragma once

#include <cstdint>
#include <vector>

#include "workers/engine/train/trainer.h"

namespace squeeze::train {

struct LossPoint {
  int64_t step = 0;  // 1-based step at the end of the span
  double loss = 0;   // mean over the span
  double lr = 0;     // learning rate of `step`
  int64_t steps_covered = 0;
};

// max_points >= 1 (smaller values are treated as 1).
std::vector<LossPoint> LossCurve(const std::vector<StepLog>& history, int64_t max_points = 200);

}  // namespace squeeze::train
