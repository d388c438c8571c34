#include "workers/methods/quant/gptq_device.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

#include "workers/kernels/cuda/cuda_plugin.h"

namespace squeeze {

gpu::GptqGpuOptions ToGptqGpuOptions(const GptqOptions& o) {
  gpu::GptqGpuOptions g;
  g.num_bits = o.quant.num_bits;
  g.symmetric = o.quant.symmetric;
  g.strategy = static_cast<int>(o.quant.strategy);  // kTensor 0, kChannel 1, kGroup 2
  g.group_size = o.quant.group_size;
  g.mse_observer = o.quant.observer == QuantObserver::kMse;
  g.block_size = o.block_size;
  g.dampening_frac = o.dampening_frac;
  g.actorder = static_cast<int>(o.actorder);  // kNone 0, kStatic 1, kGroup 2
  return g;
}

std::vector<double> HessianRowMajor(const Eigen::MatrixXd& hessian) {
  const int64_t n = hessian.rows(), m = hessian.cols();
  std::vector<double> h(static_cast<size_t>(n * m));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) h[static_cast<size_t>(i * m + j)] = hessian(i, j);
  return h;
}

absl::StatusOr<GptqResult> GptqResultFromKernel(const gpu::GptqGpuResult& r, const GptqOptions& o, int64_t out,
                                                int64_t in, std::vector<float> bias) {
  const int64_t gpr = o.quant.GroupsPerRow(in);
  auto bad = [&](const char* field, size_t got, int64_t want) {
    return absl::InternalError(absl::StrCat("GPTQ kernel result: ", field, " has ", got, " values, expected ", want));
  };
  if (static_cast<int64_t>(r.codes.size()) != out * in) return bad("codes", r.codes.size(), out * in);
  if (static_cast<int64_t>(r.scales.size()) != out * gpr) return bad("scales", r.scales.size(), out * gpr);
  if (!o.quant.symmetric && static_cast<int64_t>(r.zeros.size()) != out * gpr) {
    return bad("zeros", r.zeros.size(), out * gpr);
  }
  if (!r.g_idx.empty() && static_cast<int64_t>(r.g_idx.size()) != in) return bad("g_idx", r.g_idx.size(), in);
  std::vector<int32_t> zeros = o.quant.symmetric ? std::vector<int32_t>() : r.zeros;
  auto layer = PackedIntLinear::FromCodes(o.quant, out, in, r.codes, r.scales, std::move(zeros), std::move(bias),
                                          r.g_idx);
  if (!layer.ok()) return layer.status();
  GptqResult g;
  g.layer = std::move(*layer);
  g.loss = r.loss;
  g.dead_columns = r.dead_columns;
  g.damp = r.damp;
  return g;
}

int64_t GptqGpuWorkingBytes(int64_t out, int64_t in, const GptqOptions& o) {
  const int64_t gpr = o.quant.GroupsPerRow(in);
  const int64_t gs = o.quant.EffectiveGroupSize(in);
  const int64_t block = std::max<int64_t>(o.block_size, 1) + gs;  // rounded up to a group multiple at most
  return 8 * in * in + 12 * out * in + 8 * out * block + 8 * out * gpr + 4 * in + 8 * out + (int64_t{256} << 20);
}

absl::StatusOr<GptqResult> QuantizeGptqOnDevice(const MatrixRM& w, const Eigen::MatrixXd& hessian,
                                                const GptqOptions& options, const Device& device,
                                                std::vector<float> bias, ThreadPool& pool, GptqDeviceInfo* info) {
  GptqDeviceInfo local;
  GptqDeviceInfo& di = info != nullptr ? *info : local;
  di = GptqDeviceInfo{};
  if (!device.is_cuda()) return QuantizeGptq(w, hessian, options, std::move(bias), pool);
  const int64_t out = w.rows(), in = w.cols();
  // Shapes and options are checked by the CPU path's own validation first, so
  // bad input gives the same error on every device.
  if (absl::Status s = options.quant.Validate(); !s.ok()) return s;
  if (out <= 0 || in <= 0 || hessian.rows() != in || hessian.cols() != in) {
    return QuantizeGptq(w, hessian, options, std::move(bias), pool);  // its error names the shape
  }
  absl::StatusOr<const gpu::CudaPluginV1*> plugin = LoadCudaPlugin();
  if (!plugin.ok()) {
    di.fallback = std::string(plugin.status().message());
    return QuantizeGptq(w, hessian, options, std::move(bias), pool);
  }
  size_t free_bytes = 0, total_bytes = 0;
  const gpu::GpuStatus mem = (*plugin)->memory_info(&free_bytes, &total_bytes);
  const int64_t need = GptqGpuWorkingBytes(out, in, options);
  if (!mem.ok()) {
    di.fallback = absl::StrCat("cannot read the device's free memory: ", mem.error);
  } else if (need > static_cast<int64_t>(free_bytes)) {
    di.fallback = absl::StrCat("layer [", out, ", ", in, "] needs about ", need >> 20, " MiB of device memory, ",
                               free_bytes >> 20, " MiB free");
  } else {
    const std::vector<double> h = HessianRowMajor(hessian);
    gpu::GptqGpuResult r;
    const auto t0 = std::chrono::steady_clock::now();
    const gpu::GpuStatus st = (*plugin)->gptq_quantize(w.data(), out, in, h.data(), ToGptqGpuOptions(options), &r);
    const double call_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (st.ok()) {
      auto g = GptqResultFromKernel(r, options, out, in, std::move(bias));
      if (!g.ok()) return g.status();
      di.ran_on = DeviceKind::kCuda;
      di.gpu_seconds = r.factor_seconds + r.sweep_seconds;
      di.gpu_call_seconds = call_s;
      AddProcessGpuSeconds(di.gpu_seconds);
      return g;
    }
    di.fallback = absl::StrCat("GPU GPTQ failed: ", st.error);
  }
  return QuantizeGptq(w, hessian, options, std::move(bias), pool);
}

}  // namespace squeeze
