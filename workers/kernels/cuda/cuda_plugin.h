// The CUDA plugin: a shared library (libsqueeze_cuda_plugin.so, built with
// CUDA) that the engine loads with dlopen the first time a run really uses
// the GPU (engine/device/device.h LoadCudaPlugin). cuBLAS / cuSOLVER take
// about 2 s and 250 MB to load even on a machine without a GPU, so they are
// linked into this plugin only, never into the engine's libraries: a CUDA
// build's test binaries and CLI start as fast as a CPU-only build's, and pay
// for the libraries only where GPTQ runs on a device.
//
// Plain C++ (same compiler and libstdc++ on both sides: the plugin is built
// with the engine). The table is versioned: a plugin whose abi_version
// differs is refused.
#pragma once

#include <cstddef>
#include <cstdint>

#include "workers/kernels/cuda/gptq_gpu.h"
#include "workers/kernels/cuda/gpu_status.h"

namespace squeeze::gpu {

inline constexpr int kCudaPluginAbiVersion = 1;
// The exported entry point (extern "C", so dlsym finds it by this name).
inline constexpr char kCudaPluginEntry[] = "squeeze_cuda_plugin_v1";

struct CudaPluginV1 {
  int abi_version = kCudaPluginAbiVersion;
  GpuStatus (*memory_info)(size_t* free_bytes, size_t* total_bytes) = nullptr;  // GpuMemoryInfo
  GpuStatus (*gptq_quantize)(const float* w, int64_t out, int64_t in, const double* hessian,
                             const GptqGpuOptions& options, GptqGpuResult* result) = nullptr;  // GptqQuantizeGpu
};

}  // namespace squeeze::gpu

extern "C" const squeeze::gpu::CudaPluginV1* squeeze_cuda_plugin_v1();
