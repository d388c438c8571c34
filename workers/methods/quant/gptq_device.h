// GPTQ on the run's device. With a CUDA device selected (engine/device/
// device.h) the whole method runs through workers/kernels/cuda/gptq_gpu.h
// (cuSOLVER factor of H^-1, blocked sweep kernel + cuBLAS lazy updates, in
// double precision with the fp32 grid); otherwise, or when the layer is not
// supported on the GPU, QuantizeGptq (gptq.h, the CPU path, unchanged) runs
// and GptqDeviceInfo::fallback says why.
//
// Same method, same result: the GPU sweep follows gptq.h step for step
// (dead columns, act-order, dampening, groups computed as they start); its
// codes / scales / zero points / g_idx equal the CPU path's except for values
// within rounding of a grid boundary (none seen on stories260K or random
// layers), the loss to ~1e-9 relative. A run's artifact is therefore
// byte-identical across runs on the same device kind; between a cpu and a
// cuda run only such rounding-boundary codes and the last digits of
// gptq_loss / damp in report.json may differ.
//
// Supported on the GPU: every option of GptqOptions (bits 2..8, tensor /
// channel / group, act-order none / static / group, minmax / mse); with
// groups computed as they start, the GPU rounds block_size up to a multiple
// of the group size (changes rounding only). Not run on the GPU (CPU instead,
// with the reason): a build without CUDA or a CUDA plugin that cannot be
// loaded (engine/device/device.h LoadCudaPlugin: the GPU code and cuBLAS /
// cuSOLVER live in libsqueeze_cuda_plugin.so, loaded on first use), a layer
// whose working set (GptqGpuWorkingBytes) exceeds the device's free memory,
// and any CUDA / cuBLAS / cuSOLVER error (the CPU path then runs and reports
// its own errors, e.g. a damped Hessian that is not positive definite).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/device/device.h"
#include "workers/kernels/cuda/gptq_gpu.h"
#include "workers/methods/quant/gptq.h"

namespace squeeze {

// Where one QuantizeGptqOnDevice call ran.
struct GptqDeviceInfo {
  DeviceKind ran_on = DeviceKind::kCpu;
  // Non-empty when `device` was cuda but the CPU path ran: why.
  std::string fallback;
  // Host wall seconds of the GPU phases (factor + sweep, each bracketed by
  // cudaDeviceSynchronize; host-side preparation excluded). Also added to
  // ProcessGpuSeconds(). 0 on the CPU.
  double gpu_seconds = 0;
  // Wall seconds of the whole GptqQuantizeGpu call (preparation, transfers
  // included). 0 on the CPU.
  double gpu_call_seconds = 0;
};

// GPTQ of w with `hessian` (as QuantizeGptq) on `device`. `info` may be null.
absl::StatusOr<GptqResult> QuantizeGptqOnDevice(const MatrixRM& w, const Eigen::MatrixXd& hessian,
                                                const GptqOptions& options, const Device& device,
                                                std::vector<float> bias, ThreadPool& pool,
                                                GptqDeviceInfo* info = nullptr);

// The kernel's options for `o`, field for field (gptq_gpu.h mirrors
// GptqOptions / WeightQuantArgs).
gpu::GptqGpuOptions ToGptqGpuOptions(const GptqOptions& o);

// Hessian [in, in] as the kernel takes it: row-major doubles (a copy of the
// symmetric Eigen matrix).
std::vector<double> HessianRowMajor(const Eigen::MatrixXd& hessian);

// A kernel result (GptqQuantizeGpu or its CPU reference GptqQuantizeReference)
// as the engine's GptqResult: the PackedIntLinear built from the codes,
// scales, zero points and g_idx (with `bias`), loss, dead columns, damp.
// Errors name the field whose size does not match [out, in].
absl::StatusOr<GptqResult> GptqResultFromKernel(const gpu::GptqGpuResult& r, const GptqOptions& o, int64_t out,
                                                int64_t in, std::vector<float> bias);

// Upper bound of the device bytes GptqQuantizeGpu allocates for a layer
// [out, in]: the factor (8 in^2), the working W (8 out in), codes (4 out in),
// the block's errors, group parameters, plus 256 MiB for cuBLAS / cuSOLVER
// handles and workspaces.
int64_t GptqGpuWorkingBytes(int64_t out, int64_t in, const GptqOptions& o);

}  // namespace squeeze
