// bench_sparse: sparse fp32 GEMV / small GEMM (kernels/cpu/sparse_gemm.h)
// and the factorized (low-rank) two-GEMM layer against the dense fp32 GEMV /
// GEMM of the same shape, all measured in the same run, on Llama-7B layer
// shapes [out, in] = 4096x4096 (q/k/v/o), 11008x4096 (gate/up), 4096x11008
// (down), batch n = 1 (decode) and 8 (SQUEEZE_SPARSE_BATCHES=1,2,4,8,16,64
// picks others; the scalar forwards run at n = 1 and 8 only).
//   bitmask 50% rowkernel  (AVX-512) the row kernel alone at every n, the
//                batch path before the densified tiles: RATIO
//                sparse_bitmask50_densified_vs_rowkernel_<shape>_n<n>
//                (row kernel time / SparseLinear time, n > 1).
//
//   dense        our fp32 GEMM over the pool (GemmF32NT; n <= 32 streams W
//                once) and Eigen's GEMM over the same pool and chunks
//                (kernels::GemmNT, what DenseLinear runs); the baseline of
//                each RATIO is the faster of the two.
//   bitmask 50%  unstructured, random 50% of each row kept (SparseLinear's
//                sparse_bitmask layout); also 70% and 90% sparsity (30% / 10%
//                of each row kept).
//   2:4          semi-structured, 2 of every 4 kept (sparse_2of4 layout).
//   ... scalar   the same two layers through SparseLinear::ForwardPlain, the
//                one-value-at-a-time gather forward they ran before the
//                kernels (RATIO ..._kernel_vs_scalar).
//   lowrank      FactorizedLinear at rank 0.25 * min(out, in) (20%-ish
//                parameter cut is rank 0.2 * in*out/(in+out); 0.25 * min is
//                the bench_prune setting): its forward (two GEMMs through
//                our GemmF32NT) vs the dense GEMM, and vs the same two GEMMs
//                through Eigen (kernels::GemmNT, what it ran before).
// Every call reads weights from DRAM as decode does: calls cycle through
// copies of the weights totalling >= 256 MiB per kind. Time per call is the
// median of SQUEEZE_BENCH_REPS (default 5) rounds of one call per copy.
// Output: a table (ms per call, weight GB/s, process CPU ms per call: all
// threads, which discounts time slices lost to other jobs), then one line
// per comparison (..._cpu: the same on CPU time, against our GEMM)
//   RATIO sparse_<kind>_vs_dense_<shape>_n<n> <dense time / sparse time>
//   RATIO lowrank_vs_dense_<shape>_n<n> <dense time / lowrank time>
// (higher is better; > 1 = faster than dense).
// Threads: SQUEEZE_THREADS (default: all cores). Variant: SQUEEZE_KERNELS.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tests/bench/bench_model.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/kernels/cpu/cpu_features.h"
#include "workers/kernels/cpu/gemm_f32.h"
#include "workers/kernels/cpu/sparse_gemm.h"
#include "workers/kernels/cpu/transformer_ops.h"
#include "workers/methods/lowrank/factorized_linear.h"
#include "workers/methods/prune/sparse_linear.h"

namespace squeeze {
namespace {

using Clock = std::chrono::steady_clock;

int EnvInt(const char* name, int dflt) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : dflt;
}

constexpr auto RandomMatrix = bench::RandomUniformMatrix;

// `percent`% of each row zeroed (exactly that many of every row, random places).
MatrixRM SparsePerRow(MatrixRM w, int percent, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> cols(w.cols());
  for (int64_t r = 0; r < w.rows(); ++r) {
    for (int64_t c = 0; c < w.cols(); ++c) cols[c] = c;
    std::shuffle(cols.begin(), cols.end(), rng);
    for (int64_t c = 0; c < w.cols() * percent / 100; ++c) w(r, cols[c]) = 0.0f;
  }
  return w;
}

// Keeps 2 random positions of every 4.
MatrixRM TwoOfFour(MatrixRM w, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(0, 5);
  static const int kPairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
  for (int64_t r = 0; r < w.rows(); ++r) {
    for (int64_t g = 0; g < w.cols() / 4; ++g) {
      const int* keep = kPairs[pick(rng)];
      for (int p = 0; p < 4; ++p) {
        if (p != keep[0] && p != keep[1]) w(r, g * 4 + p) = 0.0f;
      }
    }
  }
  return w;
}

// Median seconds of one call per copy (a call = fn(copy index)).
double ProcessCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// The median process CPU seconds per call of the last MedianSeconds (all
// threads; the pool's idle threads block): on a machine shared with other
// jobs it discounts the time slices the kernels did not get.
double g_last_cpu = 0;

double MedianSeconds(int copies, int reps, const std::function<void(int)>& fn) {
  for (int c = 0; c < copies; ++c) fn(c);  // warm up
  std::vector<double> t, cpu;
  for (int rep = 0; rep < reps; ++rep) {
    const auto t0 = Clock::now();
    const double c0 = ProcessCpuSeconds();
    for (int c = 0; c < copies; ++c) fn(c);
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / copies);
    cpu.push_back((ProcessCpuSeconds() - c0) / copies);
  }
  std::sort(t.begin(), t.end());
  std::sort(cpu.begin(), cpu.end());
  g_last_cpu = cpu[cpu.size() / 2];
  return t[t.size() / 2];
}

