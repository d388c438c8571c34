// libFuzzer target: the llama2.c .bin reader (links only llama2.c and the
// core). ReadLlama2c takes a path: the input is written to a per-process
// scratch file. Every tensor it returns is read in full (views must lie
// inside the mapping: ASan).
#include <cstdint>

#include "tests/fuzz/fuzz_util.h"
#include "workers/engine/formats/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace squeeze;
  const std::string& path = fuzz::ScratchPath(".bin");
  fuzz::WriteScratch(path, data, size);
  absl::StatusOr<CheckpointTensors> ck = ReadLlama2c(path);
  if (!ck.ok()) return 0;
  for (const auto& [name, t] : ck->tensors) {
    if (!ToFloat32(t.view, name).ok()) __builtin_trap();  // all fp32 of the right size
  }
  return 0;
}
