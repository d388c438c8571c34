// Small deterministic inputs for tests that run recipes on synthetic models.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace squeeze::test_inputs {

// A llama2.c tokenizer.bin (llama2c_tokenizer.h) with only <unk>, <s>, </s>
// and the 256 byte pieces: every text encodes byte by byte (vocab 259).
inline std::string ByteTokenizerBin() {
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

// 200 English-like words drawn by an LCG from `seed`, a sentence every 9
// words (one per line): calibration text for byte-level synthetic models.
inline std::string WordSalad(uint32_t seed) {
  const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "saw", "big", "red", "dog", "run"};
  std::string text;
  uint32_t x = seed;
  for (int i = 0; i < 200; ++i) {
    x = x * 1664525u + 1013904223u;
    text += words[(x >> 16) % 12];
    text += (i % 9 == 8) ? ".\n" : " ";
  }
  return text;
}

}  // namespace squeeze::test_inputs
