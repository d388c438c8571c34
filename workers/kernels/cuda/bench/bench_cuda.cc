// bench_cuda: one run on one GPU measures
//  1. device-to-device copy bandwidth (cudaMemcpy, bytes read + written);
//  2. the int4 (group 128) weight-only GEMV / small GEMM on Llama-7B shapes
//     for batch 1, 2, 4, 8, 16: achieved GB/s of weights + scales read, as a
//     fraction of (1), and time against cuBLAS fp16 GEMM (fp32 accumulate)
//     on the same shapes (speedup). Both are timed as 40 calls captured in a
//     CUDA graph (as a decode loop runs them; "ours_plain" is the same with
//     plain launches, launch gaps included);
//  3. the same for int8 weights (per-channel scales);
//  4. GPTQ on Llama-7B layer shapes: Hessian accumulation, factor and sweep
//     time on the GPU, and the plain CPU reference sweep on a slice of rows
//     (rows are independent in GPTQ: the full-layer CPU time is the slice
//     time scaled by rows; codes of the slice are compared with the GPU's).
// Weights are rotated over copies totalling > 256 MB so no call is served from
// L2. Ends with `RATIO <name> <value>` lines (ours / baseline, higher better).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "workers/kernels/cuda/fp16.h"
#include "workers/kernels/cuda/gptq_gpu.h"
#include "workers/kernels/cuda/gptq_prepare.h"
#include "workers/kernels/cuda/gpu_status.h"
#include "workers/kernels/cuda/packed_int_gemv.h"

namespace sg = squeeze::gpu;

namespace {

void Die(const std::string& what) {
  std::fprintf(stderr, "bench_cuda: %s\n", what.c_str());
  std::exit(1);
}
void Check(const sg::GpuStatus& s) {
  if (!s.ok()) Die(s.error);
}
void CheckCuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) Die(std::string(what) + ": " + cudaGetErrorString(e));
}
void CheckBlas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) Die(std::string(what) + ": cuBLAS status " + std::to_string(static_cast<int>(s)));
}

struct Ratio {
  std::string name;
  double value;
};
std::vector<Ratio> g_ratios;

