// GPU side of GPTQ (gptq_gpu.h). Compiled with -fmad=false so the fp32 grid
// arithmetic and the double updates round as the host reference does.
//
// Sweep layout: the working W is column-major ([in][out], ld = out): for a
// processing column j the values of all rows are contiguous, so the per-block
// kernel (one thread per row, columns of the block in order) reads and
// writes coalesced, and the lazy update W[:, i2:] -= Err1 * U[i1:i2, i2:] is
// one column-major cuBLAS dgemm. U is the column-major upper factor.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <chrono>
#include <string>
#include <vector>

#include "workers/kernels/cuda/cuda_check.h"
#include "workers/kernels/cuda/gptq_gpu.h"
#include "workers/kernels/cuda/gptq_prepare.h"

namespace squeeze::gpu {
namespace {

GpuStatus CublasError(cublasStatus_t s, const char* what) {
  return GpuStatus::Error(std::string(what) + ": cuBLAS status " + std::to_string(static_cast<int>(s)));
}
GpuStatus CusolverError(cusolverStatus_t s, const char* what) {
  return GpuStatus::Error(std::string(what) + ": cuSOLVER status " + std::to_string(static_cast<int>(s)));
}
#define SQ_CUBLAS(expr)                                         \
  do {                                                          \
    const cublasStatus_t s_ = (expr);                           \
    if (s_ != CUBLAS_STATUS_SUCCESS) return CublasError(s_, #expr); \
  } while (0)
#define SQ_CUSOLVER(expr)                                           \
  do {                                                              \
    const cusolverStatus_t s_ = (expr);                             \
    if (s_ != CUSOLVER_STATUS_SUCCESS) return CusolverError(s_, #expr); \
  } while (0)

struct Handles {
  cublasHandle_t blas = nullptr;
  cusolverDnHandle_t solver = nullptr;
  ~Handles() {
    if (blas != nullptr) cublasDestroy(blas);
    if (solver != nullptr) cusolverDnDestroy(solver);
  }
};

__global__ void FloatToDoubleKernel(const float* __restrict__ x, int64_t n, double* __restrict__ y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[i] = static_cast<double>(x[i]);
  }
}

// Column-major a [n, n]: copies the lower triangle onto the upper one.
__global__ void MirrorLowerKernel(double* a, int64_t n) {
  const int64_t total = n * n;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t % n, j = t / n;  // element (i, j) at i + j * n
    if (i < j) a[t] = a[j + i * n];
  }
}

// Sets *bad when the upper triangle (column-major) holds a non-finite value.
__global__ void UpperFiniteKernel(const double* a, int64_t n, int* bad) {
  const int64_t total = n * n;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t % n, j = t / n;
    if (i <= j && !isfinite(a[t])) atomicExch(bad, 1);
  }
}

struct ColGet {  // values of one row across consecutive columns of a column-major W
  const double* base;
  int64_t stride;
  __device__ float operator()(int64_t i) const { return static_cast<float>(base[i * stride]); }
};

// Columns [i1, i1 + count) of the sweep, one thread per row; see the header
// comment. params: scale / zero arrays [out, gpr]; err [count][out].
__global__ void SweepBlockKernel(double* __restrict__ w, int64_t out, int64_t in, int64_t i1, int64_t count,
                                 const double* __restrict__ u, const int32_t* __restrict__ stored_group,
                                 float* __restrict__ pscale, int32_t* __restrict__ pzero, int64_t gpr, bool dynamic,
                                 int64_t gs, GridArgs grid, int32_t* __restrict__ codes, double* __restrict__ err,
                                 double* __restrict__ row_loss) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r >= out) return;
  double loss = row_loss[r];
  for (int64_t i = 0; i < count; ++i) {
    const int64_t j = i1 + i;
    const int64_t pi = r * gpr + stored_group[j];
    GroupParams gp;
    if (dynamic && j % gs == 0) {
      const int64_t n = (j + gs < in ? j + gs : in) - j;
      gp = GridComputeParams(ColGet{w + j * out + r, out}, n, grid);
      pscale[pi] = gp.scale;
      pzero[pi] = gp.zero;
    } else {
      gp.scale = pscale[pi];
      gp.zero = pzero[pi];
    }
    const double d = u[j + j * in];
    const double v = w[j * out + r];
    const int32_t c = GridQuantCode(static_cast<float>(v), gp, grid);
    codes[j * out + r] = c;
    const double e = v - static_cast<double>(GridDequant(c, gp));
    const double er = e / d;
    err[i * out + r] = er;
    loss += e * e / (d * d) / 2.0;
    const double* uj = u + j;
    for (int64_t k = i + 1; k < count; ++k) {
      double* wk = w + (i1 + k) * out + r;
      *wk -= er * uj[(i1 + k) * in];
    }
  }
  row_loss[r] = loss;
}

