// What the modules of one stage ran on: a modifier that can use the run's
// device (GPTQModifier) records, per module, whether its method ran on the
// GPU or fell back to the CPU and why. Measured figures: they go into the
// report the runner returns (RunResult.report), never into the artifact's
// report.json (which stays byte-identical across runs).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace squeeze {

struct StageDeviceUsage {
  int64_t gpu_modules = 0;    // modules whose method ran on the GPU
  int64_t cpu_fallbacks = 0;  // modules that ran on the CPU although the run's device is cuda
  // "<module>: <reason>" for the first kMaxNotes fallbacks.
  std::vector<std::string> fallback_notes;
  static constexpr size_t kMaxNotes = 16;

  void RecordGpu() { ++gpu_modules; }
  void RecordFallback(const std::string& module, const std::string& reason) {
    ++cpu_fallbacks;
    if (fallback_notes.size() < kMaxNotes) fallback_notes.push_back(module + ": " + reason);
  }
};

}  // namespace squeeze
