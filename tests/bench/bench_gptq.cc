// bench_gptq: runtime and peak memory of GPTQ on a synthetic model with
// Llama-7B layer shapes (dim 4096, hidden 11008, 32 heads; random weights),
// beside the time Eigen's GEMM needs for the same FLOP count, measured in
// the same run.
//
// Per block (SQUEEZE_BENCH_LAYERS blocks, default 1):
//   1. calibration: SQUEEZE_BENCH_SEQS sequences (default 2) of
//      SQUEEZE_BENCH_SEQ_LEN tokens (default 256) through the block; every
//      linear input is accumulated into ActivationStats with X^T X (the
//      Hessian accumulation GPTQ needs; q/k/v and gate/up share one);
//   2. GPTQ (W4A16: 4 bit, groups of 128, act-order static, block 128,
//      damp 0.01) of each of the 7 linears: GptqHessian + QuantizeGptq
//      (Cholesky of H^-1 and the lazy-batch column updates).
// Baselines, measured in the same run on the same shapes:
//   hessian_gemm   Eigen's fp32 GEMM X^T X for each distinct linear input
//                  (the same FLOPs as the accumulation: 2 n in^2);
//   gemm_rate      Eigen's fp64 GEMM rate on [1024 x in] x [in x 1024]-sized
//                  products, used to turn FLOP counts into "GEMM time":
//                  Cholesky in^3 / 3, and GPTQ's column updates 2 out in^2.
// Output: figures per phase, peak RSS (VmHWM), and `RATIO <name> <value>`
// lines (ours / baseline; > 1 = slower than the GEMM floor):
//   RATIO gptq_hessian_accum_vs_eigen_xtx
//   RATIO gptq_total_vs_gemm_time_of_hessian_and_cholesky_flops
//   RATIO gptq_total_vs_gemm_time_of_all_flops   (+ the column updates)
// Threads: SQUEEZE_THREADS (default: all cores).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>

#include <Eigen/Core>

#include "tests/bench/bench_model.h"
#include "tests/bench/bench_util.h"
#include "workers/engine/calib/activation_stats.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/methods/quant/gptq.h"

namespace squeeze {
namespace {

using bench::Clock;
using bench::EnvInt;
using bench::PeakRssMiB;
using bench::Since;

// Seconds of Eigen's fp32 X^T X for X [n, in].
double EigenXtxSeconds(int64_t n, int64_t in) {
  MatrixRM x = MatrixRM::Random(n, in);
  Eigen::MatrixXf h(in, in);
  const auto t0 = Clock::now();
  h.noalias() = x.transpose() * x;
  const double s = Since(t0);
  std::printf("  eigen X^T X [%lld x %lld]: %.3f s (%.1f GFLOP/s)\n", static_cast<long long>(n),
              static_cast<long long>(in), s, 2.0 * n * in * in / s * 1e-9);
  return s;
}

// Eigen's fp64 GEMM rate in FLOP/s on a [m, k] x [k, m] product.
double EigenF64GemmRate(int64_t m, int64_t k) {
  Eigen::MatrixXd a = Eigen::MatrixXd::Random(m, k), b = Eigen::MatrixXd::Random(k, m), c(m, m);
  c.noalias() = a * b;  // warm up
  const auto t0 = Clock::now();
  c.noalias() = a * b;
  const double s = Since(t0);
  return 2.0 * m * m * k / s;
}

int Main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear as they happen
  const int layers = EnvInt("SQUEEZE_BENCH_LAYERS", 1);
  const int seqs = EnvInt("SQUEEZE_BENCH_SEQS", 2);
  const int seq_len = EnvInt("SQUEEZE_BENCH_SEQ_LEN", 256);
  const ModelConfig c = bench::Llama7BLayerShapes(layers, seq_len);
  ThreadPool& pool = ThreadPool::Default();
  std::printf("bench_gptq: %d layer(s) of Llama-7B shapes, %d x %d calibration tokens\n", layers, seqs, seq_len);
  auto t0 = Clock::now();
  Model m = MakeRandomModel(c, 1);
  std::printf("model built: %.1f s, peak RSS %.0f MiB\n", Since(t0), PeakRssMiB());

