// Internal (nvcc / runtime-API translation units only): turns CUDA, cuBLAS and
// cuSOLVER return codes into GpuStatus with the failing call's text.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "workers/kernels/cuda/gpu_status.h"

namespace squeeze::gpu::internal {

inline GpuStatus CudaError(cudaError_t e, const char* what) {
  return GpuStatus::Error(std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

}  // namespace squeeze::gpu::internal

#define SQ_CUDA_RETURN_IF_ERROR(expr)                                              \
  do {                                                                             \
    const cudaError_t sq_cuda_err_ = (expr);                                       \
    if (sq_cuda_err_ != cudaSuccess) return ::squeeze::gpu::internal::CudaError(sq_cuda_err_, #expr); \
  } while (0)

// After a kernel launch: launch-configuration errors surface here.
#define SQ_CUDA_RETURN_IF_LAUNCH_FAILED(what)                                      \
  do {                                                                             \
    const cudaError_t sq_cuda_err_ = cudaGetLastError();                           \
    if (sq_cuda_err_ != cudaSuccess) return ::squeeze::gpu::internal::CudaError(sq_cuda_err_, what); \
  } while (0)

#define SQ_RETURN_IF_GPU_ERROR(expr)              \
  do {                                            \
    ::squeeze::gpu::GpuStatus sq_st_ = (expr);    \
    if (!sq_st_.ok()) return sq_st_;              \
  } while (0)
