// libFuzzer target (deep, links squeeze_formats): the llama2.c .bin reader and,
// for inputs it accepts, BuildModel on the tensors it returns. Seeds: the
// llama2c ones.
#include <cstdint>

#include "tests/fuzz/fuzz_util.h"
#include "workers/engine/formats/checkpoint_tensors.h"
#include "workers/engine/formats/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace squeeze;
  const std::string& path = fuzz::ScratchPath(".bin");
  fuzz::WriteScratch(path, data, size);
  absl::StatusOr<CheckpointTensors> ck = ReadLlama2c(path);
  if (!ck.ok()) return 0;
  absl::StatusOr<Model> model = BuildModel(std::move(*ck));
  (void)model;
  return 0;
}
