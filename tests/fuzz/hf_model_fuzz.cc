// libFuzzer target (deep, links squeeze_formats): for inputs the safetensors
// reader accepts, the whole HF loader (LoadModel on a directory with the input
// as model.safetensors beside a fixed config.json of the tiny model fuzz_seeds
// writes): every tensor shape, dtype, value and name goes through BuildModel.
// Any outcome but OK or a Status is a finding. Seeds: the safetensors ones.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/fuzz_seed_model.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace squeeze;
  absl::StatusOr<SafetensorsFile> file = ParseSafetensors("fuzz.safetensors", data, size, nullptr);
  if (!file.ok()) return 0;
  static const std::string dir = [] {
    const std::string d = fuzz::ScratchPath("_hf");
    std::filesystem::create_directories(d);
    std::ofstream(d + "/config.json") << fuzz::SeedConfigJson();
    return d;
  }();
  fuzz::WriteScratch(dir + "/model.safetensors", data, size);
  absl::StatusOr<Model> model = LoadModel(dir);
  (void)model;
  return 0;
}
