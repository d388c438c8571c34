#include "workers/methods/prune/owl.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "workers/engine/calib/activation_stats.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze {

double OutlierRatio(const std::vector<MatrixRM>& scores, double m) {
  double sum = 0.0;
  int64_t n = 0;
  for (const MatrixRM& s : scores) {
    sum += s.cast<double>().sum();
    n += s.size();
  }
  if (n == 0) return 0.0;
  const double threshold = m * sum / static_cast<double>(n);
  int64_t count = 0;
  for (const MatrixRM& s : scores) {
    for (int64_t i = 0; i < s.size(); ++i) count += static_cast<double>(s.data()[i]) > threshold;
  }
  return static_cast<double>(count) / static_cast<double>(n);
}

absl::StatusOr<std::vector<double>> OwlSparsities(const std::vector<double>& d, double target, double lambda) {
  if (d.empty()) return absl::InvalidArgumentError("OWL: no layers");
  if (!(target >= 0.0 && target < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("OWL: target sparsity ", target, " is outside [0, 1)"));
  }
  if (!(lambda >= 0.0)) return absl::InvalidArgumentError(absl::StrCat("OWL: lambda ", lambda, " must be >= 0"));
  const auto [lo, hi] = std::minmax_element(d.begin(), d.end());
  std::vector<double> density(d.size(), 0.0);
  if (*hi > *lo) {
    for (size_t i = 0; i < d.size(); ++i) density[i] = (d[i] - *lo) / (*hi - *lo) * 2.0 * lambda;
  }
  const double mean = std::accumulate(density.begin(), density.end(), 0.0) / static_cast<double>(d.size());
  std::vector<double> sparsity(d.size());
  for (size_t i = 0; i < d.size(); ++i) {
    sparsity[i] = 1.0 - (density[i] - mean + (1.0 - target));
    if (!(sparsity[i] >= 0.0 && sparsity[i] < 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat("OWL: lambda ", lambda, " gives layer ", i, " sparsity ",
                                                     sparsity[i], ", outside [0, 1); use a smaller lambda"));
    }
  }
  return sparsity;
}

namespace {

class StatsObserver final : public BlockObserver {
 public:
  explicit StatsObserver(ThreadPool& pool) : pool_(pool) {}
  void OnLinearInput(int, BlockLinear which, const float* x, int64_t rows, int64_t cols) override {
    // q/k/v share one input, as do gate/up: count it once.
    if (which == BlockLinear::kK || which == BlockLinear::kV || which == BlockLinear::kUp) return;
    auto& st = stats[static_cast<int>(which)];
    if (!st) st = std::make_unique<ActivationStats>(cols, false);
    st->Add(x, rows, pool_);
  }
  std::array<std::unique_ptr<ActivationStats>, kNumBlockLinears> stats;

 private:
  ThreadPool& pool_;
};

int InputOf(int w) {
  if (w == static_cast<int>(BlockLinear::kK) || w == static_cast<int>(BlockLinear::kV)) return 0;
  if (w == static_cast<int>(BlockLinear::kUp)) return static_cast<int>(BlockLinear::kGate);
  return w;
}

}  // namespace

absl::StatusOr<std::vector<double>> ModelOutlierRatios(const Model& model,
                                                       const std::vector<std::vector<int>>& sequences, double m,
                                                       const std::function<bool(int, BlockLinear)>& include,
                                                       ThreadPool& pool) {
  SQ_RETURN_IF_ERROR(ValidateModel(model));
  if (sequences.empty()) return absl::InvalidArgumentError("OWL: no calibration sequences");
  std::vector<MatrixRM> hidden(sequences.size());
  for (size_t s = 0; s < sequences.size(); ++s) SQ_RETURN_IF_ERROR(Embed(model, sequences[s], hidden[s]));
  const int n_layers = static_cast<int>(model.blocks.size());
  std::vector<double> ratios(n_layers, -1.0);
  for (int l = 0; l < n_layers; ++l) {
    StatsObserver obs(pool);
    for (MatrixRM& h : hidden) SQ_RETURN_IF_ERROR(RunBlock(model, l, h, 0, nullptr, &obs, pool));
    std::vector<MatrixRM> scores;
    // BlockLinears only hands out slots; nothing is modified here.
    std::vector<LinearSlot> slots = const_cast<Model&>(model).BlockLinears(l);
    for (int w = 0; w < kNumBlockLinears; ++w) {
      if (!include(l, static_cast<BlockLinear>(w))) continue;
      const std::vector<double> norms = obs.stats[InputOf(w)]->ChannelNorms();
      MatrixRM s = (*slots[w].slot)->DenseWeight().cwiseAbs();
      for (int64_t j = 0; j < s.cols(); ++j) s.col(j) *= static_cast<float>(norms[j]);
      scores.push_back(std::move(s));
    }
    if (!scores.empty()) ratios[l] = OutlierRatio(scores, m);
  }
  return ratios;
}

}  // namespace squeeze
