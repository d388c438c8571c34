// bench_kernels: the CPU kernels of workers/kernels/cpu on Llama-7B layer
// shapes, each beside baselines measured in the same run:
//
//   BM_CopyBandwidth   STREAM-like copy (memcpy of 256 MiB split over the
//                      pool): GB/s counted as bytes read + written, the
//                      memory-bandwidth yardstick.
//   BM_PackedIntGemv   int4 / int8 packed weights (group 128, symmetric) x
//                      fp32 activations, rows x cols = 4096x4096, 11008x4096,
//                      4096x11008, batch n = 1 and 16; paths: fp32
//                      activations and int8 activations (Q8); calls cycle
//                      through >= 256 MiB of weight copies so every call
//                      reads DRAM, as decode does. Counters:
//                      weight GB/s (packed codes + scales read per call),
//                      bw_frac (= GB/s / copy GB/s), vs_eigen (Eigen fp32
//                      GEMV/GEMM of the dequantized matrix over the same pool
//                      and chunks, time / ours), vs_ref (the plain reference,
//                      time / ours; n = 1 only, it is slow).
//   BM_PackedIntDecodeBw  one token through int4 / int8 packed weights (group
//                      32 / 128) with int8 activations, 1 and 2 threads, as a
//                      fraction of a copy on the same pool measured in
//                      alternation with it (RATIO int<b>_a8_g<G>_decode_bw_*).
//   BM_PackedIntF32Prefill / BM_PackedIntF32DecodeBw  the fp32-activation
//                      path of packed int4 g32 / int8 g32 / int4 g128 weights
//                      with zero points: prefill (n = 32/64/128) vs our fp32
//                      GEMM on the dequantized matrix and vs the previous
//                      path; decode GB/s vs a copy and vs the fp32 GEMV
//                      (RATIO int<b>_g<G>z_f32act_*).
//   BM_GgmlBlockGemv   ggml Q4_0 / Q8_0 blocks (q8_0_gemm.h: activations
//                      quantized to Q8_0 on the fly, as llama.cpp), same
//                      shapes and counters as BM_PackedIntGemv.
//   BM_GgmlBlockDecodeBw / BM_GgmlBlockPrefill  Q4_0 / Q8_0 blocks: one
//                      token at 1 and 2 threads as a fraction of a copy
//                      (RATIO q<4|8>_0_blocks_decode_bw_*), and prefill GOPS
//                      at n = 16 / 64 / 128 (the panel path).
//   BM_Int8Gemm        W8A8 int8 x int8 (per-row x per-token scales),
//                      m = 1, 16, 128 tokens: vs_eigen (fp32 GEMM of the
//                      same shape), vs_ref.
//   BM_GemmF32         our fp32 GEMM (dispatching, over the pool; what
//                      DenseLinear::Forward runs) vs Eigen over the same pool
//                      and chunks: vs_eigen; n = 1, 8, 16 (decode, batched
//                      decode), 128, 512 (prefill) on 4096x4096, 11008x4096,
//                      4096x11008 (RATIO fp32_gemm_<m>x<k>_n<n>_vs_eigen).
//   BM_PackedIntQ8Prefill  int8-activation prefill (PackedIntGemmQ8, n = 16 /
//                      64 / 128) of int4 g32, int8 g32, int4 g128 + zero
//                      points: the panel path vs the previous row kernels
//                      (RATIO int<b>_g<G>[z]_a8_prefill_*_vs_rows), GOPS.
// After the runs, one `RATIO <name> <value>` line per comparison (ours /
// baseline, higher is better) for scripts/bench.sh.
//
//   BM_HalfDecodeBw    F16 / BF16 weights (DenseLinear's stored dtypes) x
//                      fp32 activations, n = 1..32 rows: the direct kernel
//                      (gemm_half.h, widened in registers) against the old
//                      path (each column chunk widened to fp32 in memory,
//                      then GemmF32NTStrided) and a STREAM-like copy,
//                      alternating, best of 5 each; RATIO
//                      <f16|bf16>_decode_bw_<m>x<k>_n<n>_t<t> (direct GB/s /
//                      copy GB/s), <f16|bf16>_direct_vs_widen_... (old
//                      time / direct time) and ..._direct_vs_simdwiden_...
//                      (SIMD-widen-then-GEMM time / direct time: the
//                      crossover of DenseLinear::kHalfDirectMaxRows).
// Run: build-*/tests/bench/bench_kernels [--benchmark_filter=...]
// Threads: SQUEEZE_THREADS (default: all cores). Variant: SQUEEZE_KERNELS.
//
// llama.cpp comparison (issue #9): tests/bench/llamacpp/run_llamacpp_bench.sh
// (a Llama-7B-shaped model in GGUF and in our format, whole-model prefill and
// decode tokens/s beside node-llama-cpp in the same run).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "tests/bench/bench_util.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/kernels/cpu/cpu_features.h"
#include "workers/engine/core/half.h"
#include "workers/kernels/cpu/gemm_f32.h"
#include "workers/kernels/cpu/gemm_half.h"
#include "workers/kernels/cpu/int8_gemm.h"
#include "workers/kernels/cpu/packed_int_gemm.h"
#include "workers/kernels/cpu/packed_int_panel.h"
#include "workers/kernels/cpu/q8_0_gemm.h"

