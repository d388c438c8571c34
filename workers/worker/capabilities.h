// What this machine offers to the scheduler: cores, SIMD features (cpuid), RAM,
// free disk under the work dir, GPUs. Plain C++; the worker turns it into a
// squeeze.v1.Capabilities message.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "workers/engine/device/device.h"

namespace squeeze::worker {

struct HostCapabilities {
  int cpu_cores = 0;
  bool avx2 = false;
  bool avx512f = false;
  bool avx512_vnni = false;
  int64_t ram_bytes = 0;
  int64_t disk_free_bytes = 0;
  struct Gpu {
    std::string name;
    int64_t memory_bytes = 0;
  };
  std::vector<Gpu> gpus;  // from nvidia-smi when present; none otherwise
  std::string hostname;
};

HostCapabilities DetectCapabilities(const std::string& work_dir);

// The scheduler sends jobs that want a GPU to workers that advertise one, so a
// worker advertises the GPUs nvidia-smi lists only when its stages would run
// on a GPU: `run_device` (what SelectDevice chose for --device) is cuda.
// Otherwise (a build without CUDA, --device cpu, no device visible to the CUDA
// runtime) caps->gpus is cleared and the reason returned; "" when nothing was
// dropped.
std::string KeepGpusOnlyForCuda(const Device& run_device, HostCapabilities* caps);
std::string Describe(const HostCapabilities& caps);

}  // namespace squeeze::worker
