// libFuzzer target: the Hugging Face tokenizer.json loader
// (HfBpeTokenizer::FromJson, in memory); a tokenizer it accepts encodes and
// decodes a probe text, piece by piece too.
#include <cstdint>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_util.h"
#include "workers/engine/tokenizer/hf_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace squeeze;
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
  auto tok = HfBpeTokenizer::FromJson(json, "fuzz/tokenizer.json");
  if (!tok.ok()) return 0;
  for (bool bos : {false, true}) {
    const std::vector<int> ids = (*tok)->Encode(fuzz::kProbeText, bos);
    for (int id : ids) {
      if (id < 0 || id >= (*tok)->vocab_size()) __builtin_trap();  // Encode must give ids of the vocab
    }
    (void)(*tok)->Decode(ids);
    for (size_t i = 1; i < ids.size(); ++i) (void)(*tok)->DecodePiece(ids[i - 1], ids[i]);
  }
  return 0;
}