namespace squeeze::kernels {
namespace {

using bench::AlternateBestOf;
using bench::BestTime;
using bench::Clock;
using MatRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

using bench::AddRatio;

double g_copy_gbps = 0;  // set by BM_CopyBandwidth (registered first)

template <typename F>
double SecondsPerCall(F&& f, int reps) {
  f();  // warm up
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) f();
  return bench::Since(t0) / reps;
}

// Wall seconds per iteration of the benchmark's own loop, each iteration one
// call of f, after one warm-up call (Google Benchmark picks the count).
template <typename F>
double SecondsPerIteration(benchmark::State& state, F&& f) {
  f();  // warm up
  const auto t0 = Clock::now();
  for (auto _ : state) f();
  return bench::Since(t0) / state.iterations();
}

// How many copies of a weight matrix of `bytes_per_copy` bytes (at least
// `at_least`) fill 256 MiB: calls cycling through them stream the weights
// from DRAM, as decoding a whole model does, not from the L3.
int64_t WeightCopiesFor(int64_t bytes_per_copy, int64_t at_least) {
  return std::max<int64_t>(at_least, ((int64_t{256} << 20) + bytes_per_copy - 1) / bytes_per_copy);
}

// make(0), make(1), ...: WeightCopiesFor(make(0).Bytes(), at_least) copies.
template <typename Make>
auto MakeWeightCopies(int64_t at_least, Make make) {
  std::vector<decltype(make(0))> copies;
  copies.push_back(make(0));
  const int64_t n = WeightCopiesFor(copies[0].Bytes(), at_least);
  for (int64_t c = 1; c < n; ++c) copies.push_back(make(c));
  return copies;
}

// One pass of gemv(copy) over every weight copy in turn, y kept alive.
template <typename Copies, typename Gemv>
auto EachCopy(const Copies& copies, const std::vector<float>& y, Gemv gemv) {
  return [&copies, &y, gemv] {
    for (const auto& c : copies) {
      gemv(c);
      benchmark::DoNotOptimize(y.data());
    }
  };
}

std::vector<float> Random(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Eigen fp32 y = x W^T over the pool in the fixed column chunks DenseLinear
// uses (the engine's fp32 linear before these kernels).
void EigenGemm(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, ThreadPool& pool) {
  const int64_t chunk = GemmF32ChunkColumns(n, m, k);
  Eigen::Map<const MatRM> X(x, n, k);
  Eigen::Map<MatRM> Y(y, n, m);
  pool.ParallelFor((m + chunk - 1) / chunk, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t j0 = c * chunk, j1 = std::min(m, j0 + chunk);
      Eigen::Map<const MatRM> W(w + j0 * k, j1 - j0, k);
      Y.middleCols(j0, j1 - j0).noalias() = X * W.transpose();
    }
  });
}

// Seconds per call of EigenGemm, `reps` calls after a warm-up.
double EigenGemmSeconds(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, ThreadPool& pool,
                        int reps) {
  return SecondsPerCall([&] { EigenGemm(x, n, k, w, m, y, pool); }, reps);
}

// Calls of a baseline timed after the benchmark's own loop: as many as the
// loop ran, within [lo, hi].
int BaselineReps(const benchmark::State& state, int lo, int hi) {
  return std::max<int>(lo, std::min<int>(hi, state.iterations()));
}

// "<rows>x<cols><key><value>", the shape part of RATIO names (key "_n" for
// tokens, "_t" for threads).
std::string ShapeTag(int64_t rows, int64_t cols, const char* key, int64_t value) {
  return std::to_string(rows) + "x" + std::to_string(cols) + key + std::to_string(value);
}

// The label of a run: the kernel variant, a note (e.g. VnniNote()), the tag.
void LabelRun(benchmark::State& state, const std::string& tag, const char* note = "") {
  state.SetLabel(std::string(KernelIsaName(ActiveIsa())) + note + " " + tag);
}
const char* VnniNote() { return UseAvx512Vnni() ? " (vnni)" : ""; }

// The Llama-7B linear shapes, rows x cols: q/k/v/o, gate/up, down.
constexpr int64_t kLlamaShapes[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};

// Registration tails: wall-clock time in milliseconds; OneRunMs for the
// benchmarks that run their own alternating rounds in a single iteration.
void RealTimeMs(benchmark::internal::Benchmark* b) { b->UseRealTime()->Unit(benchmark::kMillisecond); }
void OneRunMs(benchmark::internal::Benchmark* b) { RealTimeMs(b->Iterations(1)); }

// ---------------------------------------------------------------- copy

// A STREAM-like copy: `bytes` (a multiple of 256) memcpy-ed in 256 chunks
// spread over a pool, the memory-bandwidth yardstick the decode benchmarks
// divide by. GBps counts the bytes read + written.
class CopyPass {
 public:
  CopyPass(ThreadPool& pool, size_t bytes) : pool_(pool), src_(bytes, 1), dst_(bytes, 0) {}
  // One pass over the whole buffer (const: callable through absl::FunctionRef).
  void operator()() const {
    const size_t per = src_.size() / kChunks;
    pool_.ParallelFor(kChunks, 1, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) std::memcpy(dst_.data() + c * per, src_.data() + c * per, per);
    });
    benchmark::DoNotOptimize(dst_.data());
  }
  // GB/s of a pass that took `seconds`.
  double GBps(double seconds) const { return 2.0 * static_cast<double>(src_.size()) / seconds / 1e9; }

 private:
  static constexpr int64_t kChunks = 256;
  ThreadPool& pool_;
  std::vector<char> src_;
  mutable std::vector<char> dst_;
};

// The copy of the decode-bandwidth benchmarks (alternating with their GEMVs).
constexpr size_t kDecodeCopyBytes = size_t{128} << 20;

void BM_CopyBandwidth(benchmark::State& state) {
  ThreadPool& pool = ThreadPool::Default();
  CopyPass copy(pool, size_t{256} << 20);
  g_copy_gbps = copy.GBps(SecondsPerIteration(state, copy));
  state.counters["GBps"] = g_copy_gbps;
  state.counters["threads"] = pool.size();
}
BENCHMARK(BM_CopyBandwidth)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);

// ---------------------------------------------------------------- packed int

struct Packed {
  std::vector<uint32_t> words;
  std::vector<float> scales;
  PackedIntWeights view;
  int64_t Bytes() const { return static_cast<int64_t>(words.size() * 4 + scales.size() * 4); }
};

// Random codes, symmetric (no zero points), scales in [0.001, 0.02], groups
// of `group` contiguous columns.
Packed MakePackedGroup(int bits, int64_t rows, int64_t cols, int64_t group, uint64_t seed) {
  Packed p;
  const int64_t per_word = 32 / bits, wpr = (cols + per_word - 1) / per_word, ng = (cols + group - 1) / group;
  std::mt19937_64 rng(seed);
  p.words.resize(rows * wpr);
  for (uint32_t& w : p.words) w = static_cast<uint32_t>(rng());
  p.scales = Random(rows * ng, seed + 1, 0.001f, 0.02f);
  PackedIntWeights& v = p.view;
  v.num_bits = bits;
  v.rows = rows;
  v.cols = cols;
  v.words_per_row = wpr;
  v.packed = p.words.data();
  v.groups_per_row = ng;
  v.group_size = group;
  v.scales = p.scales.data();
  return p;
}

