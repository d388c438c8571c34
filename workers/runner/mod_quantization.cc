// QuantizationModifier (round-to-nearest weight quantization): recipe adapter
// for workers/methods/quant/rtn.h, in llm-compressor's vocabulary.
//   scheme         W4A16 | W4A16_ASYM | W8A16 | W8A8, with targets / ignore
//                  (defaults [Linear] / [lm_head]); or
//   config_groups  {<group name>: {targets: [...], weights: {num_bits, type:
//                  int, symmetric, strategy: tensor|channel|group, group_size,
//                  observer: minmax|mse}, input_activations: null | int8
//                  token dynamic}}; the first group whose targets match a
//                  module quantizes it; `ignore` applies to all groups
//                  (parsed by quant_scheme_args.h).
// observer: mse searches the clipping range per (row, group) (quant_grid.h).
// Output: a PackedIntLinear (real packed weights); with int8 input
// activations (W8A8) a W8A8Linear holding the same int8 codes and scales
// (w8a8_linear.h: per-token dynamic activation quantization in Forward).
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/rtn.h"
#include "workers/methods/quant/w8a8_linear.h"
#include "workers/runner/modifier_registry.h"
#include "workers/runner/quant_module_report.h"
#include "workers/runner/quant_scheme_args.h"

namespace squeeze {
namespace {

class QuantizationModifier final : public Modifier {
 public:
  explicit QuantizationModifier(QuantScheme scheme) : scheme_(std::move(scheme)) {}
  std::string type() const override { return "QuantizationModifier"; }
  const TargetMatcher& matcher() const override { return scheme_.any; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    for (LayerContext::Target& t : ctx.targets) {
      const int g = scheme_.Find(t.slot.name);
      if (g < 0) continue;
      std::unique_ptr<LinearLayer>& slot = *t.slot.slot;
      const MatrixRM w = slot->DenseWeight();
      std::vector<float> bias(slot->bias().begin(), slot->bias().end());
      auto q = QuantizeRtn(w, scheme_.groups[g].weights, std::move(bias));
      if (!q.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("QuantizationModifier: ", t.slot.name, ": ", q.status().message()));
      }
      const MatrixRM w_hat = (*q)->DenseWeight();
      std::unique_ptr<LinearLayer> layer = std::move(*q);
      if (scheme_.groups[g].int8_token_activations) {
        auto w8 = W8A8Linear::FromPacked(static_cast<const PackedIntLinear&>(*layer));
        if (!w8.ok()) {
          return absl::InvalidArgumentError(absl::StrCat("QuantizationModifier: ", t.slot.name, ": ", w8.status().message()));
        }
        layer = std::move(*w8);
      }
      reports->push_back(InstallQuantized(type(), t.slot.name, w, w_hat, std::move(layer), slot));
    }
    return absl::OkStatus();
  }

 private:
  QuantScheme scheme_;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  QuantSchemeSpec spec;
  spec.allow_mse_observer = true;
  spec.observer_error = "expected minmax or mse";
  spec.allow_input_activations = true;
  spec.input_activations_error = "";
  spec.actorder = [](size_t, const nlohmann::json& v, const std::string& path) {
    if (!v.is_null() && !(v.is_boolean() && !v.get<bool>())) {
      return RecipeFieldError(path, "actorder applies to GPTQModifier, not round-to-nearest");
    }
    return absl::OkStatus();
  };
  auto scheme = ParseQuantScheme(args, spec);
  if (!scheme.ok()) return scheme.status();
  return std::unique_ptr<Modifier>(std::make_unique<QuantizationModifier>(std::move(*scheme)));
}

}  // namespace

void RegisterQuantizationModifier(ModifierRegistry& registry) {
  registry.Register({"QuantizationModifier",
                     "round-to-nearest weight quantization into packed integers (W8A8: int8 weights and per-token int8 activations)",
                     QuantSchemeArgSpecs("W4A16, W4A16_ASYM, W8A16, W8A8"),
                     Create});
}

}  // namespace squeeze
