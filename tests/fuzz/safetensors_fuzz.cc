// libFuzzer target: the safetensors reader (ParseSafetensors, in memory; links
// only safetensors.cc and the core). Every tensor it accepts is widened to
// fp32 (F32/F16/BF16; other dtypes must give a Status), so each view must lie
// inside the input (ASan checks it).
#include <cstdint>

#include "workers/engine/formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace squeeze;
  absl::StatusOr<SafetensorsFile> file = ParseSafetensors("fuzz.safetensors", data, size, nullptr);
  if (!file.ok()) return 0;
  for (const auto& [name, view] : file->tensors) {
    if (static_cast<const uint8_t*>(view.data) < data || view.nbytes > size) __builtin_trap();
    (void)ToFloat32(view, name);
  }
  return 0;
}
