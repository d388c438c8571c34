// bench_engine: engine throughput, each figure beside a baseline measured in
// the same run.
//
//   BM_Gemm        our fp32 linear path (DenseLinear::Forward over the
//                  ThreadPool) vs Eigen's own single-call GEMM
//                  (Y.noalias() = X * W^T) on the same shapes.
//                  Counters: GFLOPs (ours), eigen_GFLOPs, speedup (= eigen time / ours).
//   BM_Prefill     Forward over n tokens (KV cache, all logits) vs the time
//                  Eigen's single-call GEMMs of the same linears take
//                  (the matmul-only floor): tok_per_s, gemm_only_tok_per_s,
//                  ratio (ours / gemm-only; > 1 means faster than serial
//                  Eigen GEMMs alone, thanks to the pool).
//   BM_Decode      one-token Forward at position `ctx` vs Eigen's GEMVs of
//                  the same linears: tok_per_s, gemm_only_tok_per_s, ratio.
// Models: stories260K (../shared; skipped when absent) and a synthetic model
// with Llama-7B layer shapes (dim 4096, hidden 11008, 32 heads, vocab 32000,
// 1 layer, random weights).
//
// Run: build-*/tests/bench/bench_engine [--benchmark_filter=...]
// Threads: SQUEEZE_THREADS (default: all cores).
#include <benchmark/benchmark.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <random>

#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

using Clock = std::chrono::steady_clock;

MatrixRM RandomMatrix(int64_t r, int64_t c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  MatrixRM m(r, c);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = d(rng);
  return m;
}

// Seconds per call of Eigen's single-call GEMM y = x W^T, averaged over reps.
double EigenGemmSeconds(const MatrixRM& x, const MatrixRM& w, int reps) {
  MatrixRM y(x.rows(), w.rows());
  y.noalias() = x * w.transpose();  // warm up
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) {
    y.noalias() = x * w.transpose();
    benchmark::DoNotOptimize(y.data());
  }
  return std::chrono::duration<double>(Clock::now() - t0).count() / reps;
}

