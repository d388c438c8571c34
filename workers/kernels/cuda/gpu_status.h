// Status, device queries and a device buffer for the CUDA kernels of
// workers/kernels/cuda. Every header of this directory is plain C++ (no CUDA
// types), so code not compiled by nvcc (the engine, tests) can include it;
// streams are passed as `void*` (a cudaStream_t, nullptr = default stream).
#pragma once

#include <cstddef>
#include <string>
#include <utility>

namespace squeeze::gpu {

// Outcome of a call: an empty `error` means success; otherwise `error` names
// the argument or the CUDA / cuBLAS / cuSOLVER call that failed and why.
struct GpuStatus {
  std::string error;
  bool ok() const { return error.empty(); }
  static GpuStatus Ok() { return {}; }
  static GpuStatus Error(std::string e) { return GpuStatus{std::move(e)}; }
};

// Number of usable CUDA devices; 0 when there is no driver or no device.
int GpuDeviceCount();
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)" for device `dev`, or an error text.
std::string GpuDeviceDescription(int dev = 0);
// Waits for all work on the current device; reports any asynchronous error.
GpuStatus GpuSynchronize();
// Free and total memory of the current device in bytes (cudaMemGetInfo).
GpuStatus GpuMemoryInfo(size_t* free_bytes, size_t* total_bytes);

// Device memory owned by one object (cudaMalloc / cudaFree). Move-only.
class GpuBuffer {
 public:
  GpuBuffer() = default;
  ~GpuBuffer();
  GpuBuffer(GpuBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  GpuBuffer& operator=(GpuBuffer&& o) noexcept;
  GpuBuffer(const GpuBuffer&) = delete;
  GpuBuffer& operator=(const GpuBuffer&) = delete;

  // Frees any previous allocation, then allocates `bytes` (0 allowed: null).
  GpuStatus Allocate(size_t bytes);
  // Allocates `bytes` and copies them from host memory.
  GpuStatus Upload(const void* src, size_t bytes);
  // Copies the first `bytes` (<= size) to host memory (synchronous).
  GpuStatus Download(void* dst, size_t bytes) const;
  // Sets every byte to `value` (e.g. poison before a kernel writes it).
  GpuStatus Fill(int value);

  void* data() const { return ptr_; }
  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace squeeze::gpu
