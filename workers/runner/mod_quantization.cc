// QuantizationModifier (round-to-nearest weight quantization): recipe adapter
// for workers/methods/quant/rtn.h, in llm-compressor's vocabulary.
//   scheme         W4A16 | W4A16_ASYM | W8A16 (W8A8 is recognised but needs
//                  activation quantization, not implemented yet), with
//                  targets / ignore (defaults [Linear] / [lm_head]); or
//   config_groups  {<group name>: {targets: [...], weights: {num_bits, type:
//                  int, symmetric, strategy: tensor|channel|group, group_size,
//                  observer: minmax}, input_activations: null}}; the first
//                  group whose targets match a module quantizes it; `ignore`
//                  applies to all groups (parsed by quant_scheme_args.h).
// Output: a PackedIntLinear (real packed weights).
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/rtn.h"
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
      reports->push_back(InstallQuantized(type(), t.slot.name, w, w_hat, std::move(*q), slot));
    }
    return absl::OkStatus();
  }

 private:
  QuantScheme scheme_;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  QuantSchemeSpec spec;
  spec.observer_error = "only the minmax observer is implemented (MSE clipping search comes with issue 5)";
  spec.input_activations_error = "activation quantization (W8A8) is not implemented yet (SmoothQuant, issue 5)";
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
                     "round-to-nearest weight quantization into packed integers",
                     QuantSchemeArgSpecs("W4A16, W4A16_ASYM, W8A16 (W8A8: not yet)"),
                     Create});
}

}  // namespace squeeze
