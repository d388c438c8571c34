// The calibration math of GPTQ on the GPU: Hessian accumulation H += X^T X
// (cuBLAS dsyrk), dampening and the upper Cholesky factor of H^-1 (cuSOLVER
// potrf / potri / potrf), and the blocked GPTQ column sweep (a kernel for the
// columns inside a block, cuBLAS dgemm for the lazy update of the columns
// after it). The algorithm is the one of workers/methods/quant/gptq.h, step
// for step (dead columns, act-order, dampening, group parameters computed
// when a group starts from its error-updated columns, the authors' loss), in
// double precision with the fp32 quantization grid of quant_grid_hd.h.
//
// Each step has a plain CPU reference here (no Eigen, no threads): the GPU
// result equals it within rounding — Hessian and factor to 1e-12 relative,
// codes identical except for values within rounding of a grid boundary
// (tested: no differing code on random layers), loss to 1e-9 relative. The
// CPU reference itself is tested against squeeze::QuantizeGptqReference in
// the main build (tests/cpu_ref_vs_engine_test.cc).
//
// GPU-only restriction: with groups computed as they start (group strategy
// without static act-order) the block size is rounded up to a multiple of
// the group size, so a group never straddles blocks (the blocking changes
// only rounding, never the method).
#pragma once

#include <cstdint>
#include <vector>

#include "workers/kernels/cuda/gpu_status.h"

namespace squeeze::gpu {

struct GptqGpuOptions {
  int num_bits = 4;         // 2..8
  bool symmetric = true;
  int strategy = 2;         // 0 tensor, 1 channel, 2 group (QuantStrategy)
  int64_t group_size = 128; // group strategy only
  bool mse_observer = false;
  int64_t block_size = 128;
  double dampening_frac = 0.01;
  int actorder = 0;         // 0 none, 1 static, 2 group (ActOrder)
};

struct GptqGpuResult {
  std::vector<int32_t> codes;   // [out, in] in input order, q in [qmin, qmax]
  std::vector<float> scales;    // [out, groups_per_row]
  std::vector<int32_t> zeros;   // [out, groups_per_row]; empty when symmetric
  std::vector<int32_t> g_idx;   // [in] for act-order "group" with groups; else empty
  double loss = 0;              // sum (w - q)^2 / U[j,j]^2 / 2, as gptq.h
  int64_t dead_columns = 0;
  double damp = 0;
  double factor_seconds = 0, sweep_seconds = 0;  // wall time of the two phases
};

// GPTQ of w [out, in] (host, row-major fp32) with hessian [in, in] (host,
// symmetric, double; e.g. 2 X^T X / n). Uses device 0. Errors name the
// argument, or say that the damped Hessian is not positive definite.
GpuStatus GptqQuantizeGpu(const float* w, int64_t out, int64_t in, const double* hessian,
                          const GptqGpuOptions& options, GptqGpuResult* result);
// The plain CPU reference of the same method, column by column.
GpuStatus GptqQuantizeReference(const float* w, int64_t out, int64_t in, const double* hessian,
                                const GptqGpuOptions& options, GptqGpuResult* result);

// h [in, in] (device, symmetric) += X^T X for x [rows, in] (device,
// row-major fp32); products are exact in double, sums in double.
GpuStatus HessianAccumulateGpu(const float* x, int64_t rows, int64_t in, double* h, void* stream = nullptr);
void HessianAccumulateReference(const float* x, int64_t rows, int64_t in, double* h);

// In place on a symmetric positive definite a [in, in] (device): replaces it
// by U, the upper Cholesky factor of a^-1 (a^-1 = U^T U), stored
// column-major (U(j, k) at j + k * in; only the upper triangle is defined).
GpuStatus InverseCholeskyUpperGpu(double* a, int64_t in);
// The same on the host; false when a is not positive definite.
bool InverseCholeskyUpperReference(std::vector<double>& a, int64_t in);

}  // namespace squeeze::gpu