// Batch sizes: SQUEEZE_SPARSE_BATCHES, comma separated (default "1,8").
std::vector<int64_t> Batches() {
  const char* v = std::getenv("SQUEEZE_SPARSE_BATCHES");
  std::vector<int64_t> out;
  std::string s = v != nullptr ? v : "1,8";
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t comma = s.find(',', pos);
    const std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (!item.empty() && std::atoll(item.c_str()) > 0) out.push_back(std::atoll(item.c_str()));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (out.empty()) {
    std::fprintf(stderr, "SQUEEZE_SPARSE_BATCHES=%s: no positive batch size\n", s.c_str());
    std::exit(2);
  }
  return out;
}

// The AVX-512 bitmask row kernel alone at every n (the batch path before the
// densified tiles, kernels::internal::SparseBitmaskRowsAvx512), over the
// same 16-row items: the "before" of RATIO sparse_bitmask50_densified_vs_rowkernel.
void BitmaskRowKernel(const SparseLinear& layer, const float* x, int64_t n, float* y, ThreadPool& pool) {
  const kernels::SparseBitmaskWeights w = layer.BitmaskView();
  const int64_t items = (w.rows + kernels::kSparseRowsPerItem - 1) / kernels::kSparseRowsPerItem;
  pool.ParallelFor(items, 1, [&](int64_t b, int64_t e) {
    for (int64_t i0 = 0; i0 < n; i0 += kernels::kSparseGemvMaxRows) {
      const int64_t ni = std::min(kernels::kSparseGemvMaxRows, n - i0);
      kernels::internal::SparseBitmaskRowsAvx512(w, x + i0 * w.cols, ni, nullptr, y + i0 * w.rows,
                                                 b * kernels::kSparseRowsPerItem,
                                                 std::min(w.rows, e * kernels::kSparseRowsPerItem));
    }
  });
}

int Copies(int64_t bytes) {
  return static_cast<int>(std::max<int64_t>(2, ((int64_t{256} << 20) + bytes - 1) / bytes));
}

