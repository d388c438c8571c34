// bench_engine: engine throughput, each figure beside a baseline measured in
// the same run.
//
//   BM_Gemm        our fp32 linear path (DenseLinear::Forward: GemmF32NT
//                  over the ThreadPool) vs Eigen's own single-call GEMM
//                  (Y.noalias() = X * W^T) on the same shapes, and vs
//                  DenseLinear::ForwardReference (Eigen per column chunk over
//                  the same pool: the engine's fp32 path before GemmF32NT).
//                  Counters: GFLOPs (ours), eigen_GFLOPs, speedup (= eigen
//                  time / ours), vs_reference (= reference time / ours).
//   BM_Prefill     Forward over n tokens (KV cache, all logits) vs the time
//                  Eigen's single-call GEMMs of the same linears take
//                  (the matmul-only floor): tok_per_s, gemm_only_tok_per_s,
//                  ratio (ours / gemm-only; > 1 means faster than serial
//                  Eigen GEMMs alone, thanks to the pool).
//   BM_Decode      one-token Forward at position `ctx` vs Eigen's GEMVs of
//                  the same linears: tok_per_s, gemm_only_tok_per_s, ratio.
//   BM_F32Forward  whole-model F32 prefill (n tokens, last logits only, as
//                  the llama.cpp comparison runs it) and decode (one token at
//                  position ctx), our path vs the same model with every
//                  DenseLinear switched to ForwardReference, one step of each
//                  back to back per iteration (medians): tok_per_s,
//                  ref_tok_per_s, vs_reference (= reference time / ours);
//                  RATIO engine_f32_<phase>_<model>_vs_reference.
// Models: stories260K (../shared; skipped when absent) and a synthetic model
// with Llama-7B layer shapes (dim 4096, hidden 11008, 32 heads, vocab 32000,
// 1 layer, random weights).
//
// After the runs, one `RATIO <name> <value>` line per comparison (ours /
// baseline, higher is better) for scripts/bench.sh.
//
// Run: build-*/tests/bench/bench_engine [--benchmark_filter=...]
// Threads: SQUEEZE_THREADS (default: all cores).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tests/bench/bench_model.h"
#include "tests/bench/bench_util.h"
#include "workers/engine/core/allocator_config.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

using Clock = std::chrono::steady_clock;

// RATIO lines printed after all benchmarks (bench_util.h).
using bench::AddRatio;

