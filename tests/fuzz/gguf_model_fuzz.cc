// libFuzzer target (deep, links squeeze_formats): for inputs the GGUF reader
// accepts, what squeeze does with a GGUF model: GgufToCheckpoint (llama.*
// metadata, dequantization, q/k permutation), BuildModel, and
// TokenizerFromGguf (tokenizer.ggml.*) run on a probe text. Seeds: the gguf ones.
#include <cstdint>
#include <memory>
#include <vector>

#include "tests/fuzz/fuzz_util.h"
#include "workers/engine/formats/checkpoint_tensors.h"
#include "workers/engine/formats/gguf.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace squeeze;
  // libFuzzer's buffer is a malloc'ed copy of exactly `size` bytes (16-byte
  // aligned, as good as a page-aligned mapping for every ggml type once the
  // reader has checked general.alignment and the offsets).
  absl::StatusOr<GgufFile> file = ParseGguf("fuzz.gguf", data, size, nullptr);
  if (!file.ok()) return 0;
  absl::StatusOr<CheckpointTensors> ck = GgufToCheckpoint(*file);
  if (ck.ok()) {
    absl::StatusOr<Model> model = BuildModel(std::move(*ck));
    (void)model;
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = TokenizerFromGguf(*file);
  if (tok.ok()) {
    const std::vector<int> ids = (*tok)->Encode(fuzz::kProbeText, true);
    (void)(*tok)->Decode(ids);
    for (size_t i = 1; i < ids.size(); ++i) (void)(*tok)->DecodePiece(ids[i - 1], ids[i]);
  }
  return 0;
}
