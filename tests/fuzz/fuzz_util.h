// Helpers shared by the libFuzzer targets (tests/fuzz/*_fuzz.cc).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace squeeze::fuzz {

// A per-process scratch path under $TMPDIR (or /tmp) for readers that only
// take a path; the same path is rewritten by every input.
inline const std::string& ScratchPath(const char* suffix) {
  static const std::string path = [&] {
    const char* tmp = std::getenv("TMPDIR");
    return std::string(tmp && *tmp ? tmp : "/tmp") + "/squeeze_fuzz_" + std::to_string(::getpid()) + suffix;
  }();
  return path;
}

// Writes `data` to `path` (truncating). Aborts when the disk refuses: that is
// a harness failure, not a finding.
inline void WriteScratch(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  if (std::fclose(f) != 0) std::abort();
}

// A fixed text run through every tokenizer that loads: ASCII, spaces,
// digits, multi-byte UTF-8, an invalid byte and special-token look-alikes.
inline constexpr char kProbeText[] =
    "Once upon a time,  a cat sat.\n\t12345 \xC3\xA9t\xC3\xA9 \xE4\xB8\xAD\xF0\x9F\x98\x80 \xFF <s></s><unk>";

}  // namespace squeeze::fuzz