int Main() {
  ThreadPool& pool = ThreadPool::Default();
  const int reps = EnvInt("SQUEEZE_BENCH_REPS", 5);
  std::printf("bench_sparse: %d threads, kernels %s\n", pool.size(),
              kernels::KernelIsaName(kernels::ActiveIsa()));
  std::printf("%-12s %2s %-22s %10s %10s %10s\n", "shape", "n", "kind", "ms/call", "weight GB/s", "cpu ms");
  std::vector<std::pair<std::string, double>> ratios;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
  for (const auto& [out, in] : shapes) {
    const std::string shape = std::to_string(out) + "x" + std::to_string(in);
    const MatrixRM w = RandomMatrix(out, in, 1);
    const int64_t dense_bytes = out * in * 4;
    const int copies = Copies(dense_bytes);
    std::vector<MatrixRM> dense(copies, w);
    std::vector<std::unique_ptr<SparseLinear>> mask, nm, mask70, mask90;
    for (int c = 0; c < copies; ++c) {
      mask.push_back(*SparseLinear::FromDense(SparsePerRow(w, 50, 10 + c), {}, SparseFormat::kBitmask));
      mask70.push_back(*SparseLinear::FromDense(SparsePerRow(w, 70, 50 + c), {}, SparseFormat::kBitmask));
      mask90.push_back(*SparseLinear::FromDense(SparsePerRow(w, 90, 60 + c), {}, SparseFormat::kBitmask));
      nm.push_back(*SparseLinear::FromDense(TwoOfFour(w, 20 + c), {}, SparseFormat::kNM, 2, 4));
    }
    const int64_t rank = std::min(out, in) / 4;
    std::vector<std::unique_ptr<FactorizedLinear>> lr;
    for (int c = 0; c < copies; ++c) {
      lr.push_back(*FactorizedLinear::Create(RandomMatrix(out, rank, 30 + c), RandomMatrix(rank, in, 40 + c)));
    }
    for (int64_t n : Batches()) {
      const MatrixRM x = RandomMatrix(n, in, 5);
      MatrixRM y(n, out), t(n, rank);
      auto report = [&](const char* kind, double s, int64_t bytes) {
        std::printf("%-12s %2lld %-22s %10.3f %10.1f %10.3f\n", shape.c_str(), static_cast<long long>(n), kind,
                    s * 1e3, bytes / s / 1e9, g_last_cpu * 1e3);
      };
      const double fast = MedianSeconds(copies, reps, [&](int c) {
        kernels::GemmF32NT(x.data(), n, in, dense[c].data(), out, y.data(), pool);
      });
      report("dense GemmF32NT", fast, dense_bytes);
      const double fast_cpu = g_last_cpu;
      const double eigen = MedianSeconds(copies, reps, [&](int c) {
        kernels::GemmNT(x.data(), n, in, dense[c].data(), out, y.data(), pool);
      });
      report("dense Eigen", eigen, dense_bytes);
      const double base = std::min(fast, eigen);
      const double s_mask = MedianSeconds(copies, reps, [&](int c) { mask[c]->Forward(x.data(), n, y.data(), pool); });
      report("bitmask 50%", s_mask, mask[0]->StorageBytes());
      const double mask_cpu = g_last_cpu;
      const bool avx512 = kernels::ActiveIsa() == kernels::KernelIsa::kAvx512;
      const double s_rowk = avx512 ? MedianSeconds(copies, reps, [&](int c) {
        BitmaskRowKernel(*mask[c], x.data(), n, y.data(), pool);
      }) : 0.0;
      const double rowk_cpu = g_last_cpu;
      if (avx512) report("bitmask 50% rowkernel", s_rowk, mask[0]->StorageBytes());
      const double s_mask70 =
          MedianSeconds(copies, reps, [&](int c) { mask70[c]->Forward(x.data(), n, y.data(), pool); });
      report("bitmask 70%", s_mask70, mask70[0]->StorageBytes());
      const double s_mask90 =
          MedianSeconds(copies, reps, [&](int c) { mask90[c]->Forward(x.data(), n, y.data(), pool); });
      report("bitmask 90%", s_mask90, mask90[0]->StorageBytes());
      const double s_nm = MedianSeconds(copies, reps, [&](int c) { nm[c]->Forward(x.data(), n, y.data(), pool); });
      report("2:4", s_nm, nm[0]->StorageBytes());
      // The scalar forwards only at n = 1 and 8 (slow; their ratios as before).
      const bool scalar = n == 1 || n == 8;
      const double p_mask = scalar ? MedianSeconds(copies, reps, [&](int c) {
        mask[c]->ForwardPlain(x.data(), n, y.data(), pool);
      }) : 0.0;
      if (scalar) report("bitmask 50% scalar", p_mask, mask[0]->StorageBytes());
      const double p_nm =
          scalar ? MedianSeconds(copies, reps, [&](int c) { nm[c]->ForwardPlain(x.data(), n, y.data(), pool); }) : 0.0;
      if (scalar) report("2:4 scalar", p_nm, nm[0]->StorageBytes());
      const double s_lr = MedianSeconds(copies, reps, [&](int c) { lr[c]->Forward(x.data(), n, y.data(), pool); });
      report("lowrank r=min/4", s_lr, lr[0]->StorageBytes());
      const double s_lr_eigen = MedianSeconds(copies, reps, [&](int c) {
        kernels::GemmNT(x.data(), n, in, lr[c]->v().data(), rank, t.data(), pool);
        kernels::GemmNT(t.data(), n, rank, lr[c]->u().data(), out, y.data(), pool);
      });
      report("lowrank 2x Eigen", s_lr_eigen, lr[0]->StorageBytes());
      const std::string suffix = "_" + shape + "_n" + std::to_string(n);
      ratios.emplace_back("sparse_bitmask50_vs_dense" + suffix, base / s_mask);
      ratios.emplace_back("sparse_bitmask70_vs_dense" + suffix, base / s_mask70);
      ratios.emplace_back("sparse_bitmask90_vs_dense" + suffix, base / s_mask90);
      ratios.emplace_back("sparse_2of4_vs_dense" + suffix, base / s_nm);
      if (scalar) ratios.emplace_back("sparse_bitmask50_kernel_vs_scalar" + suffix, p_mask / s_mask);
      if (avx512 && n > 1) {
        ratios.emplace_back("sparse_bitmask50_densified_vs_rowkernel" + suffix, s_rowk / s_mask);
        ratios.emplace_back("sparse_bitmask50_densified_vs_rowkernel_cpu" + suffix, rowk_cpu / mask_cpu);
      }
      ratios.emplace_back("sparse_bitmask50_vs_dense_gemmf32_cpu" + suffix, fast_cpu / mask_cpu);
      if (scalar) ratios.emplace_back("sparse_2of4_kernel_vs_scalar" + suffix, p_nm / s_nm);
      ratios.emplace_back("lowrank_vs_dense" + suffix, base / s_lr);
      ratios.emplace_back("lowrank_forward_vs_2x_eigen" + suffix, s_lr_eigen / s_lr);
    }
  }
  for (const auto& [name, r] : ratios) std::printf("RATIO %s %.3f\n", name.c_str(), r);
  return 0;
}

}  // namespace
}  // namespace squeeze

int main() { return squeeze::Main(); }
