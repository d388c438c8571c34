// libFuzzer target: the llama2.c tokenizer.bin loader
// (Llama2cTokenizer::FromBytes, in memory); a tokenizer it accepts encodes
// (fast path and reference) and decodes a probe text.
#include <cstdint>
#include <vector>

#include "tests/fuzz/fuzz_util.h"
#include "workers/engine/tokenizer/llama2c_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace squeeze;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto tok = Llama2cTokenizer::FromBytes(bytes, "fuzz/tokenizer.bin");
  if (!tok.ok()) return 0;
  const std::vector<int> ids = (*tok)->Encode(fuzz::kProbeText, true);
  // The fast path keeps a plain reference: both must agree on any vocab.
  if (ids != (*tok)->EncodeReference(fuzz::kProbeText, true)) __builtin_trap();
  for (int id : ids) {
    if (id < 0 || id >= (*tok)->vocab_size()) __builtin_trap();
  }
  (void)(*tok)->Decode(ids);
  for (size_t i = 1; i < ids.size(); ++i) (void)(*tok)->DecodePiece(ids[i - 1], ids[i]);
  return 0;
}
