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

TEST(ByteLevel, PiecesConcatenateToTheText) {
  std::mt19937 rng(7);
  const std::vector<std::string> atoms = {"a", "Z", " ", "  ", "\n", "\t", "7", "'", "'s", "!",
                                          "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xFF"};
  for (int trial = 0; trial < 500; ++trial) {
    std::string s;
    for (int k = rng() % 20; k > 0; --k) s += atoms[rng() % atoms.size()];
    std::string joined;
    for (absl::string_view p : SplitGpt2(s)) {
      EXPECT_FALSE(p.empty());
      joined.append(p.data(), p.size());
    }
    EXPECT_EQ(joined, s);
  }
}

}  // namespace
}  // namespace squeeze