// Counters and RATIO lines of the GEMV benchmarks (BM_PackedIntGemv,
// BM_GgmlBlockGemv): `bytes` of weights read per call, seconds per call of
// ours, of Eigen's fp32 GEMM on the dequantized matrix and (n = 1 only) of
// the plain reference. GB/s and bw_frac are against BM_CopyBandwidth.
void ReportGemv(benchmark::State& state, const std::string& tag, int64_t bytes, int64_t n, double ours_s,
                double eigen_s, double ref_s) {
  const double gbps = bytes / ours_s / 1e9;
  state.counters["GBps"] = gbps;
  state.counters["bw_frac"] = g_copy_gbps > 0 ? gbps / g_copy_gbps : 0;
  state.counters["vs_eigen"] = eigen_s / ours_s;
  state.counters["tok_per_s"] = n / ours_s;
  if (n == 1) {
    state.counters["vs_ref"] = ref_s / ours_s;
    AddRatio(tag + "_vs_reference", ref_s / ours_s);
    AddRatio(tag + "_bw_vs_copy", g_copy_gbps > 0 ? gbps / g_copy_gbps : 0);
  }
  AddRatio(tag + "_vs_eigen_f32", eigen_s / ours_s);
}

// The GEMV protocol on the default pool, n tokens of x: gemm(copy, x, y,
// pool) on each weight copy in turn (the benchmark's loop), Eigen's fp32 GEMM
// on dequant(copies[0], dense) and, for n = 1, reference(copies[0], x, y);
// then ReportGemv.
template <typename Copy, typename Gemm, typename Dequant, typename Reference>
void RunGemv(benchmark::State& state, const std::vector<Copy>& copies, int64_t rows, int64_t cols, int64_t n,
             const std::string& tag, Gemm gemm, Dequant dequant, Reference reference) {
  const auto x = Random(n * cols, 6);
  std::vector<float> y(n * rows);
  ThreadPool& pool = ThreadPool::Default();
  size_t next = 0;
  const double ours_s = SecondsPerIteration(state, [&] {
    gemm(copies[next], x.data(), y.data(), pool);
    next = (next + 1) % copies.size();
    benchmark::DoNotOptimize(y.data());
  });
  // Eigen fp32 on the dequantized matrix (what an fp32 model reads).
  std::vector<float> dense(rows * cols);
  dequant(copies[0], dense.data());
  const double eigen_s =
      EigenGemmSeconds(x.data(), n, cols, dense.data(), rows, y.data(), pool, BaselineReps(state, 3, 20));
  dense = {};
  double ref_s = 0;
  if (n == 1) {
    std::vector<float> yr(n * rows);
    ref_s = SecondsPerCall([&] { reference(copies[0], x.data(), yr.data()); }, 1);
  }
  ReportGemv(state, tag, copies[0].Bytes(), n, ours_s, eigen_s, ref_s);
}

// args: bits, rows, cols, n, path (0 fp32 activations, 1 int8 activations)
void BM_PackedIntGemv(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  const int64_t rows = state.range(1), cols = state.range(2), n = state.range(3);
  const bool q8 = state.range(4) == 1;
  const auto copies = MakeWeightCopies(1, [&](int64_t c) { return MakePackedGroup(bits, rows, cols, 128, 5 + 2 * c); });
  const std::string tag =
      "int" + std::to_string(bits) + (q8 ? "_q8act" : "_f32act") + "_" + ShapeTag(rows, cols, "_n", n);
  RunGemv(
      state, copies, rows, cols, n, tag,
      [&](const Packed& p, const float* x, float* y, ThreadPool& pool) {
        if (q8) {
          PackedIntGemmQ8(p.view, x, n, nullptr, y, pool);
        } else {
          PackedIntGemm(p.view, x, n, nullptr, y, pool);
        }
      },
      [&](const Packed& p, float* dense) { PackedIntDequantizeRows(p.view, 0, rows, dense); },
      [&](const Packed& p, const float* x, float* y) {
        if (q8) {
          PackedIntGemmQ8Reference(p.view, x, n, nullptr, y);
        } else {
          PackedIntGemmReference(p.view, x, n, nullptr, y);
        }
      });
  LabelRun(state, tag);
}
BENCHMARK(BM_PackedIntGemv)
    ->ArgNames({"bits", "rows", "cols", "n", "q8"})
    ->ArgsProduct({{4, 8}, {4096}, {4096}, {1, 16}, {0, 1}})
    ->ArgsProduct({{4, 8}, {11008}, {4096}, {1, 16}, {0, 1}})
    ->Args({4, 4096, 11008, 1, 1})
    ->Args({4, 4096, 11008, 1, 0})
    ->Apply(RealTimeMs);

// ---------------------------------------------------------------- decode bandwidth (int8 activations)

// BM_PackedIntDecodeBw: one token (GEMV) through int4 / int8 packed weights
// (symmetric, group 32 or 128) with int8 activations (PackedIntGemmQ8), on a
// pool of `threads` threads, against a STREAM-like copy on the same pool.
// Copy passes (128 MiB, GB/s = bytes read + written) and GEMV passes (calls
// cycling through >= 256 MiB of weight copies, GB/s = packed codes + scales
// read) alternate for `kDecodeBwReps` rounds and each keeps its fastest
// round, so a burst of load from other processes hits both alike. RATIO
// int<b>_a8_g<G>_decode_bw_<rows>x<cols>_t<threads> = GEMV GB/s / copy GB/s
// (wall clock). The same ratio on process CPU time (divided by the thread
// count; the pool's idle threads block, they do not spin) is printed as
// RATIO ..._cpu: on a machine shared with other jobs it discounts the time
// slices the kernel did not get (memory contention from others remains).
constexpr int kDecodeBwReps = 5;

// Counters and RATIO lines of a decode-bandwidth benchmark whose GEMV pass
// (`calls` one-token calls reading `bytes` each) alternated with `copy` on a
// pool of `threads` threads; copy_t / pass_t: their fastest rounds. RATIO
// <tag> = GEMV GB/s / copy GB/s on the wall clock, <tag>_cpu the same on
// process CPU time divided by the thread count.
void ReportDecodeBw(benchmark::State& state, const std::string& tag, int64_t bytes, const CopyPass& copy,
                    const BestTime& copy_t, const BestTime& pass_t, int64_t calls, int threads) {
  const double call_s = pass_t.wall / static_cast<double>(calls);
  const double call_cpu_s = pass_t.cpu / threads / static_cast<double>(calls);
  const double copy_gbps = copy.GBps(copy_t.wall), copy_cpu_gbps = copy.GBps(copy_t.cpu / threads);
  const double gbps = bytes / call_s / 1e9, cpu_gbps = bytes / call_cpu_s / 1e9;
  state.counters["GBps"] = gbps;
  state.counters["copy_GBps"] = copy_gbps;
  state.counters["bw_frac"] = gbps / copy_gbps;
  state.counters["cpu_GBps"] = cpu_gbps;
  state.counters["copy_cpu_GBps"] = copy_cpu_gbps;
  state.counters["cpu_bw_frac"] = cpu_gbps / copy_cpu_gbps;
  state.counters["tok_per_s"] = 1.0 / call_s;
  AddRatio(tag, gbps / copy_gbps);
  AddRatio(tag + "_cpu", cpu_gbps / copy_cpu_gbps);
}

