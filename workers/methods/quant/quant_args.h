// Weight-quantization arguments shared by every quantization method (RTN now;
// GPTQ / AWQ reuse them), in compressed-tensors' vocabulary.
//
// Integer grid (signed, the same for symmetric and asymmetric schemes):
//   q in [qmin, qmax] = [-2^(bits-1), 2^(bits-1) - 1]
//   dequantized w = (q - z) * s     (z == 0 when symmetric)
// Scales s are fp32, one per (row, group); zero points z are integers in the
// same grid, one per (row, group).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace squeeze {

enum class QuantStrategy {
  kTensor,   // one scale for the whole matrix
  kChannel,  // one scale per output row
  kGroup,    // one scale per `group_size` consecutive inputs of a row
};

absl::string_view QuantStrategyName(QuantStrategy s);  // "tensor" | "channel" | "group"
absl::StatusOr<QuantStrategy> ParseQuantStrategy(absl::string_view name);

// How the scale / zero point of a group is chosen (compressed-tensors'
// `observer`; quant_grid.h has the formulas).
enum class QuantObserver {
  kMinMax,  // "minmax": the group's range
  kMse,     // "mse": the shrunk range minimising ||w - Q(w)||^2 (grid search)
};
absl::string_view QuantObserverName(QuantObserver o);  // "minmax" | "mse"
absl::StatusOr<QuantObserver> ParseQuantObserver(absl::string_view name);

struct WeightQuantArgs {
  int num_bits = 4;       // 2..8
  bool symmetric = true;
  QuantStrategy strategy = QuantStrategy::kGroup;
  int group_size = 128;   // inputs per group (kGroup only); the last group of a row may be shorter
  // Not stored in packed layers (it only changes the scale values chosen).
  QuantObserver observer = QuantObserver::kMinMax;

  int qmin() const { return -(1 << (num_bits - 1)); }
  int qmax() const { return (1 << (num_bits - 1)) - 1; }
  // Number of scale groups per row for a row of `in` inputs.
  int64_t GroupsPerRow(int64_t in) const;
  // Inputs per group for a row of `in` inputs (in for tensor / channel).
  int64_t EffectiveGroupSize(int64_t in) const;
  absl::Status Validate() const;
  // "w4_sym_g128", "w8_sym_channel", ...: used in layer kind names.
  std::string ShortName() const;
};

// The preset schemes of llm-compressor that quantize weights only:
//   W4A16       4 bit, symmetric, group 128
//   W4A16_ASYM  4 bit, asymmetric, group 128
//   W8A16       8 bit, symmetric, per channel
// W8A8 also quantizes activations and is not a weight-only scheme: NotFound
// tells it apart from a name that is no scheme at all (InvalidArgument).
absl::StatusOr<WeightQuantArgs> WeightOnlySchemePreset(absl::string_view scheme);

// Every preset, activations included:
//   W8A8  weights 8 bit symmetric per channel, input activations int8
//         symmetric per token, dynamic (w8a8_linear.h)
// and the weight-only ones above (int8_token_activations false).
struct SchemePreset {
  WeightQuantArgs weights;
  bool int8_token_activations = false;
};
absl::StatusOr<SchemePreset> FindSchemePreset(absl::string_view scheme);
// Every scheme name the recipe language knows, for error messages.
inline constexpr absl::string_view kKnownSchemes = "W4A16, W4A16_ASYM, W8A16, W8A8";

}  // namespace squeeze