int GridFor(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 65535 * 16 ? b : 65535 * 16);
}

GpuStatus InverseCholeskyUpperWith(cusolverDnHandle_t solver, double* a, int64_t in) {
  const int n = static_cast<int>(in);
  GpuBuffer info_buf, work_buf;
  SQ_RETURN_IF_GPU_ERROR(info_buf.Allocate(2 * sizeof(int)));
  SQ_RETURN_IF_GPU_ERROR(info_buf.Fill(0));
  int lwork = 0, lwork2 = 0;
  SQ_CUSOLVER(cusolverDnDpotrf_bufferSize(solver, CUBLAS_FILL_MODE_LOWER, n, a, n, &lwork));
  SQ_CUSOLVER(cusolverDnDpotri_bufferSize(solver, CUBLAS_FILL_MODE_LOWER, n, a, n, &lwork2));
  lwork = lwork > lwork2 ? lwork : lwork2;
  SQ_CUSOLVER(cusolverDnDpotrf_bufferSize(solver, CUBLAS_FILL_MODE_UPPER, n, a, n, &lwork2));
  lwork = lwork > lwork2 ? lwork : lwork2;
  SQ_RETURN_IF_GPU_ERROR(work_buf.Allocate(static_cast<size_t>(lwork) * sizeof(double)));
  int* info = info_buf.as<int>();
  double* work = work_buf.as<double>();
  const char* kHint =
      "GPTQ: the damped Hessian is not positive definite (increase dampening_frac or the number of calibration "
      "samples)";
  auto check_info = [&](const char* step) -> GpuStatus {
    int h = 0;
    SQ_CUDA_RETURN_IF_ERROR(cudaMemcpy(&h, info, sizeof(int), cudaMemcpyDeviceToHost));
    if (h != 0) return GpuStatus::Error(std::string(kHint) + " [" + step + " info " + std::to_string(h) + "]");
    return GpuStatus::Ok();
  };
  SQ_CUSOLVER(cusolverDnDpotrf(solver, CUBLAS_FILL_MODE_LOWER, n, a, n, work, lwork, info));
  SQ_RETURN_IF_GPU_ERROR(check_info("potrf"));
  SQ_CUSOLVER(cusolverDnDpotri(solver, CUBLAS_FILL_MODE_LOWER, n, a, n, work, lwork, info));
  SQ_RETURN_IF_GPU_ERROR(check_info("potri"));
  MirrorLowerKernel<<<GridFor(in * in, 256), 256>>>(a, in);
  SQ_CUDA_RETURN_IF_LAUNCH_FAILED("MirrorLowerKernel");
  SQ_CUSOLVER(cusolverDnDpotrf(solver, CUBLAS_FILL_MODE_UPPER, n, a, n, work, lwork, info));
  SQ_RETURN_IF_GPU_ERROR(check_info("potrf of the inverse"));
  int* bad = info + 1;
  UpperFiniteKernel<<<GridFor(in * in, 256), 256>>>(a, in, bad);
  SQ_CUDA_RETURN_IF_LAUNCH_FAILED("UpperFiniteKernel");
  int hbad = 0;
  SQ_CUDA_RETURN_IF_ERROR(cudaMemcpy(&hbad, bad, sizeof(int), cudaMemcpyDeviceToHost));
  if (hbad != 0) return GpuStatus::Error(std::string(kHint) + " [non-finite factor]");
  return GpuStatus::Ok();
}

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

