// Tokenizer: text <-> token ids. Implementations: llama2.c tokenizer.bin
// (score-ordered BPE with byte fallback) and Hugging Face tokenizer.json
// (byte-level BPE as GPT-2, SentencePiece-style BPE with byte fallback as
// Llama-2).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace squeeze {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`, with the BOS id first when add_bos (and the
  // tokenizer has one). Never fails: unknown bytes use byte fallback / <unk>.
  virtual std::vector<int> Encode(absl::string_view text, bool add_bos) const = 0;

  // The text of `ids` (special tokens such as BOS/EOS omitted).
  virtual std::string Decode(const std::vector<int>& ids) const = 0;

  // The text piece token `id` adds when it follows `prev_id` (for streaming
  // generation; e.g. SentencePiece drops the leading space after BOS).
  // Pieces may be partial UTF-8 sequences (byte-fallback tokens).
  virtual std::string DecodePiece(int prev_id, int id) const = 0;

  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;  // -1 when none
  virtual int eos_id() const = 0;  // -1 when none
};

// Loads tokenizer.bin (llama2.c) or tokenizer.json (HF), chosen by content.
// Errors name the file and what is wrong with it.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path);

// The tokenizer file that belongs to a model path: for an HF directory its
// tokenizer.json, else a tokenizer*.bin / tok*.bin in it; for a llama2.c .bin
// file, tokenizer.bin / tok*.bin beside it. NotFound names where it looked.
absl::StatusOr<std::string> FindTokenizerFor(const std::string& model_path);

}  // namespace squeeze