// What the decode-bandwidth benchmarks share: a pool of `threads`, the copy
// on it, one token x (cols, in [-2, 2)) and its output y (rows), the fastest
// copy and GEMV rounds.
struct DecodeBwRun {
  DecodeBwRun(int threads, int64_t rows, int64_t cols)
      : threads(threads), pool(threads), copy(pool, kDecodeCopyBytes), x(Random(cols, 6, -2.0f, 2.0f)), y(rows) {}

  // kDecodeBwReps rounds of the copy, then one pass of `gemv`.
  void Alternate(absl::FunctionRef<void()> gemv) { AlternateBestOf(kDecodeBwReps, {{&copy_t, copy}, {&gemv_t, gemv}}); }
  // ReportDecodeBw of the kept rounds; `calls` GEMV calls of `bytes` each per pass.
  void Report(benchmark::State& state, const std::string& tag, int64_t bytes, int64_t calls) const {
    ReportDecodeBw(state, tag, bytes, copy, copy_t, gemv_t, calls, threads);
  }

  const int threads;
  ThreadPool pool;
  CopyPass copy;
  const std::vector<float> x;
  std::vector<float> y;
  BestTime copy_t, gemv_t;
};

// args: bits, rows, cols, group, threads
void BM_PackedIntDecodeBw(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  const int64_t rows = state.range(1), cols = state.range(2), group = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  DecodeBwRun run(threads, rows, cols);
  const auto copies =
      MakeWeightCopies(2, [&](int64_t c) { return MakePackedGroup(bits, rows, cols, group, 31 + 2 * c); });
  for (auto _ : state) {
    run.Alternate(EachCopy(copies, run.y, [&](const Packed& p) {
      PackedIntGemmQ8(p.view, run.x.data(), 1, nullptr, run.y.data(), run.pool);
    }));
  }
  const std::string tag = "int" + std::to_string(bits) + "_a8_g" + std::to_string(group) + "_decode_bw_" +
                          ShapeTag(rows, cols, "_t", threads);
  run.Report(state, tag, copies[0].Bytes(), static_cast<int64_t>(copies.size()));
  LabelRun(state, tag, VnniNote());
}
void DecodeBwShapes(benchmark::internal::Benchmark* b) {
  for (int64_t threads : {1, 2}) {
    for (int64_t bits : {4, 8}) {
      for (int64_t group : {32, 128}) {
        for (const auto& rc : kLlamaShapes) b->Args({bits, rc[0], rc[1], group, threads});
      }
    }
  }
}
BENCHMARK(BM_PackedIntDecodeBw)
    ->ArgNames({"bits", "rows", "cols", "group", "threads"})
    ->Apply(DecodeBwShapes)
    ->Apply(OneRunMs);

// ---------------------------------------------------------------- fp32 activations (f32act)

// Packed int4 / int8 weights with zero points (asymmetric, as RTN/GPTQ with
// zero points store them), contiguous groups of `group` columns.
struct PackedZ {
  Packed p;
  std::vector<int32_t> zero_points;
  int64_t Bytes() const { return p.Bytes() + static_cast<int64_t>(zero_points.size() * 4); }
};

// `count` zero points uniform in the code range of `bits`, mt19937_64(seed).
std::vector<int32_t> RandomZeroPoints(int bits, int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(-(1 << (bits - 1)), (1 << (bits - 1)) - 1);
  std::vector<int32_t> z(count);
  for (int32_t& v : z) v = d(rng);
  return z;
}

PackedZ MakePackedZ(int bits, int64_t rows, int64_t cols, int64_t group, uint64_t seed) {
  PackedZ z;
  z.p = MakePackedGroup(bits, rows, cols, group, seed);
  z.zero_points = RandomZeroPoints(bits, rows * z.p.view.groups_per_row, seed + 7);
  z.p.view.zero_points = z.zero_points.data();
  return z;
}

// BM_PackedIntF32Prefill: PackedIntGemm (fp32 activations) for a prompt of n
// tokens through one packed layer, beside (a) our fp32 GEMM (GemmF32NT, what
// DenseLinear runs) on the dequantized matrix and (b) the previous path
// (PackedIntGemmDequantTilesReference: scalar dequantization of 64-row tiles
// + GemmF32NTStrided). The three alternate for kF32ActReps rounds, each keeps
// its fastest. RATIO int<b>_g<G>z_f32act_prefill_<rows>x<cols>_n<n>_vs_f32gemm
// (= fp32 time / ours, the target is >= 0.85; ..._cpu the same on process
// CPU time) and ..._vs_old (old / ours).
// args: bits, group, rows, cols, n
constexpr int kF32ActReps = 5;

