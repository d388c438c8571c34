// Hugging Face tokenizer.json with model.type "BPE", in the two forms used by
// Llama-family checkpoints:
//  - byte-level BPE (GPT-2 style): pre_tokenizer ByteLevel (GPT-2 regex +
//    bytes_to_unicode), merges by rank, decoder ByteLevel;
//  - SentencePiece-style BPE (Llama-2 style): normalizer Prepend("▁") +
//    Replace(" " -> "▁") or a Metaspace pre-tokenizer, merges by rank, byte
//    fallback <0xXX> for characters not in the vocab, decoder that reverses it.
// Added tokens are split out of the text first (longest match; lstrip/rstrip
// honoured). Encode(add_bos) adds the special tokens the post_processor's
// TemplateProcessing puts before $A (else the BOS token, when there is one).
// BOS/EOS names come from tokenizer_config.json beside the file when present.
// Byte-level also accepts Llama-3 / Qwen2 layouts: a Split pre-tokenizer with
// their regex (matched by hand, see byte_level.h) before ByteLevel(use_regex
// false), an NFC normalizer (ICU), and model.ignore_merges.
// GPT-2's vocab.json (encoder.json) + merges.txt (vocab.bpe) pair loads as a
// byte-level tokenizer too. Components outside these forms (other model
// types, other Split regexes, other normalizers such as NFKC, BPE dropout...)
// are rejected with Unimplemented naming the field, never silently ignored.
// Encoding is deterministic and thread-safe (no caches).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze {

class HfBpeTokenizer : public Tokenizer {
 public:
  // `config_json` is the optional tokenizer_config.json text (bos/eos names);
  // `name` is used in error messages.
  static absl::StatusOr<std::unique_ptr<HfBpeTokenizer>> FromJson(
      absl::string_view tokenizer_json, const std::string& name,
      std::optional<std::string> config_json = std::nullopt);
  // Reads `path` and, when present, tokenizer_config.json beside it.
  static absl::StatusOr<std::unique_ptr<HfBpeTokenizer>> FromFile(const std::string& path);
  // GPT-2's encoder.json/vocab.json + vocab.bpe/merges.txt. BOS and EOS are
  // <|endoftext|> when the vocab has it (GPT-2's convention).
  static absl::StatusOr<std::unique_ptr<HfBpeTokenizer>> FromGpt2Files(
      const std::string& vocab_json_path, const std::string& merges_path);

  std::vector<int> Encode(absl::string_view text, bool add_bos) const override;
  std::string Decode(const std::vector<int>& ids) const override;
  std::string DecodePiece(int prev_id, int id) const override;
  int vocab_size() const override { return static_cast<int>(id_to_token_.size()); }
  int bos_id() const override { return bos_id_; }
  int eos_id() const override { return eos_id_; }

  bool byte_level() const { return byte_level_; }
  // The token string of `id` as stored (byte-level spelling for GPT-2).
  const std::string& token(int id) const { return id_to_token_[id]; }
  int TokenId(absl::string_view token) const;  // -1 when absent

  struct AddedToken {
    int id;
    std::string content;
    bool special;
    bool lstrip;
    bool rstrip;
  };
  // One normalizer / pre-tokenizer / decoder step this class implements.
  struct Replace {
    std::string from, to;
  };

 private:
  friend class HfBpeBuilder;
  HfBpeTokenizer() = default;

  // Appends the BPE tokens of one pre-tokenized word (already normalized and,
  // for byte-level, spelled with the byte stand-ins).
  void EncodeWord(absl::string_view word, std::vector<int>* out) const;
  // Normalizes and pre-tokenizes one section of text (no added tokens in it).
  void EncodeSection(absl::string_view section, int section_index, std::vector<int>* out) const;
  // The text of one token, without stripping.
  std::string PieceText(int id) const;

  // Model.
  std::vector<std::string> id_to_token_;  // "" for unused ids
  std::unordered_map<std::string, int> token_to_id_;
  std::unordered_map<uint64_t, std::pair<int, int>> merges_;  // (a,b) -> (rank, merged)
  int unk_id_ = -1;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::vector<int> byte_token_;  // byte -> id of "<0xXX>", -1 when absent
  std::vector<int> token_byte_;  // id -> byte for "<0xXX>" tokens, else -1

  // Added tokens, matched longest first on the raw text.
  std::vector<AddedToken> added_;
  std::vector<std::vector<int>> added_by_first_byte_;  // [byte] -> indices into added_
  std::vector<char> is_special_;  // by id
  std::vector<char> is_added_;    // by id

  // Normalizer steps, applied in order to each non-empty section.
  struct NormStep {
    enum Kind { kPrepend, kReplace, kNfc } kind;
    std::string from, to;  // Prepend(to), Replace(from -> to)
  };
  std::vector<NormStep> normalizers_;

  // Pre-tokenizer.
  bool byte_level_ = false;
  bool add_prefix_space_ = false;  // ByteLevel
  bool use_regex_ = true;          // ByteLevel
  int split_digits_ = 0;  // >0: Split with the Llama-3 / Qwen2 regex (SplitLlama3)
  bool metaspace_ = false;
  std::string metaspace_replacement_;
  enum class Prepend { kAlways, kFirst, kNever } metaspace_prepend_ = Prepend::kAlways;
  bool metaspace_split_ = true;

  // Decoder (SentencePiece form).
  std::vector<Replace> decode_replaces_;
  int decode_strip_leading_ = 0;  // spaces stripped from the start

  // Post-processor.
  std::vector<int> prefix_ids_;
  int bos_id_ = -1;
  int eos_id_ = -1;
};

}  // namespace squeeze
