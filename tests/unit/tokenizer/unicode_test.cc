#include "workers/engine/tokenizer/unicode.h"

#include <initializer_list>
#include <string>

#include <gtest/gtest.h>

namespace squeeze {
namespace {

using unicode_internal::CodepointRange;

void ExpectSortedDisjoint(const CodepointRange* r, size_t n, const char* name) {
  ASSERT_GT(n, 0u) << name;
  for (size_t i = 0; i < n; ++i) {
    EXPECT_LE(r[i].first, r[i].last) << name << " range " << i;
    if (i > 0) {
      EXPECT_GT(r[i].first, r[i - 1].last + 1) << name << " ranges " << i - 1 << ", " << i;
    }
  }
  EXPECT_LE(r[n - 1].last, 0x10FFFFu) << name;
}

TEST(Unicode, TablesAreSortedAndDisjoint) {
  ExpectSortedDisjoint(unicode_internal::kLetterRanges, unicode_internal::kLetterRangesCount, "L");
  ExpectSortedDisjoint(unicode_internal::kNumberRanges, unicode_internal::kNumberRangesCount, "N");
  ExpectSortedDisjoint(unicode_internal::kSpaceRanges, unicode_internal::kSpaceRangesCount, "s");
}

TEST(Unicode, Classes) {
  for (int32_t c : std::initializer_list<int32_t>{'a', 'Z', 0xE9 /*é*/, 0x416 /*Ж*/, 0x4E2D /*中*/, 0xAC00 /*가*/, 0x2B0 /*ʰ Lm*/}) {
    EXPECT_TRUE(IsLetter(c)) << std::hex << c;
    EXPECT_FALSE(IsNumber(c)) << std::hex << c;
    EXPECT_FALSE(IsSpace(c)) << std::hex << c;
  }
  for (int32_t c : std::initializer_list<int32_t>{'0', '9', 0xBD /*½ No*/, 0x2167 /*Ⅷ Nl*/, 0x661 /*Arabic-Indic 1*/, 0xB2 /*²*/}) {
    EXPECT_TRUE(IsNumber(c)) << std::hex << c;
    EXPECT_FALSE(IsLetter(c)) << std::hex << c;
  }
  for (int32_t c : std::initializer_list<int32_t>{' ', '\t', '\n', '\r', 0x0B, 0x0C, 0xA0, 0x3000, 0x2003, 0xFEFF}) {
    EXPECT_TRUE(IsSpace(c)) << std::hex << c;
  }
  // Neither: punctuation, symbols, marks, format characters, invalid.
  for (int32_t c : std::initializer_list<int32_t>{'!', '\'', 0x301 /*combining acute*/, 0x200B /*ZWSP*/, 0x1F600, 0x85, -1}) {
    EXPECT_FALSE(IsLetter(c) || IsNumber(c) || IsSpace(c)) << std::hex << c;
  }
}

TEST(Unicode, Utf8RoundTripAndInvalid) {
  for (uint32_t cp : {0x0u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xFFFFu, 0x10000u, 0x10FFFFu, 0x1F600u}) {
    std::string s;
    AppendUtf8(cp, &s);
    const Utf8Char c = DecodeUtf8(s, 0);
    EXPECT_EQ(c.cp, static_cast<int32_t>(cp));
    EXPECT_EQ(c.len, static_cast<int>(s.size()));
  }
  for (const char* bad : {"\x80", "\xC0\x80" /*overlong*/, "\xED\xA0\x80" /*surrogate*/,
                          "\xF4\x90\x80\x80" /*> U+10FFFF*/, "\xE4\xB8" /*truncated*/, "\xFF"}) {
    const Utf8Char c = DecodeUtf8(bad, 0);
    EXPECT_EQ(c.cp, -1) << bad;
    EXPECT_EQ(c.len, 1);
  }
}

TEST(Unicode, Nfc) {
  EXPECT_EQ(NormalizeNfc("e\xCC\x81"), "\xC3\xA9");            // e + U+0301 -> é
  EXPECT_EQ(NormalizeNfc("\xE2\x84\xAB"), "\xC3\x85");         // U+212B ANGSTROM SIGN -> Å
  EXPECT_EQ(NormalizeNfc("\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");  // jamo -> 가
  EXPECT_EQ(NormalizeNfc("caf\xC3\xA9 plain"), "caf\xC3\xA9 plain");  // already NFC
  EXPECT_EQ(NormalizeNfc("ascii only"), "ascii only");
  EXPECT_EQ(NormalizeNfc("e\xCC\x81\xFF"), "e\xCC\x81\xFF");   // invalid UTF-8: unchanged
  EXPECT_TRUE(IsValidUtf8("\xC3\xA9"));
  EXPECT_FALSE(IsValidUtf8("\xC3"));
}

}  // namespace
}  // namespace squeeze