void BM_PackedIntF32Prefill(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  const int64_t group = state.range(1), rows = state.range(2), cols = state.range(3), n = state.range(4);
  const PackedZ pz = MakePackedZ(bits, rows, cols, group, 41);
  const PackedIntWeights& w = pz.p.view;
  std::vector<float> dense(rows * cols);
  PackedIntDequantizeRows(w, 0, rows, dense.data());
  const auto x = Random(n * cols, 42);
  std::vector<float> y(n * rows);
  ThreadPool& pool = ThreadPool::Default();
  // Fastest round of each, on the wall clock and on process CPU time (the
  // pool's idle threads block, so CPU time discounts time slices lost to
  // other processes on a shared machine).
  BestTime ours, f32, old;
  PackedIntGemm(w, x.data(), n, nullptr, y.data(), pool);  // warm up
  for (auto _ : state) {
    AlternateBestOf(kF32ActReps, {{&ours, [&] {
                                     PackedIntGemm(w, x.data(), n, nullptr, y.data(), pool);
                                     benchmark::DoNotOptimize(y.data());
                                   }},
                                  {&f32, [&] {
                                     GemmF32NT(x.data(), n, cols, dense.data(), rows, y.data(), pool);
                                     benchmark::DoNotOptimize(y.data());
                                   }},
                                  {&old, [&] {
                                     PackedIntGemmDequantTilesReference(w, x.data(), n, nullptr, y.data(), pool);
                                     benchmark::DoNotOptimize(y.data());
                                   }}});
  }
  const double flop = 2.0 * n * rows * cols;
  state.counters["GFLOPs"] = flop / ours.wall / 1e9;
  state.counters["f32_GFLOPs"] = flop / f32.wall / 1e9;
  state.counters["old_GFLOPs"] = flop / old.wall / 1e9;
  state.counters["vs_f32gemm"] = f32.wall / ours.wall;
  state.counters["vs_old"] = old.wall / ours.wall;
  const std::string tag =
      "int" + std::to_string(bits) + "_g" + std::to_string(group) + "z_f32act_prefill_" + ShapeTag(rows, cols, "_n", n);
  state.counters["vs_f32gemm_cpu"] = f32.cpu / ours.cpu;
  state.counters["vs_old_cpu"] = old.cpu / ours.cpu;
  AddRatio(tag + "_vs_f32gemm", f32.wall / ours.wall);
  AddRatio(tag + "_vs_f32gemm_cpu", f32.cpu / ours.cpu);
  AddRatio(tag + "_vs_old", old.wall / ours.wall);
  LabelRun(state, tag);
}
// The packed layouts of the f32act benchmarks: bits, group.
constexpr int64_t kF32ActLayouts[][2] = {{4, 32}, {8, 32}, {4, 128}};
void F32ActPrefillShapes(benchmark::internal::Benchmark* b) {
  for (const auto& bg : kF32ActLayouts) {
    for (const auto& rc : kLlamaShapes) {
      for (int64_t n : {32, 64, 128}) b->Args({bg[0], bg[1], rc[0], rc[1], n});
    }
  }
}
BENCHMARK(BM_PackedIntF32Prefill)
    ->ArgNames({"bits", "group", "rows", "cols", "n"})
    ->Apply(F32ActPrefillShapes)
    ->Apply(OneRunMs);

// BM_PackedIntF32DecodeBw: one token (GEMV, PackedIntGemm with fp32
// activations) through packed weights with zero points, calls cycling
// through >= 256 MiB of weight copies, alternating with a STREAM-like copy
// on the same pool (protocol of BM_PackedIntDecodeBw) and with our fp32 GEMV
// (GemmF32NT, n = 1) on the dequantized matrix. GB/s counts codes + scales +
// zero points read. RATIO int<b>_g<G>z_f32act_decode_bw_<rows>x<cols>_t<threads>
// (GEMV GB/s / copy GB/s; target >= 0.5 for int4 g32) and ..._vs_f32gemv
// (fp32 GEMV time / ours); ..._cpu: the fraction on process CPU time (as
// BM_PackedIntDecodeBw).
// args: bits, group, rows, cols, threads
void BM_PackedIntF32DecodeBw(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  const int64_t group = state.range(1), rows = state.range(2), cols = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  DecodeBwRun run(threads, rows, cols);
  const auto copies = MakeWeightCopies(2, [&](int64_t c) { return MakePackedZ(bits, rows, cols, group, 51 + 2 * c); });
  const int64_t n_copies = static_cast<int64_t>(copies.size());
  std::vector<float> dense(rows * cols);
  PackedIntDequantizeRows(copies[0].p.view, 0, rows, dense.data());
  const float* x = run.x.data();
  float* y = run.y.data();
  BestTime f32_t;
  for (auto _ : state) {
    AlternateBestOf(
        kDecodeBwReps,
        {{&run.copy_t, run.copy},
         {&run.gemv_t,
          EachCopy(copies, run.y, [&](const PackedZ& p) { PackedIntGemm(p.p.view, x, 1, nullptr, y, run.pool); })},
         {&f32_t, [&] {
            GemmF32NT(x, 1, cols, dense.data(), rows, y, run.pool);
            benchmark::DoNotOptimize(y);
          }}});
  }
  const std::string tag = "int" + std::to_string(bits) + "_g" + std::to_string(group) + "z_f32act_decode_bw_" +
                          ShapeTag(rows, cols, "_t", threads);
  run.Report(state, tag, copies[0].Bytes(), n_copies);
  const double gemv_s = run.gemv_t.wall / static_cast<double>(n_copies);
  state.counters["f32_GBps"] = rows * cols * 4.0 / f32_t.wall / 1e9;
  state.counters["vs_f32gemv"] = f32_t.wall / gemv_s;
  AddRatio(tag + "_vs_f32gemv", f32_t.wall / gemv_s);
  LabelRun(state, tag);
}
void F32ActDecodeShapes(benchmark::internal::Benchmark* b) {
  for (int64_t threads : {1, 2}) {
    for (const auto& bg : kF32ActLayouts) {
      for (const auto& rc : kLlamaShapes) b->Args({bg[0], bg[1], rc[0], rc[1], threads});
    }
  }
}
BENCHMARK(BM_PackedIntF32DecodeBw)
    ->ArgNames({"bits", "group", "rows", "cols", "threads"})
    ->Apply(F32ActDecodeShapes)
    ->Apply(OneRunMs);

// ---------------------------------------------------------------- Q4_0 / Q8_0 blocks

// ggml block weights (random codes, fp16 scales ~0.01) as llama.cpp stores
// them, and the view of them. Moving keeps the view valid.
struct GgmlBlocks {
  std::vector<uint8_t> bytes;
  GgmlBlockWeights view;
  int64_t Bytes() const { return static_cast<int64_t>(bytes.size()); }
};

GgmlBlocks MakeGgmlBlocks(GgmlBlockKind kind, int64_t rows, int64_t cols, uint64_t seed) {
  const int64_t bb = GgmlBlockBytes(kind), nb = rows * cols / kGgmlBlockCols;
  std::mt19937_64 rng(seed);
  GgmlBlocks g;
  std::vector<uint8_t>& b = g.bytes;
  b.resize(static_cast<size_t>(nb * bb));
  for (uint8_t& v : b) v = static_cast<uint8_t>(rng());
  for (int64_t i = 0; i < nb; ++i) {
    b[i * bb] = static_cast<uint8_t>(rng());
    b[i * bb + 1] = 0x20;  // fp16 exponent of ~0.01: finite scales
  }
  g.view = GgmlBlockWeights{kind, rows, cols, b.data()};
  return g;
}

// Argument 0 of the block benchmarks: 0 Q4_0, 1 Q8_0; and the RATIO prefix.
GgmlBlockKind GgmlKindArg(const benchmark::State& state) {
  return state.range(0) == 0 ? GgmlBlockKind::kQ4_0 : GgmlBlockKind::kQ8_0;
}
std::string GgmlKindTag(GgmlBlockKind kind) { return kind == GgmlBlockKind::kQ4_0 ? "q4_0" : "q8_0"; }

