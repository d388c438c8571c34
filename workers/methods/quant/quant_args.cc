#include "workers/methods/quant/quant_args.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace squeeze {

absl::string_view QuantStrategyName(QuantStrategy s) {
  switch (s) {
    case QuantStrategy::kTensor: return "tensor";
    case QuantStrategy::kChannel: return "channel";
    case QuantStrategy::kGroup: return "group";
  }
  return "?";
}

absl::StatusOr<QuantStrategy> ParseQuantStrategy(absl::string_view name) {
  if (name == "tensor") return QuantStrategy::kTensor;
  if (name == "channel") return QuantStrategy::kChannel;
  if (name == "group") return QuantStrategy::kGroup;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown strategy \"", name, "\" (expected one of tensor, channel, group)"));
}

absl::string_view QuantObserverName(QuantObserver o) {
  return o == QuantObserver::kMse ? "mse" : "minmax";
}

absl::StatusOr<QuantObserver> ParseQuantObserver(absl::string_view name) {
  if (name == "minmax") return QuantObserver::kMinMax;
  if (name == "mse") return QuantObserver::kMse;
  return absl::InvalidArgumentError(absl::StrCat("unknown observer \"", name, "\" (expected minmax or mse)"));
}

int64_t WeightQuantArgs::EffectiveGroupSize(int64_t in) const {
  return strategy == QuantStrategy::kGroup ? std::min<int64_t>(group_size, in) : in;
}

int64_t WeightQuantArgs::GroupsPerRow(int64_t in) const {
  const int64_t g = EffectiveGroupSize(in);
  return g <= 0 ? 0 : (in + g - 1) / g;
}

absl::Status WeightQuantArgs::Validate() const {
  if (num_bits < 2 || num_bits > 8) {
    return absl::InvalidArgumentError(absl::StrCat("num_bits ", num_bits, " is outside 2..8"));
  }
  if (strategy == QuantStrategy::kGroup && group_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("group_size ", group_size, " must be positive for strategy group"));
  }
  return absl::OkStatus();
}

std::string WeightQuantArgs::ShortName() const {
  std::string s = absl::StrCat("w", num_bits, symmetric ? "_sym" : "_asym");
  switch (strategy) {
    case QuantStrategy::kTensor: return s + "_tensor";
    case QuantStrategy::kChannel: return s + "_channel";
    case QuantStrategy::kGroup: return absl::StrCat(s, "_g", group_size);
  }
  return s;
}

absl::StatusOr<WeightQuantArgs> WeightOnlySchemePreset(absl::string_view scheme) {
  WeightQuantArgs a;
  if (scheme == "W4A16") {
    a.num_bits = 4; a.symmetric = true; a.strategy = QuantStrategy::kGroup; a.group_size = 128;
    return a;
  }
  if (scheme == "W4A16_ASYM") {
    a.num_bits = 4; a.symmetric = false; a.strategy = QuantStrategy::kGroup; a.group_size = 128;
    return a;
  }
  if (scheme == "W8A16") {
    a.num_bits = 8; a.symmetric = true; a.strategy = QuantStrategy::kChannel; a.group_size = 0;
    return a;
  }
  if (scheme == "W8A8") {
    return absl::NotFoundError(
        "scheme W8A8 quantizes activations too (int8 per token): it is not a weight-only scheme");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown scheme \"", scheme, "\" (expected one of ", kKnownSchemes, ")"));
}

absl::StatusOr<SchemePreset> FindSchemePreset(absl::string_view scheme) {
  SchemePreset p;
  if (scheme == "W8A8") {
    p.weights.num_bits = 8;
    p.weights.symmetric = true;
    p.weights.strategy = QuantStrategy::kChannel;
    p.weights.group_size = 0;
    p.int8_token_activations = true;
    return p;
  }
  auto w = WeightOnlySchemePreset(scheme);
  if (!w.ok()) return w.status();
  p.weights = *w;
  return p;
}

}  // namespace squeeze
