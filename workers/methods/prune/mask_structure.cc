#include "workers/methods/prune/mask_structure.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace squeeze {

std::string MaskStructure::ToString() const { return absl::StrCat(n, ":", m); }

absl::StatusOr<MaskStructure> ParseMaskStructure(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  MaskStructure s;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &s.n) || !absl::SimpleAtoi(parts[1], &s.m)) {
    return absl::InvalidArgumentError(
        absl::StrCat("mask structure \"", text, "\" is not \"N:M\" (e.g. \"2:4\") or \"0:0\""));
  }
  if (s.n == 0 && s.m == 0) return s;
  if (s.n <= 0 || s.m <= s.n || s.m > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("mask structure \"", text, "\" needs 0 < N < M <= 64 (or \"0:0\" for unstructured)"));
  }
  return s;
}

}  // namespace squeeze
