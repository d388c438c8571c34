// Sparsity mask structures, as llm-compressor spells them: "0:0" is
// unstructured, "N:M" zeroes exactly N of every M consecutive weights along
// the input dimension of each row (e.g. "2:4": 50%, the Ampere pattern).
// Shared by every pruning method (magnitude now; Wanda / SparseGPT later).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace squeeze {

struct MaskStructure {
  int n = 0;  // zeros per group
  int m = 0;  // group length; 0 = unstructured
  bool unstructured() const { return m == 0; }
  double sparsity() const { return m == 0 ? 0.0 : static_cast<double>(n) / m; }
  std::string ToString() const;  // "0:0", "2:4"
};

// Parses "N:M" with 0 < N < M <= 64, or "0:0". InvalidArgument otherwise.
absl::StatusOr<MaskStructure> ParseMaskStructure(absl::string_view text);

}  // namespace squeeze
