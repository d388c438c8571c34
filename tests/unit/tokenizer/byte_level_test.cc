#include "workers/engine/tokenizer/byte_level.h"

#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "workers/engine/tokenizer/unicode.h"

namespace squeeze {
namespace {

std::vector<std::string> Split(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view p : SplitGpt2(text)) out.emplace_back(p);
  return out;
}

TEST(ByteLevel, ByteTableIsGpt2s) {
  const auto& t = ByteToUnicode();
  std::set<uint32_t> seen(t.begin(), t.end());
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(t['A'], static_cast<uint32_t>('A'));  // printable ASCII maps to itself
  EXPECT_EQ(t[' '], 0x120u);                       // 'Ġ'
  EXPECT_EQ(t['\n'], 0x10Au);                      // 'Ċ'
  EXPECT_EQ(t[0], 0x100u);
  EXPECT_EQ(t[0xAD], 0x143u);  // soft hyphen is not printable in GPT-2's table
  for (int b = 0; b < 256; ++b) EXPECT_EQ(UnicodeToByte(t[b]), b);
  EXPECT_EQ(UnicodeToByte(' '), -1);
  EXPECT_EQ(BytesToByteLevel(" a\n"), "\xC4\xA0" "a" "\xC4\x8A");
}

TEST(ByteLevel, SplitsLikeTheGpt2Pattern) {
  using V = std::vector<std::string>;
  EXPECT_EQ(Split("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(Split("a   b"), (V{"a", "  ", " b"}));  // \s+(?!\S) leaves one space
  EXPECT_EQ(Split("x\n\ny"), (V{"x", "\n", "\n", "y"}));
  EXPECT_EQ(Split("end   "), (V{"end", "   "}));
  EXPECT_EQ(Split("I'm we'll 'S"), (V{"I", "'m", " we", "'ll", " '", "S"}));
  EXPECT_EQ(Split(" 123abc"), (V{" 123", "abc"}));
  EXPECT_EQ(Split("$3.50!!"), (V{"$", "3", ".", "50", "!!"}));
  EXPECT_EQ(Split("caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87"),
            (V{"caf\xC3\xA9", " \xE4\xB8\xAD\xE6\x96\x87"}));
  EXPECT_EQ(Split("\t\tx"), (V{"\t", "\t", "x"}));  // only " " is the optional prefix
  EXPECT_TRUE(Split("").empty());
}

std::vector<std::string> SplitL3(absl::string_view text, int digits = 3) {
  std::vector<std::string> out;
  for (absl::string_view p : SplitLlama3(text, digits)) out.emplace_back(p);
  return out;
}

TEST(ByteLevel, SplitsLikeTheLlama3Pattern) {
  using V = std::vector<std::string>;
  EXPECT_EQ(SplitL3("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(SplitL3("12345"), (V{"123", "45"}));                 // \p{N}{1,3}
  EXPECT_EQ(SplitL3("12345", 1), (V{"1", "2", "3", "4", "5"}));  // Qwen2: \p{N}
  EXPECT_EQ(SplitL3("a\n\nb"), (V{"a", "\n\n", "b"}));           // \s*[\r\n]+
  EXPECT_EQ(SplitL3("x  \n  y"), (V{"x", "  \n", " ", " y"}));
  EXPECT_EQ(SplitL3("'LL'Re"), (V{"'LL", "'Re"}));               // case-insensitive
  EXPECT_EQ(SplitL3("!!!\n\nabc"), (V{"!!!\n\n", "abc"}));       // punctuation takes CR/LF
  EXPECT_EQ(SplitL3("$hello \thello"), (V{"$hello", " ", "\thello"}));
  EXPECT_TRUE(SplitL3("").empty());
}

TEST(ByteLevel, RecognizesSplitPatterns) {
  const std::string llama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  EXPECT_EQ(MaxDigitsOfSplitPattern(llama3), 3);
  std::string qwen2 = llama3;
  qwen2.replace(qwen2.find("{1,3}"), 5, "");
  EXPECT_EQ(MaxDigitsOfSplitPattern(qwen2), 1);
  EXPECT_EQ(MaxDigitsOfSplitPattern("\\s+"), 0);
  EXPECT_EQ(MaxDigitsOfSplitPattern(llama3.substr(1)), 0);
}

TEST(ByteLevel, PiecesConcatenateToTheText) {
  std::mt19937 rng(7);
  const std::vector<std::string> atoms = {"a", "Z", " ", "  ", "\n", "\t", "7", "'", "'s", "!",
                                          "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xFF",
                                          "\r\n", "123456"};
  for (int trial = 0; trial < 500; ++trial) {
    std::string s;
    for (int k = rng() % 20; k > 0; --k) s += atoms[rng() % atoms.size()];
    for (int kind = 0; kind < 2; ++kind) {
      std::string joined;
      for (absl::string_view p : kind == 0 ? SplitGpt2(s) : SplitLlama3(s, 3)) {
        EXPECT_FALSE(p.empty());
        joined.append(p.data(), p.size());
      }
      EXPECT_EQ(joined, s);
    }
  }
}

}  // namespace
}  // namespace squeeze