// args: kind (0 Q4_0, 1 Q8_0), rows, cols, n. Same protocol as
// BM_PackedIntGemv: calls cycle through >= 256 MiB of weight copies; GB/s
// counts the block bytes read per call.
void BM_GgmlBlockGemv(benchmark::State& state) {
  const GgmlBlockKind kind = GgmlKindArg(state);
  const int64_t rows = state.range(1), cols = state.range(2), n = state.range(3);
  const auto copies = MakeWeightCopies(1, [&](int64_t c) { return MakeGgmlBlocks(kind, rows, cols, 21 + c); });
  const std::string tag = GgmlKindTag(kind) + "_blocks_" + ShapeTag(rows, cols, "_n", n);
  RunGemv(
      state, copies, rows, cols, n, tag,
      [&](const GgmlBlocks& b, const float* x, float* y, ThreadPool& pool) {
        GgmlBlockGemm(b.view, x, n, nullptr, y, pool);
      },
      [&](const GgmlBlocks& b, float* dense) { GgmlBlockDequantizeRows(b.view, 0, rows, dense); },
      [&](const GgmlBlocks& b, const float* x, float* y) { GgmlBlockGemmReference(b.view, x, n, nullptr, y); });
  LabelRun(state, tag, VnniNote());
}
BENCHMARK(BM_GgmlBlockGemv)
    ->ArgNames({"q8", "rows", "cols", "n"})
    ->ArgsProduct({{0, 1}, {4096, 11008}, {4096}, {1, 16}})
    ->Args({0, 4096, 11008, 1})
    ->Apply(RealTimeMs);

// One token through Q4_0 / Q8_0 blocks (the decode GEMV), 1 and 2 threads,
// as a fraction of a STREAM-like copy on the same pool measured in
// alternation with it (the protocol of BM_PackedIntDecodeBw); GB/s counts
// the block bytes (codes + fp16 scales) read per call.
// RATIO q<4|8>_0_blocks_decode_bw_<rows>x<cols>_t<threads> (and _cpu).
void BM_GgmlBlockDecodeBw(benchmark::State& state) {
  const GgmlBlockKind kind = GgmlKindArg(state);
  const int64_t rows = state.range(1), cols = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  DecodeBwRun run(threads, rows, cols);
  const auto copies = MakeWeightCopies(2, [&](int64_t c) { return MakeGgmlBlocks(kind, rows, cols, 41 + c); });
  for (auto _ : state) {
    run.Alternate(EachCopy(copies, run.y, [&](const GgmlBlocks& b) {
      GgmlBlockGemm(b.view, run.x.data(), 1, nullptr, run.y.data(), run.pool);
    }));
  }
  const std::string tag = GgmlKindTag(kind) + "_blocks_decode_bw_" + ShapeTag(rows, cols, "_t", threads);
  run.Report(state, tag, copies[0].Bytes(), static_cast<int64_t>(copies.size()));
  LabelRun(state, tag, VnniNote());
}
BENCHMARK(BM_GgmlBlockDecodeBw)
    ->ArgNames({"q8", "rows", "cols", "threads"})
    ->ArgsProduct({{0, 1}, {4096, 11008}, {4096}, {1, 2}})
    ->Args({0, 4096, 11008, 1})
    ->Args({1, 4096, 11008, 1})
    ->Apply(OneRunMs);

