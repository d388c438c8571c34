#include <cuda_runtime_api.h>

#include <string>

#include "workers/kernels/cuda/cuda_check.h"
#include "workers/kernels/cuda/gpu_status.h"

namespace squeeze::gpu {

int GpuDeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

std::string GpuDeviceDescription(int dev) {
  cudaDeviceProp p{};
  const cudaError_t e = cudaGetDeviceProperties(&p, dev);
  if (e != cudaSuccess) return internal::CudaError(e, "cudaGetDeviceProperties").error;
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs, " + std::to_string(p.totalGlobalMem >> 20) + " MiB, L2 " +
         std::to_string(p.l2CacheSize >> 20) + " MiB)";
}

GpuStatus GpuSynchronize() {
  SQ_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  return GpuStatus::Ok();
}

GpuStatus GpuMemoryInfo(size_t* free_bytes, size_t* total_bytes) {
  size_t f = 0, t = 0;
  SQ_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&f, &t));
  if (free_bytes != nullptr) *free_bytes = f;
  if (total_bytes != nullptr) *total_bytes = t;
  return GpuStatus::Ok();
}

GpuBuffer::~GpuBuffer() {
  if (ptr_ != nullptr) cudaFree(ptr_);
}

GpuBuffer& GpuBuffer::operator=(GpuBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

GpuStatus GpuBuffer::Allocate(size_t bytes) {
  if (ptr_ != nullptr) cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
  if (bytes == 0) return GpuStatus::Ok();
  SQ_CUDA_RETURN_IF_ERROR(cudaMalloc(&ptr_, bytes));
  bytes_ = bytes;
  return GpuStatus::Ok();
}

GpuStatus GpuBuffer::Upload(const void* src, size_t bytes) {
  SQ_RETURN_IF_GPU_ERROR(Allocate(bytes));
  if (bytes > 0) SQ_CUDA_RETURN_IF_ERROR(cudaMemcpy(ptr_, src, bytes, cudaMemcpyHostToDevice));
  return GpuStatus::Ok();
}

GpuStatus GpuBuffer::Download(void* dst, size_t bytes) const {
  if (bytes > bytes_) {
    return GpuStatus::Error("GpuBuffer::Download: " + std::to_string(bytes) + " bytes asked, buffer holds " +
                            std::to_string(bytes_));
  }
  if (bytes > 0) SQ_CUDA_RETURN_IF_ERROR(cudaMemcpy(dst, ptr_, bytes, cudaMemcpyDeviceToHost));
  return GpuStatus::Ok();
}

GpuStatus GpuBuffer::Fill(int value) {
  if (bytes_ > 0) SQ_CUDA_RETURN_IF_ERROR(cudaMemset(ptr_, value, bytes_));
  return GpuStatus::Ok();
}

}  // namespace squeeze::gpu