GpuStatus HessianAccumulateGpu(const float* x, int64_t rows, int64_t in, double* h, void* stream) {
  if (rows < 0 || in <= 0) return GpuStatus::Error("HessianAccumulateGpu: bad shape [" + std::to_string(rows) + ", " + std::to_string(in) + "]");
  if (rows == 0) return GpuStatus::Ok();
  if (x == nullptr || h == nullptr) return GpuStatus::Error("HessianAccumulateGpu: x and h must be device pointers");
  Handles hd;
  SQ_CUBLAS(cublasCreate(&hd.blas));
  auto s = static_cast<cudaStream_t>(stream);
  SQ_CUBLAS(cublasSetStream(hd.blas, s));
  GpuBuffer xd;
  SQ_RETURN_IF_GPU_ERROR(xd.Allocate(static_cast<size_t>(rows * in) * sizeof(double)));
  FloatToDoubleKernel<<<GridFor(rows * in, 256), 256, 0, s>>>(x, rows * in, xd.as<double>());
  SQ_CUDA_RETURN_IF_LAUNCH_FAILED("FloatToDoubleKernel");
  // Row-major X [rows, in] is column-major X^T [in, rows]: C = A A^T = X^T X.
  const double one = 1.0;
  SQ_CUBLAS(cublasDsyrk(hd.blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, static_cast<int>(in), static_cast<int>(rows),
                        &one, xd.as<double>(), static_cast<int>(in), &one, h, static_cast<int>(in)));
  MirrorLowerKernel<<<GridFor(in * in, 256), 256, 0, s>>>(h, in);
  SQ_CUDA_RETURN_IF_LAUNCH_FAILED("MirrorLowerKernel");
  SQ_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(s));  // xd is freed on return
  return GpuStatus::Ok();
}

GpuStatus InverseCholeskyUpperGpu(double* a, int64_t in) {
  if (in <= 0 || a == nullptr) return GpuStatus::Error("InverseCholeskyUpperGpu: bad arguments");
  Handles hd;
  SQ_CUSOLVER(cusolverDnCreate(&hd.solver));
  return InverseCholeskyUpperWith(hd.solver, a, in);
}

