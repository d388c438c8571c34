// The synthetic Llama-7B-shaped model and its calibration pass, shared by
// the method benchmarks (bench_gptq, bench_prune). Header-only.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>

#include "workers/engine/calib/activation_stats.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/model_config.h"

namespace squeeze::bench {

// Llama-7B layer shapes: dim 4096, SwiGLU width 11008, 32 heads of 128
// without GQA, `layers` blocks, a 256-token vocabulary (no head is timed;
// keeps the embedding small), tied embeddings, positions up to max_seq_len.
inline ModelConfig Llama7BLayerShapes(int layers, int max_seq_len) {
  ModelConfig c;
  c.dim = 4096;
  c.hidden_dim = 11008;
  c.n_layers = layers;
  c.n_heads = 32;
  c.n_kv_heads = 32;
  c.head_dim = 128;
  c.vocab_size = 256;
  c.max_seq_len = max_seq_len;
  c.tie_word_embeddings = true;
  return c;
}

// A rows x cols matrix of values uniform in [-1, 1) from mt19937_64(seed).
inline MatrixRM RandomUniformMatrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  MatrixRM m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = d(rng);
  return m;
}

// Accumulates each distinct linear input of a block into ActivationStats
// with X^T X (q/k/v share one input, kept under q; gate/up one, kept under
// gate) and times the accumulation alone (add_seconds, wall clock).
class TimedStatsObserver final : public BlockObserver {
 public:
  explicit TimedStatsObserver(ThreadPool& pool) : pool_(pool) {}
  void OnLinearInput(int, BlockLinear which, const float* x, int64_t rows, int64_t cols) override {
    if (which == BlockLinear::kK || which == BlockLinear::kV || which == BlockLinear::kUp) return;
    auto& st = stats[static_cast<int>(which)];
    if (!st) st = std::make_unique<ActivationStats>(cols, true);
    const auto t0 = std::chrono::steady_clock::now();
    st->Add(x, rows, pool_);
    add_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::array<std::unique_ptr<ActivationStats>, kNumBlockLinears> stats;
  double add_seconds = 0.0;

 private:
  ThreadPool& pool_;
};

// The index in TimedStatsObserver::stats holding the input of linear i
// (k/v read q's, up reads gate's).
inline int StatsIndexOf(int i) { return (i == 1 || i == 2) ? 0 : (i == 5 ? 4 : i); }

}  // namespace squeeze::bench
