// bench_prune: runtime and peak memory of each pruning / low-rank method on a
// synthetic model with Llama-7B layer shapes (dim 4096, hidden 11008, 32
// heads of 128; random weights), beside one forward pass of the calibration
// set measured in the same run; then the speed of the compressed layer kinds
// against the dense fp32 layer of the same shape, also in the same run.
//
// Part 1, per block (SQUEEZE_BENCH_LAYERS blocks, default 1):
//   calibration  SQUEEZE_BENCH_SEQS sequences (default 2) of
//                SQUEEZE_BENCH_SEQ_LEN tokens (default 256) through the block
//                (the baseline: "calibration forward"), with every linear
//                input accumulated into ActivationStats with X^T X (timed
//                apart: the Hessian SparseGPT needs);
//   methods      on the block's 7 linears, each from the dense weight:
//                magnitude / Wanda / SparseGPT at 50% unstructured and 2:4,
//                structured (Wanda-sp scores + removal of 20% of head groups
//                and channels), low-rank SVD at rank_ratio 0.25 (q_proj only
//                unless SQUEEZE_BENCH_LOWRANK_ALL=1: an SVD of [11008, 4096]
//                in fp64 takes minutes on 2 cores);
//   whole model  block influence (ShortGPT) and Taylor importance (one
//                forward + backward of the calibration set through the
//                training engine), against the calibration forward of all
//                blocks.
//   Peak RSS per method: VmHWM after resetting it (/proc/self/clear_refs 5);
//   "n/a" where the kernel refuses the reset.
// Part 2, layer speed, [out, in] = [4096, 11008] (down_proj) and
//   [4096, 4096] (q_proj), rows m = 1 (decode) and 64 (prefill), median of
//   SQUEEZE_BENCH_REPS (default 7) runs after a warm-up:
//   dense fp32 DenseLinear vs SparseLinear bitmask at 50%, SparseLinear 2:4,
//   FactorizedLinear at rank 0.25 * min(out, in), and a structured 20%
//   narrower DenseLinear.
// Output: figures, then `RATIO <name> <value>` lines, higher is better as
// `make bench` wants them (the baseline's time / ours): for methods
// calibration-forward seconds / method seconds (1 = the method costs one
// calibration forward; 0.5 = two), for layers dense seconds / layer seconds
// (> 1 = faster than dense). The tables print the plain seconds and the
// inverse "x forward" / "x dense time" factors.
// Threads: SQUEEZE_THREADS (default: all cores).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/bench/bench_model.h"
#include "tests/bench/bench_util.h"
#include "workers/engine/calib/activation_stats.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/methods/lowrank/factorized_linear.h"
#include "workers/methods/lowrank/lowrank.h"
#include "workers/methods/prune/layer_removal.h"
#include "workers/methods/prune/magnitude.h"
#include "workers/methods/prune/sparse_linear.h"
#include "workers/methods/prune/sparsegpt.h"
#include "workers/methods/prune/structured.h"
#include "workers/methods/prune/taylor.h"
#include "workers/methods/prune/wanda.h"

namespace squeeze {
namespace {

using bench::Clock;
using bench::EnvInt;
using bench::Since;
using bench::StatusMiB;
constexpr auto ResetPeak = bench::ResetPeakRss;

struct MethodFigure {
  double seconds = 0.0;
  double peak_mib = -1.0;  // max over the calls
};

// Median seconds of `reps` calls after one warm-up.
double MedianSeconds(int reps, const std::function<void()>& f) {
  f();
  std::vector<double> s;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    f();
    s.push_back(Since(t0));
  }
  return bench::Median(std::move(s));
}

MatrixRM RandomMatrix(int64_t rows, int64_t cols, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, scale);
  MatrixRM m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
  return m;
}

