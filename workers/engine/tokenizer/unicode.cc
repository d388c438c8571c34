#include "workers/engine/tokenizer/unicode.h"

#include <algorithm>

#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/unistr.h>

namespace squeeze {
namespace {

using unicode_internal::CodepointRange;

bool InRanges(int32_t cp, const CodepointRange* ranges, size_t n) {
  if (cp < 0) return false;
  const uint32_t c = static_cast<uint32_t>(cp);
  // First range whose last >= c.
  const CodepointRange* end = ranges + n;
  const CodepointRange* it = std::lower_bound(
      ranges, end, c, [](const CodepointRange& r, uint32_t v) { return r.last < v; });
  return it != end && it->first <= c;
}

}  // namespace

Utf8Char DecodeUtf8(absl::string_view s, size_t pos) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c0 = b(pos);
  if (c0 < 0x80) return {c0, 1};
  int len;
  uint32_t cp;
  uint32_t min;
  if ((c0 & 0xE0) == 0xC0) {
    len = 2, cp = c0 & 0x1F, min = 0x80;
  } else if ((c0 & 0xF0) == 0xE0) {
    len = 3, cp = c0 & 0x0F, min = 0x800;
  } else if ((c0 & 0xF8) == 0xF0) {
    len = 4, cp = c0 & 0x07, min = 0x10000;
  } else {
    return {-1, 1};
  }
  if (pos + len > s.size()) return {-1, 1};
  for (int i = 1; i < len; ++i) {
    const unsigned char c = b(pos + i);
    if ((c & 0xC0) != 0x80) return {-1, 1};
    cp = (cp << 6) | (c & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {-1, 1};
  return {static_cast<int32_t>(cp), len};
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsValidUtf8(absl::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Char c = DecodeUtf8(text, pos);
    if (c.cp < 0) return false;
    pos += c.len;
  }
  return true;
}

std::string NormalizeNfc(absl::string_view text) {
  bool ascii = true;
  for (unsigned char c : text) ascii = ascii && c < 0x80;
  if (ascii || !IsValidUtf8(text)) return std::string(text);  // ASCII is always NFC
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status) || nfc == nullptr) return std::string(text);
  const icu::UnicodeString in = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  const icu::UnicodeString out = nfc->normalize(in, status);
  if (U_FAILURE(status)) return std::string(text);
  std::string result;
  out.toUTF8String(result);
  return result;
}

bool IsLetter(int32_t cp) {
  return InRanges(cp, unicode_internal::kLetterRanges, unicode_internal::kLetterRangesCount);
}
bool IsNumber(int32_t cp) {
  return InRanges(cp, unicode_internal::kNumberRanges, unicode_internal::kNumberRangesCount);
}
bool IsSpace(int32_t cp) {
  return InRanges(cp, unicode_internal::kSpaceRanges, unicode_internal::kSpaceRangesCount);
}

}  // namespace squeeze
