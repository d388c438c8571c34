// llama2.c tokenizer.bin: score-ordered BPE with byte fallback.
// File layout (little-endian): int32 max_token_length, then for each token
// float32 score, int32 byte length, the bytes. Ids 0,1,2 = <unk>,<s>,</s>;
// ids 3..258 are the byte pieces <0x00>..<0xFF>.
// Encoding and decoding follow llama2.c's run.c encode()/decode() exactly
// (including its grouping of UTF-8 bytes and its byte fallback of +3).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze {

class Llama2cTokenizer : public Tokenizer {
 public:
  // `name` is used in error messages (the file path).
  static absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> FromBytes(absl::string_view bytes,
                                                                   const std::string& name);
  static absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> FromFile(const std::string& path);

  std::vector<int> Encode(absl::string_view text, bool add_bos) const override;
  // Like Encode, with run.c's O(n^2) merge loop (the reference for tests).
  std::vector<int> EncodeReference(absl::string_view text, bool add_bos) const;
  std::string Decode(const std::vector<int>& ids) const override;
  std::string DecodePiece(int prev_id, int id) const override;
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return 1; }
  int eos_id() const override { return 2; }

  const std::string& piece(int id) const { return pieces_[id]; }
  float score(int id) const { return scores_[id]; }
  int max_token_length() const { return max_token_length_; }
  // The id of `piece`, -1 when absent (the lowest id if it occurs twice).
  int PieceId(absl::string_view piece) const;

 private:
  Llama2cTokenizer() = default;
  std::vector<int> InitialSymbols(absl::string_view text) const;

  int max_token_length_ = 0;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> piece_to_id_;
  // (canonical left id << 32 | canonical right id) -> id of the concatenation.
  std::unordered_map<uint64_t, int> pair_to_merged_;
  std::vector<int> canonical_;  // id -> lowest id with the same piece
};

}  // namespace squeeze
