// The smallest useful llama2.c tokenizer.bin (format: llama2c_tokenizer.h):
// <unk>, <s>, </s> (ids 0..2) and the 256 byte pieces <0x00>..<0xFF>
// (ids 3..258), all with score 0, so every text encodes byte by byte and the
// vocabulary has 259 entries. Used for fresh models trained from scratch and
// by tests; header-only so any target can build one without a new link.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace squeeze {

inline std::string Llama2cByteVocabBin() {
  std::string out;
  auto put_i32 = [&out](int32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  auto put_piece = [&](const std::string& p) {
    const float score = 0.0f;
    out.append(reinterpret_cast<const char*>(&score), 4);
    put_i32(static_cast<int32_t>(p.size()));
    out += p;
  };
  put_i32(6);  // max_token_length
  for (const char* s : {"<unk>", "<s>", "</s>"}) put_piece(s);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    put_piece(buf);
  }
  return out;
}

}  // namespace squeeze
