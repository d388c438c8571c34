// The plugin's entry point (cuda_plugin.h): the table of GPU functions.
#include "workers/kernels/cuda/cuda_plugin.h"

extern "C" __attribute__((visibility("default"))) const squeeze::gpu::CudaPluginV1* squeeze_cuda_plugin_v1() {
  static const squeeze::gpu::CudaPluginV1 table = [] {
    squeeze::gpu::CudaPluginV1 t;
    t.abi_version = squeeze::gpu::kCudaPluginAbiVersion;
    t.memory_info = &squeeze::gpu::GpuMemoryInfo;
    t.gptq_quantize = &squeeze::gpu::GptqQuantizeGpu;
    return t;
  }();
  return &table;
}