// Median over `trials` of the mean time per call (ms) of `calls` calls of f(i).
template <class F>
double TimeMs(F f, int calls, int trials = 7) {
  cudaEvent_t a, b;
  CheckCuda(cudaEventCreate(&a), "event");
  CheckCuda(cudaEventCreate(&b), "event");
  for (int i = 0; i < 3; ++i) f(i);  // warm-up
  CheckCuda(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> ms;
  for (int t = 0; t < trials; ++t) {
    CheckCuda(cudaEventRecord(a), "record");
    for (int i = 0; i < calls; ++i) f(i);
    CheckCuda(cudaEventRecord(b), "record");
    CheckCuda(cudaEventSynchronize(b), "sync");
    float e = 0;
    CheckCuda(cudaEventElapsedTime(&e, a, b), "elapsed");
    ms.push_back(static_cast<double>(e) / calls);
  }
  CheckCuda(cudaGetLastError(), "kernel");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Median over `trials` of the mean time per call (ms) of `calls` calls of
// f(i, stream) captured once into a CUDA graph and replayed (no launch gaps:
// how a decode loop would run them). Falls back to TimeMs when capture fails.
template <class F>
double TimeGraphMs(F f, int calls, cudaStream_t stream, int trials = 7) {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  bool ok = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
  if (ok) {
    for (int i = 0; i < calls; ++i) f(i, stream);
    ok = cudaStreamEndCapture(stream, &graph) == cudaSuccess && graph != nullptr;
  }
  if (ok) ok = cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess;
  if (!ok) {
    (void)cudaGetLastError();
    std::printf("  (graph capture failed; timing plain launches)\n");
    return TimeMs([&](int i) { f(i, stream); }, calls, trials);
  }
  cudaEvent_t a, b;
  CheckCuda(cudaEventCreate(&a), "event");
  CheckCuda(cudaEventCreate(&b), "event");
  CheckCuda(cudaGraphLaunch(exec, stream), "graph warm-up");
  CheckCuda(cudaStreamSynchronize(stream), "graph warm-up");
  std::vector<double> ms;
  for (int t = 0; t < trials; ++t) {
    CheckCuda(cudaEventRecord(a, stream), "record");
    CheckCuda(cudaGraphLaunch(exec, stream), "graph launch");
    CheckCuda(cudaEventRecord(b, stream), "record");
    CheckCuda(cudaEventSynchronize(b), "sync");
    float e = 0;
    CheckCuda(cudaEventElapsedTime(&e, a, b), "elapsed");
    ms.push_back(static_cast<double>(e) / calls);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double CopyBandwidthGBs() {
  const size_t bytes = size_t{1} << 30;
  sg::GpuBuffer src, dst;
  Check(src.Allocate(bytes));
  Check(dst.Allocate(bytes));
  Check(src.Fill(0x5a));
  const double ms = TimeMs(
      [&](int) { CheckCuda(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice), "copy"); }, 10);
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
}

struct Shape {
  int64_t rows, cols;
  const char* name;
};

// One int-weight + fp16 comparison on one shape for every batch.
void BenchShape(const Shape& s, int bits, double copy_gbs, cublasHandle_t blas) {
  std::mt19937 rng(42);
  const int per_word = 32 / bits;
  const int64_t wpr = (s.cols + per_word - 1) / per_word;
  const int64_t group = bits == 4 ? 128 : s.cols;  // int4: g128; int8: per channel
  const int64_t gpr = (s.cols + group - 1) / group;
  std::vector<uint32_t> packed(static_cast<size_t>(s.rows * wpr));
  for (uint32_t& w : packed) w = rng();
  std::vector<float> scales(static_cast<size_t>(s.rows * gpr));
  std::uniform_real_distribution<float> sc(0.001f, 0.01f);
  for (float& v : scales) v = sc(rng);
  const int64_t wbytes_host = static_cast<int64_t>(packed.size() * 4 + scales.size() * 4);
  const int copies = static_cast<int>(std::max<int64_t>(2, (int64_t{256} << 20) / wbytes_host + 1));
  std::vector<sg::GpuBuffer> dp(copies), ds(copies);
  for (int c = 0; c < copies; ++c) {
    Check(dp[c].Upload(packed.data(), packed.size() * 4));
    Check(ds[c].Upload(scales.data(), scales.size() * 4));
  }
  // fp16 dense weights for cuBLAS, also rotated.
  std::vector<uint16_t> wh(static_cast<size_t>(s.rows * s.cols));
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (uint16_t& v : wh) v = sg::FloatToHalf(nd(rng));
  const int64_t fbytes = static_cast<int64_t>(wh.size() * 2);
  const int fcopies = static_cast<int>(std::max<int64_t>(2, (int64_t{256} << 20) / fbytes + 1));
  std::vector<sg::GpuBuffer> dwh(fcopies);
  for (int c = 0; c < fcopies; ++c) Check(dwh[c].Upload(wh.data(), wh.size() * 2));
  std::vector<uint16_t> xh(static_cast<size_t>(16 * s.cols));
  for (uint16_t& v : xh) v = sg::FloatToHalf(nd(rng) * 50.0f);
  sg::GpuBuffer dx, dy, dy2;
  Check(dx.Upload(xh.data(), xh.size() * 2));
  Check(dy.Allocate(static_cast<size_t>(16 * s.rows) * 2));
  Check(dy2.Allocate(static_cast<size_t>(16 * s.rows) * 2));

  auto view = [&](int c) {
    sg::PackedIntGpuWeights w;
    w.num_bits = bits;
    w.rows = s.rows;
    w.cols = s.cols;
    w.words_per_row = wpr;
    w.packed = dp[c].as<uint32_t>();
    w.groups_per_row = gpr;
    w.group_size = group;
    w.scales = ds[c].as<float>();
    return w;
  };
  const double wbytes = static_cast<double>(sg::PackedIntWeightBytes(view(0)));
  std::printf("\n%s int%d%s: %lld x %lld, weights+scales %.1f MB (%d copies), fp16 %.1f MB (%d copies)\n", s.name,
              bits, bits == 4 ? " g128" : " per-channel", static_cast<long long>(s.rows),
              static_cast<long long>(s.cols), wbytes / 1e6, copies, fbytes / 1e6, fcopies);
  std::printf("%6s %10s %10s %8s %10s %10s %8s %10s   %s\n", "batch", "ours_us", "GB/s", "of_copy", "cublas_us",
              "cublasGB/s", "speedup", "ours_plain", "plain launches: mma-pipe8 / mma-pipe16 / cuda-core rw=1/2 (us)");
  const float alpha = 1.0f, beta = 0.0f;
  cudaStream_t stream;
  CheckCuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  for (int n : {1, 2, 4, 8, 16}) {
    const double ours = TimeGraphMs(
        [&](int i, cudaStream_t st) {
          Check(sg::PackedIntGemv(view(i % copies), dx.as<uint16_t>(), n, nullptr, dy.as<uint16_t>(), st));
        },
        40, stream);
    const double ours_plain = TimeMs([&](int i) { Check(sg::PackedIntGemv(view(i % copies), dx.as<uint16_t>(), n,
                                                                          nullptr, dy.as<uint16_t>())); },
                                     40);
    double var[4] = {0, 0, 0, 0};
    const int variants[4] = {sg::kGemvTensorCoresPipe8, sg::kGemvTensorCoresPipe16, 1, 2};
    for (int v = 0; v < 4; ++v) {
      var[v] = TimeMs([&](int i) { Check(sg::PackedIntGemvVariant(view(i % copies), dx.as<uint16_t>(), n, nullptr,
                                                                  dy.as<uint16_t>(), variants[v])); },
                      40, 5);
    }
    // Y^T [rows, n] (column-major) = W [rows, cols] (row-major = column-major
    // W^T) ^T * X^T [cols, n] (row-major X = column-major X^T).
    CheckBlas(cublasSetStream(blas, stream), "cublasSetStream");
    const double cub = TimeGraphMs(
        [&](int i, cudaStream_t) {
          CheckBlas(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(s.rows), n, static_cast<int>(s.cols),
                                 &alpha, dwh[i % fcopies].data(), CUDA_R_16F, static_cast<int>(s.cols), dx.data(),
                                 CUDA_R_16F, static_cast<int>(s.cols), &beta, dy2.data(), CUDA_R_16F,
                                 static_cast<int>(s.rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                    "cublasGemmEx");
        },
        40, stream);
    const double gbs = wbytes / (ours * 1e-3) / 1e9;
    const double cgbs = static_cast<double>(fbytes) / (cub * 1e-3) / 1e9;
    std::printf("%6d %10.2f %10.1f %8.3f %10.2f %10.1f %8.2f %10.2f   %.2f / %.2f / %.2f / %.2f\n", n, ours * 1e3,
                gbs, gbs / copy_gbs, cub * 1e3, cgbs, cub / ours, ours_plain * 1e3, var[0] * 1e3, var[1] * 1e3,
                var[2] * 1e3, var[3] * 1e3);
    const std::string tag = std::string(s.name) + "_int" + std::to_string(bits) + "_b" + std::to_string(n);
    g_ratios.push_back({"cuda_gemv_" + tag + "_vs_cublas_fp16", cub / ours});
    if (n == 1) g_ratios.push_back({"cuda_gemv_" + tag + "_bw_vs_copy", gbs / copy_gbs});
  }
  CheckBlas(cublasSetStream(blas, nullptr), "cublasSetStream");
  cudaStreamDestroy(stream);
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void BenchGptq(int64_t out, int64_t in, int64_t cpu_rows) {
  std::mt19937 rng(7);
  const int64_t tokens = 2048;
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(tokens * in));
  for (int64_t t = 0; t < tokens; ++t) {
    const float common = d(rng);
    for (int64_t c = 0; c < in; ++c) x[t * in + c] = d(rng) + 0.3f * common;
  }
  sg::GpuBuffer dx, dh;
  Check(dx.Upload(x.data(), x.size() * 4));
  Check(dh.Allocate(static_cast<size_t>(in * in) * 8));
  Check(dh.Fill(0));
  Check(sg::HessianAccumulateGpu(dx.as<float>(), tokens, in, dh.as<double>()));  // warm-up (handles)
  Check(dh.Fill(0));
  Check(sg::GpuSynchronize());
  double t0 = Now();
  Check(sg::HessianAccumulateGpu(dx.as<float>(), tokens, in, dh.as<double>()));
  Check(sg::GpuSynchronize());
  const double hess_s = Now() - t0;
  std::vector<double> h(static_cast<size_t>(in * in));
  Check(dh.Download(h.data(), h.size() * 8));
  for (double& v : h) v *= 2.0 / tokens;
  std::vector<float> w(static_cast<size_t>(out * in));
  std::normal_distribution<float> wd(0.0f, 0.02f);
  for (float& v : w) v = wd(rng);
  sg::GptqGpuOptions o;  // W4A16: 4 bit, symmetric, group 128, block 128
  sg::GptqGpuResult gres;
  t0 = Now();
  Check(sg::GptqQuantizeGpu(w.data(), out, in, h.data(), o, &gres));
  const double total_s = Now() - t0;

  // CPU reference sweep on the first cpu_rows rows, with the same U.
  sg::internal::GptqPrepared p;
  Check(sg::internal::PrepareGptq(w.data(), cpu_rows, in, h.data(), o, &p));
  sg::GpuBuffer du;
  Check(du.Upload(p.hp.data(), p.hp.size() * 8));
  Check(sg::InverseCholeskyUpperGpu(du.as<double>(), in));
  std::vector<double> u(p.hp.size());
  Check(du.Download(u.data(), u.size() * 8));
  std::vector<double> wk = p.w;
  std::vector<int32_t> codes;
  std::vector<sg::GroupParams> params;
  std::vector<double> row_loss;
  t0 = Now();
  sg::internal::GptqSweepReference(p, wk, u, codes, params, row_loss);
  const double cpu_slice_s = Now() - t0;
  const double cpu_full_s = cpu_slice_s * static_cast<double>(out) / static_cast<double>(cpu_rows);
  int64_t diff = 0;
  for (int64_t r = 0; r < cpu_rows; ++r)
    for (int64_t j = 0; j < in; ++j) diff += codes[r * in + j] != gres.codes[r * in + p.perm[j]];
  std::printf("\nGPTQ W4A16 g128 on %lld x %lld (Hessian from %lld tokens): hessian %.1f ms, factor %.1f ms, "
              "sweep %.1f ms, whole call %.1f ms (host prep included)\n",
              static_cast<long long>(out), static_cast<long long>(in), static_cast<long long>(tokens), hess_s * 1e3,
              gres.factor_seconds * 1e3, gres.sweep_seconds * 1e3, total_s * 1e3);
  std::printf("  CPU reference sweep (1 thread) on %lld rows: %.1f ms -> %.1f ms for %lld rows; codes differing "
              "from GPU on those rows: %lld of %lld\n",
              static_cast<long long>(cpu_rows), cpu_slice_s * 1e3, cpu_full_s * 1e3, static_cast<long long>(out),
              static_cast<long long>(diff), static_cast<long long>(cpu_rows * in));
  g_ratios.push_back({"cuda_gptq_sweep_" + std::to_string(out) + "x" + std::to_string(in) + "_vs_cpu_ref",
                      cpu_full_s / gres.sweep_seconds});
}

// 4096 x 11008 int4 g128, batch 1: each tensor-core variant once.
void ProfileLaunches() {
  const int64_t rows = 4096, cols = 11008, wpr = cols / 8, gpr = cols / 128;
  std::vector<uint32_t> packed(static_cast<size_t>(rows * wpr), 0x9a3c5e71u);
  std::vector<float> scales(static_cast<size_t>(rows * gpr), 0.01f);
  std::vector<uint16_t> xh(static_cast<size_t>(cols), sg::FloatToHalf(0.5f));
  sg::GpuBuffer dp, ds, dx, dy;
  Check(dp.Upload(packed.data(), packed.size() * 4));
  Check(ds.Upload(scales.data(), scales.size() * 4));
  Check(dx.Upload(xh.data(), xh.size() * 2));
  Check(dy.Allocate(static_cast<size_t>(rows) * 2));
  sg::PackedIntGpuWeights w;
  w.num_bits = 4;
  w.rows = rows;
  w.cols = cols;
  w.words_per_row = wpr;
  w.packed = dp.as<uint32_t>();
  w.groups_per_row = gpr;
  w.group_size = 128;
  w.scales = ds.as<float>();
  for (int v : {sg::kGemvTensorCores, sg::kGemvTensorCoresPipe8, sg::kGemvTensorCoresPipe16}) {
    Check(sg::PackedIntGemvVariant(w, dx.as<uint16_t>(), 1, nullptr, dy.as<uint16_t>(), v));
  }
  Check(sg::GpuSynchronize());
}

}  // namespace

int main(int argc, char** argv) {
  if (sg::GpuDeviceCount() == 0) {
    std::printf("bench_cuda: no CUDA device; nothing measured\n");
    return 0;
  }
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  if (argc > 1 && std::string(argv[1]) == "--profile") {  // a few launches for ncu
    ProfileLaunches();
    return 0;
  }
  std::printf("device: %s\n", sg::GpuDeviceDescription(0).c_str());
  const double copy = CopyBandwidthGBs();
  std::printf("device-to-device copy: %.1f GB/s (bytes read + written)\n", copy);
  cublasHandle_t blas;
  CheckBlas(cublasCreate(&blas), "cublasCreate");
  const Shape shapes[] = {{4096, 4096, "4096x4096"}, {11008, 4096, "11008x4096"}, {4096, 11008, "4096x11008"}};
  for (const Shape& s : shapes) BenchShape(s, 4, copy, blas);
  if (!quick) {
    for (const Shape& s : shapes) BenchShape(s, 8, copy, blas);
  }
  cublasDestroy(blas);
  BenchGptq(4096, 4096, 128);
  if (!quick) {
    BenchGptq(11008, 4096, 128);
    BenchGptq(4096, 11008, 64);
  }
  std::printf("\n");
  for (const Ratio& r : g_ratios) std::printf("RATIO %s %.4f\n", r.name.c_str(), r.value);
  return 0;
}
