#include "workers/engine/tokenizer/byte_level.h"

#include <algorithm>

#include "workers/engine/tokenizer/unicode.h"

namespace squeeze {
namespace {

struct ByteTables {
  std::array<uint32_t, 256> to_cp;
  std::array<int, 512> from_cp;  // every stand-in is below U+0200
};

const ByteTables& Tables() {
  static const ByteTables t = [] {
    ByteTables r;
    std::array<bool, 256> printable{};
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    int n = 0;
    for (int b = 0; b < 256; ++b) r.to_cp[b] = printable[b] ? b : 256 + n++;
    r.from_cp.fill(-1);
    for (int b = 0; b < 256; ++b) r.from_cp[r.to_cp[b]] = b;
    return r;
  }();
  return t;
}

// One character of the text: its code point (-1 when invalid) and byte span.
struct Char {
  int32_t cp;
  size_t pos;
  int len;
};

bool IsOther(int32_t cp) { return !IsSpace(cp) && !IsLetter(cp) && !IsNumber(cp); }
bool IsCrLf(int32_t cp) { return cp == '\r' || cp == '\n'; }

std::vector<Char> DecodeChars(absl::string_view text) {
  std::vector<Char> chars;
  chars.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Char c = DecodeUtf8(text, pos);
    chars.push_back({c.cp, pos, c.len});
    pos += c.len;
  }
  return chars;
}

}  // namespace

const std::array<uint32_t, 256>& ByteToUnicode() { return Tables().to_cp; }

int UnicodeToByte(uint32_t cp) { return cp < 512 ? Tables().from_cp[cp] : -1; }

std::string BytesToByteLevel(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  const auto& to_cp = ByteToUnicode();
  for (unsigned char b : bytes) AppendUtf8(to_cp[b], &out);
  return out;
}

std::vector<absl::string_view> SplitGpt2(absl::string_view text) {
  const std::vector<Char> chars = DecodeChars(text);
  const size_t n = chars.size();
  const auto cp_at = [&](size_t i) -> int32_t { return i < n ? chars[i].cp : -2; };
  // Length in characters of the longest run of `pred` starting at i.
  const auto run = [&](size_t i, auto pred) {
    size_t j = i;
    while (j < n && pred(chars[j].cp)) ++j;
    return j - i;
  };
  std::vector<absl::string_view> out;
  size_t i = 0;
  while (i < n) {
    size_t len = 0;  // characters in this match
    // 's|'t|'re|'ve|'m|'ll|'d
    if (cp_at(i) == '\'') {
      const int32_t c1 = cp_at(i + 1), c2 = cp_at(i + 2);
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        len = 2;
      } else if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') ||
                 (c1 == 'l' && c2 == 'l')) {
        len = 3;
      }
    }
    const size_t sp = cp_at(i) == ' ' ? 1 : 0;  // the optional leading space
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: with the space first, then
    // without it (the space itself is \s, so never L/N/other).
    // (Trying without the space cannot help: the class would have to match
    // ' ', which is \s.)
    for (auto pred : {&IsLetter, &IsNumber, &IsOther}) {
      if (len) break;
      if (const size_t r = run(i + sp, pred)) len = sp + r;
    }
    if (!len) {
      // \s+(?!\S): the whitespace run, minus its last character when a
      // non-space follows (and at least one character remains); else \s+.
      const size_t r = run(i, &IsSpace);
      if (r) {
        len = (i + r < n && r > 1) ? r - 1 : r;
      } else {
        len = 1;  // unreachable: every character is \s, L, N or other
      }
    }
    const size_t begin = chars[i].pos;
    const size_t end = chars[i + len - 1].pos + chars[i + len - 1].len;
    out.push_back(text.substr(begin, end - begin));
    i += len;
  }
  return out;
}

std::vector<absl::string_view> SplitLlama3(absl::string_view text, int max_digits) {
  const std::vector<Char> chars = DecodeChars(text);
  const size_t n = chars.size();
  const auto cp_at = [&](size_t i) -> int32_t { return i < n ? chars[i].cp : -2; };
  const auto lower = [](int32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; };
  const auto run = [&](size_t i, auto pred) {
    size_t j = i;
    while (j < n && pred(chars[j].cp)) ++j;
    return j - i;
  };
  std::vector<absl::string_view> out;
  size_t i = 0;
  while (i < n) {
    size_t len = 0;  // characters in this match
    const int32_t c = cp_at(i);
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (c == '\'') {
      const int32_t c1 = lower(cp_at(i + 1)), c2 = lower(cp_at(i + 2));
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        len = 2;
      } else if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') ||
                 (c1 == 'l' && c2 == 'l')) {
        len = 3;
      }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!len) {
      if (IsLetter(c)) {
        len = run(i, &IsLetter);
      } else if (!IsCrLf(c) && !IsNumber(c) && IsLetter(cp_at(i + 1))) {
        len = 1 + run(i + 1, &IsLetter);
      }
    }
    // \p{N}{1,max_digits}
    if (!len && IsNumber(c)) len = std::min<size_t>(run(i, &IsNumber), max_digits);
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    if (!len) {
      const size_t sp = c == ' ' ? 1 : 0;
      if (const size_t r = run(i + sp, &IsOther)) {
        len = sp + r;
        len += run(i + len, &IsCrLf);
      }
    }
    if (!len) {
      const size_t r = run(i, &IsSpace);
      // \s*[\r\n]+: up to the last CR/LF of the white space run.
      for (size_t k = r; k > 0 && !len; --k) {
        if (IsCrLf(chars[i + k - 1].cp)) len = k;
      }
      // \s+(?!\S) | \s+
      if (!len && r) len = (i + r < n && r > 1) ? r - 1 : r;
      if (!len) len = 1;  // unreachable: every character is \s, L, N or other
    }
    const size_t begin = chars[i].pos;
    const size_t end = chars[i + len - 1].pos + chars[i + len - 1].len;
    out.push_back(text.substr(begin, end - begin));
    i += len;
  }
  return out;
}

int MaxDigitsOfSplitPattern(absl::string_view pattern) {
  static constexpr absl::string_view kHead =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|";
  static constexpr absl::string_view kTail =
      "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  if (pattern.size() < kHead.size() + kTail.size() ||
      pattern.substr(0, kHead.size()) != kHead ||
      pattern.substr(pattern.size() - kTail.size()) != kTail) {
    return 0;
  }
  const absl::string_view digits =
      pattern.substr(kHead.size(), pattern.size() - kHead.size() - kTail.size());
  if (digits == "\\p{N}{1,3}") return 3;  // Llama-3
  if (digits == "\\p{N}") return 1;       // Qwen2
  return 0;
}

}  // namespace squeeze
