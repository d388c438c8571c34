// libFuzzer target: the HF config.json reader (ParseHfConfig, in memory).
// A config it accepts must pass ModelConfig::Validate and survive the round
// trip through HfConfigJson (what SaveModel writes).
#include <cstdint>
#include <cstdio>

#include "workers/engine/formats/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace squeeze;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ModelConfig> c = ParseHfConfig(text, "fuzz/config.json");
  if (!c.ok()) return 0;
  if (!c->Validate().ok()) __builtin_trap();
  absl::StatusOr<ModelConfig> again = ParseHfConfig(HfConfigJson(*c), "fuzz/config.json (rewritten)");
  if (!again.ok()) {
    std::fprintf(stderr, "HfConfigJson output does not parse back: %s\n",
                 std::string(again.status().message()).c_str());
    __builtin_trap();
  }
  return 0;
}
