// GPTQ test inputs shared by the tests that compare one GPTQ implementation
// with another (engine CPU vs engine reference, CUDA kernels' reference vs
// engine, engine on cuda vs cpu): calibration activations with a shared
// per-row component and outlier columns, and one option set per strategy /
// act-order / observer the implementations must agree on.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "workers/methods/quant/gptq.h"

namespace squeeze::testing_gptq {

// x [n, in]: N(0,1) + 0.5 × a per-row common term, and every 17th column
// (from 3) carries a 4σ outlier term, so H = XᵀX is far from diagonal.
inline MatrixRM CorrelatedCalibrationX(int64_t n, int64_t in, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  MatrixRM x(n, in);
  for (int64_t r = 0; r < n; ++r) {
    const float common = d(rng);
    for (int64_t c = 0; c < in; ++c) x(r, c) = d(rng) + 0.5f * common + (c % 17 == 3 ? 4.0f * d(rng) : 0.0f);
  }
  return x;
}

struct GptqCase {
  std::string name;
  WeightQuantArgs quant;
  int64_t block_size;  // GPTQ's lazy-update block, in columns
  ActOrder order;
};

// Every strategy (group, channel, tensor), symmetric and asymmetric, minmax
// and MSE observers, 3/4/8 bits, odd group sizes and block sizes, and each
// act-order mode.
inline std::vector<GptqCase> GptqCoverageCases() {
  std::vector<GptqCase> cases;
  WeightQuantArgs a;
  cases.push_back({"w4 sym g128 act-order static (W4A16)", a, 128, ActOrder::kStatic});
  a.group_size = 32;
  cases.push_back({"w4 sym g32", a, 64, ActOrder::kNone});
  a.symmetric = false;
  a.group_size = 16;
  a.observer = QuantObserver::kMse;
  cases.push_back({"w4 asym g16 mse", a, 48, ActOrder::kNone});
  a = WeightQuantArgs{};
  a.num_bits = 8;
  a.strategy = QuantStrategy::kChannel;
  cases.push_back({"w8 channel", a, 37, ActOrder::kNone});
  cases.push_back({"w8 channel act-order static", a, 37, ActOrder::kStatic});
  a = WeightQuantArgs{};
  a.num_bits = 3;
  a.symmetric = false;
  a.strategy = QuantStrategy::kTensor;
  cases.push_back({"w3 asym tensor", a, 128, ActOrder::kNone});
  a = WeightQuantArgs{};
  a.group_size = 24;
  cases.push_back({"w4 g24 act-order static", a, 40, ActOrder::kStatic});
  a.symmetric = false;
  cases.push_back({"w4 asym g24 act-order group", a, 40, ActOrder::kGroup});
  return cases;
}

}  // namespace squeeze::testing_gptq
