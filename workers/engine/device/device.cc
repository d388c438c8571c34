#include "workers/engine/device/device.h"

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "workers/kernels/cuda/cuda_plugin.h"

#if SQUEEZE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace squeeze {
namespace {

std::atomic<double> g_gpu_seconds{0.0};

DeviceInventory Probe() {
  DeviceInventory inv;
#if SQUEEZE_HAVE_CUDA
  inv.built_with_cuda = true;
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" / "no driver" error
    n = 0;
  }
  inv.cuda_devices = n;
  if (n > 0) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) {
      inv.cuda_description = absl::StrCat(p.name, " (sm_", p.major, p.minor, ", ", p.multiProcessorCount, " SMs, ",
                                          p.totalGlobalMem >> 20, " MiB)");
    } else {
      (void)cudaGetLastError();
      inv.cuda_description = "CUDA device 0";
    }
  }
#endif
  return inv;
}

#if SQUEEZE_HAVE_CUDA
std::string ExecutableDir() {
  std::vector<char> buf(4096);
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return "";
  std::string p(buf.data(), static_cast<size_t>(n));
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? std::string() : p.substr(0, slash);
}

absl::StatusOr<const gpu::CudaPluginV1*> LoadPluginOnce() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("SQUEEZE_CUDA_PLUGIN"); env != nullptr && *env != '\0') paths.push_back(env);
  if (const std::string dir = ExecutableDir(); !dir.empty()) paths.push_back(dir + "/libsqueeze_cuda_plugin.so");
#ifdef SQUEEZE_CUDA_PLUGIN_PATH
  paths.push_back(SQUEEZE_CUDA_PLUGIN_PATH);
#endif
  std::vector<std::string> tried;
  for (const std::string& path : paths) {
    if (::access(path.c_str(), R_OK) != 0) {
      tried.push_back(path + " (absent)");
      continue;
    }
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = ::dlerror();
      tried.push_back(absl::StrCat(path, " (", e != nullptr ? e : "dlopen failed", ")"));
      continue;
    }
    using Entry = const gpu::CudaPluginV1* (*)();
    auto entry = reinterpret_cast<Entry>(::dlsym(h, gpu::kCudaPluginEntry));
    const gpu::CudaPluginV1* t = entry != nullptr ? entry() : nullptr;
    if (t == nullptr || t->abi_version != gpu::kCudaPluginAbiVersion || t->gptq_quantize == nullptr ||
        t->memory_info == nullptr) {
      tried.push_back(path + " (not a squeeze CUDA plugin of ABI version " +
                      std::to_string(gpu::kCudaPluginAbiVersion) + ")");
      ::dlclose(h);
      continue;
    }
    return t;  // kept loaded for the process
  }
  return absl::FailedPreconditionError(
      absl::StrCat("cannot load the CUDA plugin libsqueeze_cuda_plugin.so (set $SQUEEZE_CUDA_PLUGIN); tried: ",
                   absl::StrJoin(tried, "; ")));
}
#endif

}  // namespace

absl::string_view DeviceRequestName(DeviceRequest r) {
  switch (r) {
    case DeviceRequest::kAuto: return "auto";
    case DeviceRequest::kCpu: return "cpu";
    case DeviceRequest::kCuda: return "cuda";
  }
  return "?";
}

absl::string_view DeviceKindName(DeviceKind k) { return k == DeviceKind::kCuda ? "cuda" : "cpu"; }

absl::StatusOr<DeviceRequest> ParseDeviceRequest(absl::string_view text, absl::string_view field) {
  if (text == "auto") return DeviceRequest::kAuto;
  if (text == "cpu") return DeviceRequest::kCpu;
  if (text == "cuda") return DeviceRequest::kCuda;
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": unknown device \"", text, "\" (expected auto, cpu or cuda)"));
}

bool BuiltWithCuda() {
#if SQUEEZE_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

const DeviceInventory& ProbeDevices() {
  static const DeviceInventory* inv = new DeviceInventory(Probe());
  return *inv;
}

absl::StatusOr<const gpu::CudaPluginV1*> LoadCudaPlugin() {
#if SQUEEZE_HAVE_CUDA
  static const auto* loaded = new absl::StatusOr<const gpu::CudaPluginV1*>(LoadPluginOnce());
  return *loaded;
#else
  return absl::FailedPreconditionError("this build has no CUDA support");
#endif
}

Device CpuDevice(std::string reason) {
  Device d;
  d.kind = DeviceKind::kCpu;
  d.description = "cpu";
  d.reason = std::move(reason);
  return d;
}

absl::StatusOr<Device> SelectDevice(DeviceRequest request, const DeviceInventory& inv, absl::string_view field) {
  switch (request) {
    case DeviceRequest::kCpu:
      return CpuDevice("requested");
    case DeviceRequest::kCuda:
    case DeviceRequest::kAuto: {
      const bool asked = request == DeviceRequest::kCuda;
      if (!inv.built_with_cuda) {
        const char* why = "this build has no CUDA support (configured without nvcc or with -DSQUEEZE_CUDA=OFF)";
        if (asked) return absl::InvalidArgumentError(absl::StrCat(field, ": cuda requested but ", why));
        return CpuDevice(absl::StrCat("auto: ", why));
      }
      if (inv.cuda_devices <= 0) {
        const char* why = "no CUDA device is present (cudaGetDeviceCount found none)";
        if (asked) return absl::InvalidArgumentError(absl::StrCat(field, ": cuda requested but ", why));
        return CpuDevice(absl::StrCat("auto: ", why));
      }
      Device d;
      d.kind = DeviceKind::kCuda;
      d.index = 0;
      d.description = inv.cuda_description.empty() ? std::string("CUDA device 0") : inv.cuda_description;
      d.reason = asked ? "requested" : "auto: a CUDA device is present";
      return d;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(field, ": bad device request"));
}

absl::StatusOr<Device> SelectDevice(DeviceRequest request, absl::string_view field) {
  return SelectDevice(request, ProbeDevices(), field);
}

double ProcessGpuSeconds() { return g_gpu_seconds.load(); }

void AddProcessGpuSeconds(double seconds) {
  if (!(seconds > 0.0) || !std::isfinite(seconds)) return;
  g_gpu_seconds.fetch_add(seconds);
}

}  // namespace squeeze