void BM_Gemm(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  const MatrixRM x = RandomMatrix(n, k, 1);
  MatrixRM w = RandomMatrix(m, k, 2);
  auto lin = DenseLinear::FromMatrix(w);
  MatrixRM y(n, m);
  ThreadPool& pool = ThreadPool::Default();
  const auto t0 = Clock::now();
  for (auto _ : state) {
    lin->Forward(x.data(), n, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  }
  const double ours_s = std::chrono::duration<double>(Clock::now() - t0).count() / state.iterations();
  const double flops = 2.0 * n * k * m;
  const double base_s = EigenGemmSeconds(x, w, std::max<int>(1, static_cast<int>(state.iterations())));
  state.counters["GFLOPs"] = flops / ours_s / 1e9;
  state.counters["eigen_GFLOPs"] = flops / base_s / 1e9;
  state.counters["speedup"] = base_s / ours_s;
  state.counters["threads"] = pool.size();
  state.SetLabel("fp32 [" + std::to_string(n) + "x" + std::to_string(k) + "] x [" + std::to_string(m) + "x" +
                 std::to_string(k) + "]^T");
}
// Llama-7B shapes: q/k/v/o (4096x4096), gate/up (11008x4096), down (4096x11008);
// rows 1 (decode), 64 and 512 (prefill). stories260K: dim 64, hidden 172.
BENCHMARK(BM_Gemm)
    ->ArgNames({"n", "k", "m"})
    ->Args({1, 4096, 4096})
    ->Args({1, 4096, 11008})
    ->Args({1, 11008, 4096})
    ->Args({64, 4096, 4096})
    ->Args({64, 4096, 11008})
    ->Args({64, 11008, 4096})
    ->Args({512, 4096, 4096})
    ->Args({512, 64, 172})
    ->Args({512, 64, 512})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------- models

struct BenchModel {
  Model model;
  bool ok = false;
};

BenchModel& Stories() {
  static BenchModel* bm = [] {
    auto* b = new BenchModel;
    auto m = LoadModel(std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K/stories260K.bin");
    if (m.ok()) {
      b->model = std::move(*m);
      b->ok = true;
    }
    return b;
  }();
  return *bm;
}

BenchModel& Llama7BShapes() {
  static BenchModel* bm = [] {
    auto* b = new BenchModel;
    ModelConfig c;
    c.dim = 4096;
    c.hidden_dim = 11008;
    c.n_layers = 1;
    c.n_heads = 32;
    c.n_kv_heads = 32;
    c.head_dim = 128;
    c.vocab_size = 32000;
    c.max_seq_len = 2048;
    c.tie_word_embeddings = false;
    b->model = MakeRandomModel(c, 7);
    b->ok = true;
    return b;
  }();
  return *bm;
}

BenchModel& Pick(int which) { return which == 0 ? Stories() : Llama7BShapes(); }

// Eigen single-call GEMMs of every linear of the model on n rows: seconds.
double GemmOnlySeconds(Model& m, int64_t n, int reps) {
  double total = 0;
  for (const LinearSlot& s : m.AllLinears()) {
    const LinearLayer& l = **s.slot;
    const MatrixRM x = RandomMatrix(n, l.in_features(), 3);
    total += EigenGemmSeconds(x, l.DenseWeight(), reps);
  }
  if (!m.lm_head) {  // tied head
    const MatrixRM x = RandomMatrix(n, m.embedding.cols(), 3);
    total += EigenGemmSeconds(x, m.embedding, reps);
  }
  return total;
}

void BM_Prefill(benchmark::State& state) {
  BenchModel& bm = Pick(static_cast<int>(state.range(0)));
  if (!bm.ok) {
    state.SkipWithError("stories260K not found in ../shared");
    return;
  }
  const int n = static_cast<int>(state.range(1));
  std::vector<int> tokens(n);
  for (int i = 0; i < n; ++i) tokens[i] = (i * 7919 + 13) % bm.model.config.vocab_size;
  KVCache cache(bm.model, n);
  MatrixRM logits;
  const auto t0 = Clock::now();
  for (auto _ : state) {
    if (!Forward(bm.model, tokens, 0, cache, logits).ok()) state.SkipWithError("forward failed");
  }
  const double ours_s = std::chrono::duration<double>(Clock::now() - t0).count() / state.iterations();
  const double base = GemmOnlySeconds(bm.model, n, std::max<int>(1, std::min<int>(5, state.iterations())));
  state.counters["tok_per_s"] = n / ours_s;
  state.counters["gemm_only_tok_per_s"] = n / base;
  state.counters["ratio"] = base / ours_s;
  state.SetLabel(state.range(0) == 0 ? "stories260K" : "llama7b-shapes x1 layer");
}
BENCHMARK(BM_Prefill)->ArgNames({"model", "n"})->Args({0, 512})->Args({1, 64})->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Decode(benchmark::State& state) {
  BenchModel& bm = Pick(static_cast<int>(state.range(0)));
  if (!bm.ok) {
    state.SkipWithError("stories260K not found in ../shared");
    return;
  }
  const int ctx = static_cast<int>(state.range(1));
  std::vector<int> prompt(ctx);
  for (int i = 0; i < ctx; ++i) prompt[i] = (i * 7919 + 13) % bm.model.config.vocab_size;
  KVCache cache(bm.model, ctx + 1);
  MatrixRM logits;
  if (!Forward(bm.model, prompt, 0, cache, logits, false).ok()) state.SkipWithError("prefill failed");
  const int next = 5;
  const auto t0 = Clock::now();
  for (auto _ : state) {
    // Decode the token at position ctx (rewriting the same cache row).
    if (!Forward(bm.model, absl::MakeConstSpan(&next, 1), ctx, cache, logits, false).ok()) {
      state.SkipWithError("decode failed");
    }
  }
  const double ours_s = std::chrono::duration<double>(Clock::now() - t0).count() / state.iterations();
  const double base = GemmOnlySeconds(bm.model, 1, std::max<int>(1, std::min<int>(20, state.iterations())));
  state.counters["tok_per_s"] = 1.0 / ours_s;
  state.counters["gemm_only_tok_per_s"] = 1.0 / base;
  state.counters["ratio"] = base / ours_s;
  state.SetLabel(state.range(0) == 0 ? "stories260K" : "llama7b-shapes x1 layer");
}
BENCHMARK(BM_Decode)->ArgNames({"model", "ctx"})->Args({0, 256})->Args({1, 256})->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace squeeze

BENCHMARK_MAIN();