constexpr auto RandomMatrix = bench::RandomUniformMatrix;

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
  const int reps = std::max<int>(1, std::min<int>(10, static_cast<int>(state.iterations())));
  const double base_s = EigenGemmSeconds(x, w, reps);
  lin->ForwardReference(x.data(), n, y.data(), pool);  // warm up
  const auto r0 = Clock::now();
  for (int i = 0; i < reps; ++i) {
    lin->ForwardReference(x.data(), n, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  }
  const double ref_s = std::chrono::duration<double>(Clock::now() - r0).count() / reps;
  state.counters["GFLOPs"] = flops / ours_s / 1e9;
  state.counters["eigen_GFLOPs"] = flops / base_s / 1e9;
  state.counters["speedup"] = base_s / ours_s;
  state.counters["vs_reference"] = ref_s / ours_s;
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
    ModelConfig c = bench::Llama7BLayerShapes(1, 2048);
    c.vocab_size = 32000;
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

// ------------------------------------------------- our path vs reference

// A DenseLinear run through ForwardReference: the engine's fp32 linear before
// GemmF32NT, the baseline of BM_F32Forward. Owns the layer it wraps.
class ReferenceDense final : public LinearLayer {
 public:
  explicit ReferenceDense(std::unique_ptr<LinearLayer> inner)
      : inner_(std::move(inner)), dense_(static_cast<const DenseLinear*>(inner_.get())) {}
  int64_t in_features() const override { return dense_->in_features(); }
  int64_t out_features() const override { return dense_->out_features(); }
  void Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const override {
    dense_->ForwardReference(x, n_rows, y, pool);
  }
  MatrixRM DenseWeight() const override { return dense_->DenseWeight(); }
  absl::Span<const float> bias() const override { return dense_->bias(); }
  std::string kind() const override { return dense_->kind() + "_reference"; }
  int64_t StorageBytes() const override { return dense_->StorageBytes(); }
  std::vector<std::pair<std::string, TensorView>> StoredTensors() const override {
    return dense_->StoredTensors();
  }
  std::unique_ptr<LinearLayer> Release() { return std::move(inner_); }

 private:
  std::unique_ptr<LinearLayer> inner_;
  const DenseLinear* dense_;
};

// While alive, every DenseLinear of `m` (blocks and lm_head) runs its
// reference path; the destructor puts the original layers back.
class ReferencePathScope {
 public:
  explicit ReferencePathScope(Model& m) {
    for (const LinearSlot& s : m.AllLinears()) {
      if (dynamic_cast<const DenseLinear*>(s.slot->get()) == nullptr) continue;
      *s.slot = std::make_unique<ReferenceDense>(std::move(*s.slot));
      slots_.push_back(s.slot);
    }
  }
  ~ReferencePathScope() {
    for (std::unique_ptr<LinearLayer>* slot : slots_) *slot = static_cast<ReferenceDense*>(slot->get())->Release();
  }
  ReferencePathScope(const ReferencePathScope&) = delete;
  ReferencePathScope& operator=(const ReferencePathScope&) = delete;

 private:
  std::vector<std::unique_ptr<LinearLayer>*> slots_;
};

// Median of `v` (sorts it).
double Median(std::vector<double>& v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// range(0): model (0 stories260K, 1 Llama-7B shapes x1 layer); range(1): 0
// prefill of n tokens, 1 decode of one token at position n. Each benchmark
// iteration runs one step on our path and one on the reference path, back to
// back, so both see the same machine load; the counters compare the medians.
void BM_F32Forward(benchmark::State& state) {
  BenchModel& bm = Pick(static_cast<int>(state.range(0)));
  if (!bm.ok) {
    state.SkipWithError("stories260K not found in ../shared");
    return;
  }
  const bool decode = state.range(1) == 1;
  const int n = static_cast<int>(state.range(2));
  std::vector<int> tokens(n);
  for (int i = 0; i < n; ++i) tokens[i] = (i * 7919 + 13) % bm.model.config.vocab_size;
  KVCache cache(bm.model, n + 1);
  MatrixRM logits;
  bool ok = true;
  if (decode) ok = Forward(bm.model, tokens, 0, cache, logits, false).ok();  // the context to decode after
  const int next = 5;
  auto step = [&] {
    const auto t0 = Clock::now();
    const absl::Status s = decode ? Forward(bm.model, absl::MakeConstSpan(&next, 1), n, cache, logits, false)
                                  : Forward(bm.model, tokens, 0, cache, logits, false);
    ok = ok && s.ok();
    benchmark::DoNotOptimize(logits.data());
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  step();  // warm up both paths
  {
    ReferencePathScope reference(bm.model);
    step();
  }
  std::vector<double> ours, ref;
  for (auto _ : state) {
    ours.push_back(step());
    ReferencePathScope reference(bm.model);
    ref.push_back(step());
  }
  if (!ok) {
    state.SkipWithError("forward failed");
    return;
  }
  const double ours_s = Median(ours), ref_s = Median(ref);
  const double tokens_per_step = decode ? 1.0 : n;
  const std::string model = state.range(0) == 0 ? "stories260K" : "llama7b_shapes";
  state.counters["tok_per_s"] = tokens_per_step / ours_s;
  state.counters["ref_tok_per_s"] = tokens_per_step / ref_s;
  state.counters["vs_reference"] = ref_s / ours_s;
  AddRatio(std::string("engine_f32_") + (decode ? "decode_" : "prefill_") + model + "_vs_reference", ref_s / ours_s);
  state.SetLabel(model + (decode ? " decode ctx " : " prefill ") + std::to_string(n) + " (time: ours + reference)");
}
BENCHMARK(BM_F32Forward)
    ->ArgNames({"model", "decode", "n"})
    ->Args({0, 0, 256})
    ->Args({0, 1, 256})
    ->Args({1, 0, 128})
    ->Args({1, 1, 128})
    ->MinTime(1.0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace squeeze

int main(int argc, char** argv) {
  squeeze::ConfigureAllocatorForInference();  // warm heap pages across forward passes
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  squeeze::bench::PrintRatios();
  return 0;
}
