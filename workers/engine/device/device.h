// Device selection for a run: where the heavy calibration math (GPTQ now)
// runs. Plain C++ (no gRPC, no CUDA types); the CUDA kernels live in
// workers/kernels/cuda and are linked only when the build has CUDA
// (SQUEEZE_HAVE_CUDA: nvcc found and SQUEEZE_CUDA=ON at configure time).
//
//   device: auto   cuda when this build has CUDA and a CUDA device is present,
//                  else cpu (the reason is kept in Device::reason)
//   device: cpu    the CPU, always
//   device: cuda   CUDA device 0; an InvalidArgument error naming the field
//                  when the build has no CUDA or no device is present
//
// A build without CUDA compiles the same code and always selects cpu.
// Probing needs only the CUDA runtime (cudart, linked into the engine in CUDA
// builds; ~0.03 s to load); the GPU methods live in a plugin (below).
//
// GPU time: engine code that runs work on a GPU adds the host wall seconds
// it spent waiting for that work (bracketed by device synchronisations) to a
// process-wide counter, read like ProcessCpuSeconds(): the stage runner
// reports the difference over a stage as the stage's gpu_s.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace squeeze {

namespace gpu {
struct CudaPluginV1;
}

enum class DeviceRequest { kAuto, kCpu, kCuda };
enum class DeviceKind { kCpu, kCuda };

absl::string_view DeviceRequestName(DeviceRequest r);  // "auto" | "cpu" | "cuda"
absl::string_view DeviceKindName(DeviceKind k);        // "cpu" | "cuda"

// "auto" | "cpu" | "cuda" (exact, lower case). InvalidArgument naming
// `field` (e.g. "--device") and the accepted values otherwise.
absl::StatusOr<DeviceRequest> ParseDeviceRequest(absl::string_view text, absl::string_view field = "device");

// What this process can use.
struct DeviceInventory {
  bool built_with_cuda = false;  // this binary links the CUDA kernels
  int cuda_devices = 0;          // cudaGetDeviceCount; 0 without a driver or device
  std::string cuda_description;  // device 0, e.g. "NVIDIA H100 80GB HBM3 (sm_90, ...)"; "" when none
};

// True when this binary was built with the CUDA kernels.
bool BuiltWithCuda();

// Probes once per process (thread-safe) and caches the answer.
const DeviceInventory& ProbeDevices();

// The device a run uses.
struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;            // CUDA device index when kind == kCuda (always 0 for now)
  std::string description;  // "cpu" or the CUDA device's description
  std::string reason;       // why: "requested", "auto: no CUDA device present", ...
  bool is_cuda() const { return kind == DeviceKind::kCuda; }
};

// The plain CPU device ("requested" unless `reason` says otherwise).
Device CpuDevice(std::string reason = "requested");

// Pure selection logic on a given inventory (tests pass their own). Errors
// (InvalidArgument) name `field`: "device: cuda requested but this build has
// no CUDA support (...)" / "... but no CUDA device is present (...)".
absl::StatusOr<Device> SelectDevice(DeviceRequest request, const DeviceInventory& inventory,
                                    absl::string_view field = "device");
// The same on this process's ProbeDevices().
absl::StatusOr<Device> SelectDevice(DeviceRequest request, absl::string_view field = "device");

// The CUDA plugin (workers/kernels/cuda/cuda_plugin.h: GPU GPTQ, device
// memory), loaded with dlopen on first use and kept for the process: cuBLAS /
// cuSOLVER are linked there, not into the engine (they cost ~2 s and ~250 MB
// to load). Looked up, in order: $SQUEEZE_CUDA_PLUGIN; beside the running
// executable; the path it was built at. Errors: a build without CUDA, or
// every path tried with dlopen's reason. Thread-safe.
absl::StatusOr<const gpu::CudaPluginV1*> LoadCudaPlugin();

// Process-wide GPU seconds (see the header comment). Monotonic; thread-safe.
double ProcessGpuSeconds();
// Adds `seconds` (>= 0; negative or non-finite values are ignored).
void AddProcessGpuSeconds(double seconds);

}  // namespace squeeze
