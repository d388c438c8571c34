// A byte-level test tokenizer: id = byte + 3; 0 <unk>, 1 BOS, 2 EOS.
#pragma once

#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze::testing {

class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int> Encode(absl::string_view text, bool add_bos) const override {
    std::vector<int> ids;
    if (add_bos) ids.push_back(1);
    for (unsigned char c : text) ids.push_back(c + 3);
    return ids;
  }
  std::string Decode(const std::vector<int>& ids) const override {
    std::string s;
    for (int id : ids) s += DecodePiece(0, id);
    return s;
  }
  std::string DecodePiece(int, int id) const override {
    return id >= 3 && id < 259 ? std::string(1, static_cast<char>(id - 3)) : std::string();
  }
  int vocab_size() const override { return 259; }
  int bos_id() const override { return 1; }
  int eos_id() const override { return 2; }
};

}  // namespace squeeze::testing