  GptqOptions o;
  o.quant.num_bits = 4;
  o.quant.symmetric = true;
  o.quant.strategy = QuantStrategy::kGroup;
  o.quant.group_size = 128;
  o.actorder = ActOrder::kStatic;
  std::mt19937_64 rng(2);
  std::uniform_int_distribution<int> tok(0, c.vocab_size - 1);
  std::vector<MatrixRM> hidden(seqs);
  for (int s = 0; s < seqs; ++s) {
    std::vector<int> tokens(seq_len);
    for (int& t : tokens) t = tok(rng);
    if (!Embed(m, tokens, hidden[s]).ok()) return 1;
  }
  double accum_s = 0.0, forward_s = 0.0, gptq_s = 0.0;
  double flops_hessian = 0.0, flops_chol = 0.0, flops_update = 0.0, eigen_xtx_s = 0.0;
  const int64_t n = static_cast<int64_t>(seqs) * seq_len;
  for (int l = 0; l < layers; ++l) {
    bench::TimedStatsObserver obs(pool);
    t0 = Clock::now();
    for (int s = 0; s < seqs; ++s) {
      if (!RunBlock(m, l, hidden[s], 0, nullptr, &obs, pool).ok()) return 1;
    }
    forward_s += Since(t0);
    accum_s += obs.add_seconds;
    for (int w : {0, 3, 4, 6}) {
      const int64_t in = obs.stats[w]->channels();
      flops_hessian += 2.0 * n * in * in;
      eigen_xtx_s += EigenXtxSeconds(n, in);
    }
    std::vector<LinearSlot> slots = m.BlockLinears(l);
    for (int i = 0; i < kNumBlockLinears; ++i) {
      const int src = bench::StatsIndexOf(i);
      const MatrixRM w = (*slots[i].slot)->DenseWeight();
      const int64_t in = w.cols(), out = w.rows();
      t0 = Clock::now();
      auto h = GptqHessian(*obs.stats[src]);
      if (!h.ok()) return 1;
      auto q = QuantizeGptq(w, *h, o, {}, pool);
      if (!q.ok()) {
        std::fprintf(stderr, "%s\n", q.status().ToString().c_str());
        return 1;
      }
      const double s = Since(t0);
      gptq_s += s;
      flops_chol += static_cast<double>(in) * in * in / 3.0;
      flops_update += 2.0 * out * in * in;
      std::printf("  layer %d %-18s [%5lld x %5lld]: GPTQ %.2f s, loss %.4g, peak RSS %.0f MiB\n", l,
                  BlockLinearSuffix(static_cast<BlockLinear>(i)), static_cast<long long>(out),
                  static_cast<long long>(in), s, q->loss, PeakRssMiB());
      *slots[i].slot = std::move(q->layer);  // the packed layer replaces the dense one, as in a run
    }
  }
  const double rate = EigenF64GemmRate(1024, 4096);
  const double gemm_hc_s = eigen_xtx_s + flops_chol / rate;
  const double gemm_all_s = gemm_hc_s + flops_update / rate;
  const double total_s = accum_s + gptq_s;
  std::printf("calibration forward %.2f s (of which Hessian accumulation %.2f s; Eigen X^T X on the same shapes %.2f s)\n",
              forward_s, accum_s, eigen_xtx_s);
  std::printf("GPTQ of %d linears %.2f s; Hessian + GPTQ %.2f s\n", 7 * layers, gptq_s, total_s);
  std::printf("FLOPs: Hessian accumulation %.3g, Cholesky %.3g, column updates %.3g; Eigen fp64 GEMM %.1f GFLOP/s\n",
              flops_hessian, flops_chol, flops_update, rate * 1e-9);
  std::printf("GEMM time of Hessian + Cholesky FLOPs %.2f s; of all FLOPs %.2f s\n", gemm_hc_s, gemm_all_s);
  std::printf("PEAK_RSS_MIB %.0f\n", PeakRssMiB());
  std::printf("RATIO gptq_hessian_accum_vs_eigen_xtx %.3f\n", accum_s / eigen_xtx_s);
  std::printf("RATIO gptq_total_vs_gemm_time_of_hessian_and_cholesky_flops %.3f\n", total_s / gemm_hc_s);
  std::printf("RATIO gptq_total_vs_gemm_time_of_all_flops %.3f\n", total_s / gemm_all_s);
  return 0;
}

}  // namespace
}  // namespace squeeze

int main() { return squeeze::Main(); }
