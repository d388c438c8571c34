// UTF-8 and Unicode character classes for the tokenizers.
// Classes follow the JavaScript RegExp definitions (\p{L}, \p{N}, \s) of the
// Node.js that generated unicode_tables.cc, i.e. what the gpt-3-encoder
// reference uses: \s there is Unicode White_Space minus U+0085, plus U+FEFF.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace squeeze {

// One decoded UTF-8 sequence. `cp` is -1 for an invalid byte (then len == 1).
struct Utf8Char {
  int32_t cp;
  int len;  // bytes consumed, 1..4
};

// Decodes the sequence starting at s[pos] (pos < s.size()). Rejects overlong
// forms, surrogates and code points above U+10FFFF: those yield {-1, 1}.
Utf8Char DecodeUtf8(absl::string_view s, size_t pos);

// Appends the UTF-8 encoding of `cp` (0..0x10FFFF) to `out`.
void AppendUtf8(uint32_t cp, std::string* out);

// Unicode NFC of `text` (ICU). Text that is not valid UTF-8 is returned
// unchanged (normalizing it would replace bytes with U+FFFD).
std::string NormalizeNfc(absl::string_view text);

// True when every byte decodes (DecodeUtf8 never yields -1).
bool IsValidUtf8(absl::string_view text);

bool IsLetter(int32_t cp);  // \p{L}
bool IsNumber(int32_t cp);  // \p{N}
bool IsSpace(int32_t cp);   // \s

namespace unicode_internal {
struct CodepointRange {
  uint32_t first;  // inclusive
  uint32_t last;   // inclusive
};
// Sorted, disjoint (checked by tests/unit/tokenizer/unicode_test.cc).
extern const CodepointRange kLetterRanges[];
extern const size_t kLetterRangesCount;
extern const CodepointRange kNumberRanges[];
extern const size_t kNumberRangesCount;
extern const CodepointRange kSpaceRanges[];
extern const size_t kSpaceRangesCount;
}  // namespace unicode_internal

}  // namespace squeeze