// Prefill through Q4_0 / Q8_0 blocks (n = 16 / 64 / 128 tokens, weights
// cached after the first call), best of 5: GOPS (2 * n * rows * cols per
// wall second; GOPS_cpu per process CPU second); RATIO q<4|8>_0_blocks_
// prefill_<rows>x<cols>_n<n>_vs_eigen_f32 compares with Eigen's fp32 GEMM
// on the dequantized matrix over the same pool.
void BM_GgmlBlockPrefill(benchmark::State& state) {
  const GgmlBlockKind kind = GgmlKindArg(state);
  const int64_t rows = state.range(1), cols = state.range(2), n = state.range(3);
  const GgmlBlocks blocks = MakeGgmlBlocks(kind, rows, cols, 77);
  const GgmlBlockWeights& w = blocks.view;
  const auto x = Random(n * cols, 6);
  std::vector<float> y(n * rows);
  ThreadPool& pool = ThreadPool::Default();
  auto ours = [&] {
    GgmlBlockGemm(w, x.data(), n, nullptr, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  };
  ours();
  BestTime best;
  for (auto _ : state) best.Time(ours);
  std::vector<float> dense(rows * cols);
  GgmlBlockDequantizeRows(w, 0, rows, dense.data());
  const double eigen_s = EigenGemmSeconds(x.data(), n, cols, dense.data(), rows, y.data(), pool, 3);
  const double ops = 2.0 * n * rows * cols;
  state.counters["GOPS"] = ops / best.wall / 1e9;
  state.counters["GOPS_cpu"] = ops / best.cpu / 1e9;
  state.counters["tok_per_s"] = n / best.wall;
  state.counters["vs_eigen"] = eigen_s / best.wall;
  const std::string tag = GgmlKindTag(kind) + "_blocks_prefill_" + ShapeTag(rows, cols, "_n", n);
  AddRatio(tag + "_vs_eigen_f32", eigen_s / best.wall);
  LabelRun(state, tag, VnniNote());
}
BENCHMARK(BM_GgmlBlockPrefill)
    ->ArgNames({"q8", "rows", "cols", "n"})
    ->ArgsProduct({{0, 1}, {4096}, {4096}, {16, 64, 128}})
    ->Args({0, 11008, 4096, 128})
    ->Args({1, 11008, 4096, 128})
    ->Iterations(5)
    ->Apply(RealTimeMs);

// ---------------------------------------------------------------- W8A8

void BM_Int8Gemm(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  std::mt19937_64 rng(7);
  std::vector<int8_t> a(m * k), w(n * k);
  for (int8_t& v : a) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  for (int8_t& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  const auto as = Random(m, 8, 0.001f, 0.01f), ws = Random(n, 9, 0.001f, 0.01f);
  std::vector<float> y(m * n);
  ThreadPool& pool = ThreadPool::Default();
  auto ours = [&] {
    Int8GemmNT(a.data(), m, k, as.data(), w.data(), n, ws.data(), nullptr, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  };
  const double ours_s = SecondsPerIteration(state, ours);
  const auto xf = Random(m * k, 10), wf = Random(n * k, 11);
  const double eigen_s = EigenGemmSeconds(xf.data(), m, k, wf.data(), n, y.data(), pool, BaselineReps(state, 2, 10));
  const std::string tag = "w8a8_" + ShapeTag(n, k, "_m", m);
  state.counters["GOPs"] = 2.0 * m * n * k / ours_s / 1e9;
  state.counters["vs_eigen"] = eigen_s / ours_s;
  AddRatio(tag + "_vs_eigen_f32", eigen_s / ours_s);
  if (m == 1) {
    std::vector<float> yr(m * n);
    const double ref_s = SecondsPerCall(
        [&] { Int8GemmNTReference(a.data(), m, k, as.data(), w.data(), n, ws.data(), nullptr, yr.data()); }, 1);
    state.counters["vs_ref"] = ref_s / ours_s;
    AddRatio(tag + "_vs_reference", ref_s / ours_s);
  }
  LabelRun(state, tag, VnniNote());
}
BENCHMARK(BM_Int8Gemm)
    ->ArgNames({"m", "k", "n"})
    ->Args({1, 4096, 11008})
    ->Args({16, 4096, 11008})
    ->Args({128, 4096, 4096})
    ->Apply(RealTimeMs);

// ---------------------------------------------------------------- fp32 GEMM

void BM_GemmF32(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  const auto x = Random(n * k, 12), w = Random(m * k, 13);
  std::vector<float> y(n * m);
  ThreadPool& pool = ThreadPool::Default();
  auto ours = [&] {
    GemmF32NT(x.data(), n, k, w.data(), m, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  };
  const double ours_s = SecondsPerIteration(state, ours);
  const double eigen_s = EigenGemmSeconds(x.data(), n, k, w.data(), m, y.data(), pool, BaselineReps(state, 2, 10));
  state.counters["GFLOPs"] = 2.0 * n * m * k / ours_s / 1e9;
  state.counters["eigen_GFLOPs"] = 2.0 * n * m * k / eigen_s / 1e9;
  state.counters["vs_eigen"] = eigen_s / ours_s;
  const std::string tag = "fp32_gemm_" + ShapeTag(m, k, "_n", n);
  AddRatio(tag + "_vs_eigen", eigen_s / ours_s);
  LabelRun(state, tag);
}
// n = 1 (decode), 8 and 16 (batched decode: the pack-free path), 128 and
// 512 (prefill: the packed path) on the three Llama-7B linear shapes
// (m x k = q/k/v/o 4096x4096, gate/up 11008x4096, down 4096x11008).
void GemmF32Shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1, 8, 16, 128, 512}) {
    for (const auto& mk : kLlamaShapes) b->Args({n, mk[1], mk[0]});
  }
}
BENCHMARK(BM_GemmF32)
    ->ArgNames({"n", "k", "m"})
    ->Apply(GemmF32Shapes)
    ->Apply(RealTimeMs);

// ---------------------------------------------------------------- F16 / BF16 weights

// The old DenseLinear path for F16/BF16 weights: each column chunk widened
// to fp32 in memory (the same scalar loop as DenseLinear::WidenRows), then
// our fp32 GEMM on it. simd_widen: kernels::WidenHalf instead (what
// DenseLinear now runs above kHalfDirectMaxRows rows).
void WidenThenGemm(HalfType type, const float* x, int64_t n, int64_t k, const uint16_t* w, int64_t m, float* y,
                   ThreadPool& pool, bool simd_widen) {
  const int64_t chunk = GemmF32ChunkColumns(n, m, k);
  pool.ParallelFor((m + chunk - 1) / chunk, 1, [&](int64_t cb, int64_t ce) {
    std::vector<float> widened;
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t j0 = c * chunk, j1 = std::min(m, j0 + chunk);
      widened.resize(static_cast<size_t>((j1 - j0) * k));
      const uint16_t* src = w + j0 * k;
      if (simd_widen) {
        WidenHalf(type, src, static_cast<int64_t>(widened.size()), widened.data());
      } else {
        for (size_t i = 0; i < widened.size(); ++i) {
          widened[i] = type == HalfType::kF16 ? F16ToFloat(src[i]) : Bf16ToFloat(src[i]);
        }
      }
      GemmF32NTStrided(x, n, k, widened.data(), j1 - j0, y + j0, m);
    }
  });
}

// The direct kernel over the same column chunks (what DenseLinear runs).
void DirectHalf(HalfType type, const float* x, int64_t n, int64_t k, const uint16_t* w, int64_t m, float* y,
                ThreadPool& pool) {
  const int64_t chunk = GemmF32ChunkColumns(n, m, k);
  pool.ParallelFor((m + chunk - 1) / chunk, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t j0 = c * chunk, j1 = std::min(m, j0 + chunk);
      GemmHalfNTStrided(type, x, n, k, w + j0 * k, j1 - j0, y + j0, m);
    }
  });
}

