#include "client/cli/packed_activations_flag.h"

#include "absl/strings/str_cat.h"

namespace squeeze::cli {

void AddPackedActivationsOption(ArgParser& p) {
  p.Option("packed-activations",
           "activations of packed int4/int8 layers: fp32 (exact dequantized product) or int8 "
           "(quantized per weight group on the fly, integer dot products, as llama.cpp; faster, "
           "slightly different numbers)",
           "fp32");
}

absl::StatusOr<PackedActivations> GetPackedActivations(const ArgParser& p) {
  auto a = ParsePackedActivations(p.Get("packed-activations"));
  if (!a.ok()) return absl::InvalidArgumentError(absl::StrCat("--packed-activations: ", a.status().message()));
  return *a;
}

int64_t ApplyPackedActivations(Model& model, PackedActivations a) { return SetPackedActivations(model, a); }

}  // namespace squeeze::cli