GpuStatus GptqQuantizeGpu(const float* w, int64_t out, int64_t in, const double* hessian,
                          const GptqGpuOptions& options, GptqGpuResult* result) {
  internal::GptqPrepared p;
  SQ_RETURN_IF_GPU_ERROR(internal::PrepareGptq(w, out, in, hessian, options, &p));
  Handles hd;
  SQ_CUBLAS(cublasCreate(&hd.blas));
  SQ_CUSOLVER(cusolverDnCreate(&hd.solver));
  const int64_t gpr = p.gpr;

  const auto t0 = std::chrono::steady_clock::now();
  GpuBuffer u;  // hp is symmetric: row-major = column-major
  SQ_RETURN_IF_GPU_ERROR(u.Upload(p.hp.data(), p.hp.size() * sizeof(double)));
  SQ_RETURN_IF_GPU_ERROR(InverseCholeskyUpperWith(hd.solver, u.as<double>(), in));
  SQ_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  const auto t1 = std::chrono::steady_clock::now();

  // Working W column-major [in][out].
  std::vector<double> wc(static_cast<size_t>(out * in));
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t j = 0; j < in; ++j) wc[j * out + r] = p.w[r * in + j];
  }
  std::vector<float> ps(static_cast<size_t>(out * gpr), 1.0f);
  std::vector<int32_t> pz(static_cast<size_t>(out * gpr), 0);
  for (size_t i = 0; i < p.fixed.size(); ++i) {
    ps[i] = p.fixed[i].scale;
    pz[i] = p.fixed[i].zero;
  }
  GpuBuffer dw, dsg, dps, dpz, dcodes, derr, dloss;
  SQ_RETURN_IF_GPU_ERROR(dw.Upload(wc.data(), wc.size() * sizeof(double)));
  SQ_RETURN_IF_GPU_ERROR(dsg.Upload(p.stored_group.data(), p.stored_group.size() * sizeof(int32_t)));
  SQ_RETURN_IF_GPU_ERROR(dps.Upload(ps.data(), ps.size() * sizeof(float)));
  SQ_RETURN_IF_GPU_ERROR(dpz.Upload(pz.data(), pz.size() * sizeof(int32_t)));
  SQ_RETURN_IF_GPU_ERROR(dcodes.Allocate(static_cast<size_t>(out * in) * sizeof(int32_t)));
  SQ_RETURN_IF_GPU_ERROR(derr.Allocate(static_cast<size_t>(out * p.block) * sizeof(double)));
  SQ_RETURN_IF_GPU_ERROR(dloss.Allocate(static_cast<size_t>(out) * sizeof(double)));
  SQ_RETURN_IF_GPU_ERROR(dloss.Fill(0));
  SQ_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  const auto t2 = std::chrono::steady_clock::now();

  double* W = dw.as<double>();
  const double* U = u.as<double>();
  const double minus_one = -1.0, one = 1.0;
  for (int64_t i1 = 0; i1 < in; i1 += p.block) {
    const int64_t i2 = i1 + p.block < in ? i1 + p.block : in, count = i2 - i1;
    SweepBlockKernel<<<GridFor(out, 128), 128>>>(W, out, in, i1, count, U, dsg.as<int32_t>(), dps.as<float>(),
                                                 dpz.as<int32_t>(), gpr, p.dynamic(), p.gs, p.grid,
                                                 dcodes.as<int32_t>(), derr.as<double>(), dloss.as<double>());
    SQ_CUDA_RETURN_IF_LAUNCH_FAILED("SweepBlockKernel");
    if (i2 < in) {
      SQ_CUBLAS(cublasDgemm(hd.blas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(in - i2),
                            static_cast<int>(count), &minus_one, derr.as<double>(), static_cast<int>(out),
                            U + i1 + i2 * in, static_cast<int>(in), &one, W + i2 * out, static_cast<int>(out)));
    }
  }
  SQ_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  const auto t3 = std::chrono::steady_clock::now();

  std::vector<int32_t> cc(static_cast<size_t>(out * in));
  SQ_RETURN_IF_GPU_ERROR(dcodes.Download(cc.data(), cc.size() * sizeof(int32_t)));
  SQ_RETURN_IF_GPU_ERROR(dps.Download(ps.data(), ps.size() * sizeof(float)));
  SQ_RETURN_IF_GPU_ERROR(dpz.Download(pz.data(), pz.size() * sizeof(int32_t)));
  std::vector<double> row_loss(static_cast<size_t>(out));
  SQ_RETURN_IF_GPU_ERROR(dloss.Download(row_loss.data(), row_loss.size() * sizeof(double)));
  std::vector<int32_t> codes(static_cast<size_t>(out * in));
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t j = 0; j < in; ++j) codes[r * in + j] = cc[j * out + r];
  }
  std::vector<GroupParams> params(static_cast<size_t>(out * gpr));
  for (size_t i = 0; i < params.size(); ++i) params[i] = GroupParams{ps[i], pz[i]};
  internal::FinishGptq(p, options, codes, params, row_loss, result);
  result->factor_seconds = Seconds(t0, t1);
  result->sweep_seconds = Seconds(t2, t3);
  return GpuStatus::Ok();
}

}  // namespace squeeze::gpu