// args: type (0 F16, 1 BF16), rows m, cols k, n, threads
void BM_HalfDecodeBw(benchmark::State& state) {
  const HalfType type = state.range(0) == 0 ? HalfType::kF16 : HalfType::kBF16;
  const int64_t m = state.range(1), k = state.range(2), n = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  ThreadPool pool(threads);
  const int64_t per_copy = m * k * 2;
  const int64_t n_copies = WeightCopiesFor(per_copy, 2);
  std::vector<std::vector<uint16_t>> copies(n_copies);
  {
    const std::vector<float> w = Random(m * k, 41);
    for (int64_t c = 0; c < n_copies; ++c) {
      copies[c].resize(w.size());
      for (size_t i = 0; i < w.size(); ++i) {
        const float v = w[(i + c) % w.size()];
        copies[c][i] = type == HalfType::kF16 ? FloatToF16(v) : FloatToBf16(v);
      }
    }
  }
  CopyPass copy(pool, kDecodeCopyBytes);
  const auto x = Random(n * k, 7, -2.0f, 2.0f);
  std::vector<float> y(n * m);
  // One pass: fn on every weight copy in turn.
  auto pass = [&](auto&& fn) { return EachCopy(copies, y, [fn](const std::vector<uint16_t>& w) { fn(w.data()); }); };
  BestTime copy_t, direct_t, widen_t, widen_simd_t;
  for (auto _ : state) {
    AlternateBestOf(kDecodeBwReps,
                    {{&copy_t, copy},
                     {&direct_t, pass([&](const uint16_t* w) { DirectHalf(type, x.data(), n, k, w, m, y.data(), pool); })},
                     {&widen_t, pass([&](const uint16_t* w) {
                        WidenThenGemm(type, x.data(), n, k, w, m, y.data(), pool, false);
                      })},
                     {&widen_simd_t, pass([&](const uint16_t* w) {
                        WidenThenGemm(type, x.data(), n, k, w, m, y.data(), pool, true);
                      })}});
  }
  const double calls = static_cast<double>(copies.size());
  const double best_direct = direct_t.wall / calls, best_widen = widen_t.wall / calls;
  const double best_widen_simd = widen_simd_t.wall / calls;
  const double copy_gbps = copy.GBps(copy_t.wall);
  const double gbps = per_copy / best_direct / 1e9;
  state.counters["GBps"] = gbps;
  state.counters["widen_GBps"] = per_copy / best_widen / 1e9;
  state.counters["copy_GBps"] = copy_gbps;
  state.counters["bw_frac"] = gbps / copy_gbps;
  state.counters["vs_widen"] = best_widen / best_direct;
  state.counters["vs_widen_simd"] = best_widen_simd / best_direct;
  const std::string tag =
      std::string(HalfTypeName(type)) + "_%s_" + ShapeTag(m, k, "_n", n) + "_t" + std::to_string(threads);
  auto named = [&](const char* what) {
    std::string t = tag;
    t.replace(t.find("%s"), 2, what);
    return t;
  };
  if (n == 1) AddRatio(named("decode_bw"), gbps / copy_gbps);
  AddRatio(named("direct_vs_widen"), best_widen / best_direct);
  AddRatio(named("direct_vs_simdwiden"), best_widen_simd / best_direct);
  LabelRun(state, named("direct_vs_widen"));
}
void HalfDecodeShapes(benchmark::internal::Benchmark* b) {
  for (int64_t threads : {1, 2}) {
    for (int64_t type : {0, 1}) {
      for (const auto& mk : kLlamaShapes) b->Args({type, mk[0], mk[1], 1, threads});
    }
  }
  // The crossover against the widen path (DenseLinear::kHalfDirectMaxRows).
  for (int64_t type : {0, 1}) {
    for (int64_t n : {2, 4, 8, 12, 16, 24, 32, 48, 64}) b->Args({type, 4096, 4096, n, 1});
  }
}
BENCHMARK(BM_HalfDecodeBw)
    ->ArgNames({"type", "rows", "cols", "n", "threads"})
    ->Apply(HalfDecodeShapes)
    ->Apply(OneRunMs);

// ---------------------------------------------------------------- int8 activations, prefill (tile)

// BM_PackedIntQ8Prefill: PackedIntGemmQ8 (int8 activations) for a prompt of
// n tokens through one packed layer: the panel path (packed_int_panel.h:
// 16-row panels repacked on the fly, vpdpbusd with rows in lanes) against the
// row kernels it replaced for n >= PackedIntTileRows(w)
// (internal::PackedIntGemmQ8WithTileRows with the panel path off), on the
// default pool (SQUEEZE_THREADS). Both alternate for kQ8PrefillReps rounds,
// each keeps its fastest. GOPS = 2 n rows cols / s (activation quantization
// included). RATIO int<b>_g<G>[z]_a8_prefill_<rows>x<cols>_n<n>_vs_rows =
// row-kernel time / panel time.
// args: bits, group, zero points (0/1), rows, cols, n
constexpr int kQ8PrefillReps = 3;

void BM_PackedIntQ8Prefill(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  const int64_t group = state.range(1);
  const bool zp = state.range(2) != 0;
  const int64_t rows = state.range(3), cols = state.range(4), n = state.range(5);
  Packed p = MakePackedGroup(bits, rows, cols, group, 51);
  std::vector<int32_t> zero_points;
  if (zp) {
    zero_points = RandomZeroPoints(bits, rows * p.view.groups_per_row, 52);
    p.view.zero_points = zero_points.data();
  }
  const PackedIntWeights& w = p.view;
  const auto x = Random(n * cols, 53, -2.0f, 2.0f);
  std::vector<float> y(n * rows), y_rows(n * rows);
  ThreadPool& pool = ThreadPool::Default();
  constexpr int64_t kRowsOnly = int64_t{1} << 40;
  BestTime ours_t, old_t;
  PackedIntGemmQ8(w, x.data(), n, nullptr, y.data(), pool);  // warm up (and the scratch)
  for (auto _ : state) {
    AlternateBestOf(kQ8PrefillReps, {{&ours_t, [&] {
                                        PackedIntGemmQ8(w, x.data(), n, nullptr, y.data(), pool);
                                        benchmark::DoNotOptimize(y.data());
                                      }},
                                     {&old_t, [&] {
                                        internal::PackedIntGemmQ8WithTileRows(w, x.data(), n, nullptr, y_rows.data(),
                                                                              pool, kRowsOnly);
                                        benchmark::DoNotOptimize(y_rows.data());
                                      }}});
  }
  const double ours = ours_t.wall, old = old_t.wall;
  if (std::memcmp(y.data(), y_rows.data(), y.size() * sizeof(float)) != 0) {
    state.SkipWithError("panel path and row kernels differ");
    return;
  }
  const double ops = 2.0 * n * rows * cols;
  state.counters["GOPS"] = ops / ours / 1e9;
  state.counters["rows_GOPS"] = ops / old / 1e9;
  state.counters["vs_rows"] = old / ours;
  const std::string tag = "int" + std::to_string(bits) + "_g" + std::to_string(group) + (zp ? "z" : "") +
                          "_a8_prefill_" + ShapeTag(rows, cols, "_n", n);
  AddRatio(tag + "_vs_rows", old / ours);
  LabelRun(state, tag, Int8PanelGemmFast() ? " (panels)" : " (rows)");
}
void Q8PrefillShapes(benchmark::internal::Benchmark* b) {
  const int64_t layouts[][3] = {{4, 32, 0}, {8, 32, 0}, {4, 128, 1}};
  for (const auto& l : layouts) {
    for (const auto& rc : kLlamaShapes) {
      for (int64_t n : {16, 64, 128}) b->Args({l[0], l[1], l[2], rc[0], rc[1], n});
    }
  }
}
BENCHMARK(BM_PackedIntQ8Prefill)
    ->ArgNames({"bits", "group", "zp", "rows", "cols", "n"})
    ->Apply(Q8PrefillShapes)
    ->Apply(OneRunMs);

}  // namespace
}  // namespace squeeze::kernels

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::printf("kernel variant: %s (SQUEEZE_KERNELS caps it)\n",
              squeeze::kernels::KernelIsaName(squeeze::kernels::ActiveIsa()));
  squeeze::bench::PrintRatios();
  return 0;
}
