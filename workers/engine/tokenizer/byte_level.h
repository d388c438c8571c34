// GPT-2 byte-level pieces: the byte <-> printable-character table of GPT-2's
// bytes_to_unicode(), and its pre-tokenizer regex (and Llama-3's, below)
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// matched by hand (leftmost alternative wins, as in a backtracking engine).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace squeeze {

// bytes_to_unicode(): byte b -> code point of its printable stand-in.
const std::array<uint32_t, 256>& ByteToUnicode();

// The inverse: code point -> byte, -1 when the code point stands for no byte.
int UnicodeToByte(uint32_t cp);

// `bytes` spelled with the stand-in characters (UTF-8).
std::string BytesToByteLevel(absl::string_view bytes);

// Splits `text` (UTF-8; invalid bytes count as characters of no class) into
// the consecutive matches of the GPT-2 pattern. The pieces concatenate to
// `text`.
std::vector<absl::string_view> SplitGpt2(absl::string_view text);

// The same for the pattern of Llama-3 (max_digits 3) and Qwen2 (max_digits 1):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// ((?i:...) is ASCII case-insensitive, as the JS reference rewrites it.)
std::vector<absl::string_view> SplitLlama3(absl::string_view text, int max_digits);

// The Split pre-tokenizer regexes that SplitLlama3 implements, as they appear
// in tokenizer.json; MaxDigitsOfSplitPattern gives max_digits, or 0 when
// `pattern` is none of them.
int MaxDigitsOfSplitPattern(absl::string_view pattern);

}  // namespace squeeze