int Main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const int layers = EnvInt("SQUEEZE_BENCH_LAYERS", 1);
  const int seqs = EnvInt("SQUEEZE_BENCH_SEQS", 2);
  const int seq_len = EnvInt("SQUEEZE_BENCH_SEQ_LEN", 256);
  const bool lowrank_all = EnvInt("SQUEEZE_BENCH_LOWRANK_ALL", 0) != 0;
  const int reps = std::max(1, EnvInt("SQUEEZE_BENCH_REPS", 7));
  const ModelConfig c = bench::Llama7BLayerShapes(layers, seq_len);
  ThreadPool& pool = ThreadPool::Default();
  const bool can_reset = ResetPeak();
  std::printf("bench_prune: %d layer(s) of Llama-7B shapes, %d x %d calibration tokens, %d threads%s\n", layers, seqs,
              seq_len, pool.size(), can_reset ? "" : " (peak RSS reset not allowed: peaks are cumulative)");
  auto t0 = Clock::now();
  Model m = MakeRandomModel(c, 1);
  std::printf("model built: %.1f s, RSS %.0f MiB\n", Since(t0), StatusMiB("VmRSS:"));

  std::mt19937_64 rng(2);
  std::uniform_int_distribution<int> tok(0, c.vocab_size - 1);
  std::vector<std::vector<int>> tokens(seqs);
  std::vector<MatrixRM> hidden(seqs);
  for (int s = 0; s < seqs; ++s) {
    tokens[s].resize(seq_len);
    for (int& t : tokens[s]) t = tok(rng);
    if (!Embed(m, tokens[s], hidden[s]).ok()) return 1;
  }
  const int64_t n_rows = static_cast<int64_t>(seqs) * seq_len;
  double forward_s = 0.0, accum_s = 0.0;
  std::map<std::string, MethodFigure> fig;
  auto time_method = [&](const std::string& name, const std::function<bool()>& f) -> bool {
    ResetPeak();
    const auto t = Clock::now();
    if (!f()) {
      std::fprintf(stderr, "%s failed\n", name.c_str());
      return false;
    }
    MethodFigure& mf = fig[name];
    mf.seconds += Since(t);
    mf.peak_mib = std::max(mf.peak_mib, StatusMiB("VmHWM:"));
    return true;
  };
  for (int l = 0; l < layers; ++l) {
    bench::TimedStatsObserver obs(pool);
    t0 = Clock::now();
    for (int s = 0; s < seqs; ++s) {
      if (!RunBlock(m, l, hidden[s], 0, nullptr, &obs, pool).ok()) return 1;
    }
    forward_s += Since(t0) - obs.add_seconds;
    accum_s += obs.add_seconds;
    std::vector<LinearSlot> slots = m.BlockLinears(l);
    for (int i = 0; i < kNumBlockLinears; ++i) {
      const int src = bench::StatsIndexOf(i);
      const ActivationStats& st = *obs.stats[src];
      const MatrixRM w = (*slots[i].slot)->DenseWeight();
      const std::vector<double> norms = st.ChannelNorms();
      const MaskStructure nm{2, 4};
      bool ok = true;
      for (const MaskStructure& mask : {MaskStructure{}, nm}) {
        const std::string suffix = mask.unstructured() ? "_50" : "_2of4";
        ok = ok && time_method("magnitude" + suffix, [&] {
               MagnitudeOptions o;
               o.sparsity = 0.5;
               o.mask = mask;
               return MagnitudePrune(w, o).ok();
             });
        ok = ok && time_method("wanda" + suffix, [&] {
               WandaOptions o;
               o.sparsity = 0.5;
               o.mask = mask;
               return WandaPrune(w, norms, o).ok();
             });
        ok = ok && time_method("sparsegpt" + suffix, [&] {
               SparseGptOptions o;
               o.sparsity = 0.5;
               o.mask = mask;
               auto r = SparseGptPrune(w, st.xtx(), n_rows, o, pool);
               if (!r.ok()) std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
               return r.ok();
             });
      }
      if (lowrank_all || i == 0) {
        ok = ok && time_method(lowrank_all ? "lowrank_svd_r0.25" : "lowrank_svd_r0.25_q_proj_only", [&] {
               LowRankOptions o;
               o.rank_ratio = 0.25;
               return LowRankFactorize(w, {}, o).ok();
             });
      }
      if (!ok) return 1;
      std::printf("  layer %d %-18s [%5lld x %5lld] done, RSS %.0f MiB\n", l,
                  BlockLinearSuffix(static_cast<BlockLinear>(i)), static_cast<long long>(w.rows()),
                  static_cast<long long>(w.cols()), StatusMiB("VmRSS:"));
    }
    // Structured (Wanda-sp scores, 20% of head groups and channels) on a copy
    // of the block's weights (the model's block stays for Part 1's whole-model steps).
    TransformerBlock b;
    b.attn_norm = m.blocks[l].attn_norm;
    b.ffn_norm = m.blocks[l].ffn_norm;
    for (int i = 0; i < kNumBlockLinears; ++i) {
      std::unique_ptr<LinearLayer>* dst[] = {&b.q_proj, &b.k_proj, &b.v_proj, &b.o_proj, &b.gate_proj, &b.up_proj,
                                             &b.down_proj};
      *dst[i] = DenseLinear::FromMatrix((*m.BlockLinears(l)[i].slot)->DenseWeight());
    }
    BlockInputNorms bn;
    bn.attn_in = obs.stats[0]->ChannelNorms();
    bn.attn_out = obs.stats[3]->ChannelNorms();
    bn.mlp_in = obs.stats[4]->ChannelNorms();
    bn.mlp_hidden = obs.stats[6]->ChannelNorms();
    if (!time_method("structured_wanda_20", [&] {
          auto hs = HeadGroupImportance(b, c.head_dim, StructureImportance::kWanda, bn);
          auto cs = ChannelImportance(b, StructureImportance::kWanda, bn);
          if (!hs.ok() || !cs.ok()) return false;
          const int nh = static_cast<int>(hs->size()), nc = static_cast<int>(cs->size());
          return RemoveHeadGroups(b, c.head_dim, LowestScored(*hs, StructuresToRemove(0.2, nh))).ok() &&
                 RemoveChannels(b, LowestScored(*cs, StructuresToRemove(0.2, nc))).ok();
        })) {
      return 1;
    }
  }
  if (!time_method("block_influence", [&] { return BlockInfluence(m, tokens, pool).ok(); })) return 1;
  if (!time_method("taylor_importance", [&] {
        auto r = TaylorImportance(m, tokens, pool);
        if (!r.ok()) std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
        return r.ok();
      })) {
    return 1;
  }
  std::printf("calibration forward of %d block(s): %.2f s (X^T X accumulation apart: %.2f s)\n", layers, forward_s,
              accum_s);
  std::printf("%-32s %10s %14s %12s\n", "method", "seconds", "vs forward", "peak MiB");
  for (const auto& [name, f] : fig) {
    std::printf("%-32s %10.2f %14.2f %12.0f\n", name.c_str(), f.seconds, f.seconds / forward_s, f.peak_mib);
  }

  // Part 2: layer speed vs dense.
  std::map<std::string, double> layer_ratio;
  for (const auto& [out, in] : std::vector<std::pair<int64_t, int64_t>>{{4096, 11008}, {4096, 4096}}) {
    const MatrixRM w = RandomMatrix(out, in, 3, 0.02f);
    MagnitudeOptions half;
    half.sparsity = 0.5;
    MagnitudeOptions two_four;
    two_four.mask = MaskStructure{2, 4};
    auto w50 = MagnitudePrune(w, half);
    auto w24 = MagnitudePrune(w, two_four);
    if (!w50.ok() || !w24.ok()) return 1;
    const int64_t rank = static_cast<int64_t>(0.25 * std::min(out, in));
    std::vector<std::pair<std::string, std::unique_ptr<LinearLayer>>> kinds;
    kinds.emplace_back("dense", DenseLinear::FromMatrix(w));
    auto bm = SparseLinear::FromDense(*w50, {}, SparseFormat::kBitmask);
    auto s24 = SparseLinear::FromDense(*w24, {}, SparseFormat::kNM, 2, 4);
    auto fl = FactorizedLinear::Create(RandomMatrix(out, rank, 4, 0.02f), RandomMatrix(rank, in, 5, 0.02f));
    if (!bm.ok() || !s24.ok() || !fl.ok()) return 1;
    kinds.emplace_back("sparse_bitmask_50", std::move(*bm));
    kinds.emplace_back("sparse_2of4", std::move(*s24));
    kinds.emplace_back("lowrank_r0.25", std::move(*fl));
    kinds.emplace_back("structured_80pct_rows", DenseLinear::FromMatrix(w.topRows(out * 4 / 5)));
    for (int64_t rows : {int64_t{1}, int64_t{64}}) {
      const MatrixRM x = RandomMatrix(rows, in, 6, 1.0f);
      double dense_s = 0.0;
      for (auto& [name, layer] : kinds) {
        MatrixRM y(rows, layer->out_features());
        const double s = MedianSeconds(reps, [&] { layer->Forward(x.data(), rows, y.data(), pool); });
        if (name == "dense") dense_s = s;
        std::printf("layer [%lld x %lld] m=%-3lld %-22s %9.3f ms  %8.1f MB stored  %.2fx dense time\n",
                    static_cast<long long>(out), static_cast<long long>(in), static_cast<long long>(rows), name.c_str(),
                    s * 1e3, layer->StorageBytes() / 1e6, s / dense_s);
        if (name != "dense") {
          layer_ratio[name + "_vs_dense_" + std::to_string(out) + "x" + std::to_string(in) + "_m" +
                      std::to_string(rows)] = dense_s / s;
        }
      }
    }
  }
  std::printf("PEAK_RSS_MIB %.0f\n", StatusMiB("VmHWM:"));
  for (const auto& [name, f] : fig) std::printf("RATIO %s_vs_calibration_forward %.3f\n", name.c_str(), forward_s / f.seconds);
  for (const auto& [name, r] : layer_ratio) std::printf("RATIO %s %.3f\n", name.c_str(), r);
  return 0;
}

}  // namespace
}  // namespace squeeze

int main() { return squeeze::Main(); }
