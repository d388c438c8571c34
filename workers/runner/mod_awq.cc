// AWQModifier: recipe adapter for workers/methods/quant/awq.h (activation-
// aware scale search through the RMSNorms / preceding linears, then weight
// clipping, then round-to-nearest into packed integers).
//   scheme / config_groups / targets / ignore   as QuantizationModifier
//                    (quant_scheme_args.h)
//   duo_scaling      s = x^a / w^(1-a) (default true, as llm-compressor) or x^a
//   apply_clip       the clipping search (default true; q/k are never
//                    clipped, as in the AWQ reference)
//   quantize         true (default): round-to-nearest into packed integers
//                    at the end. false (our extension): scaling and clipping
//                    only, the layers stay dense (W diag(s), clipped), for
//                    stacking with a quantizing modifier in a LATER stage,
//                    as llm-compressor's [AWQModifier, GPTQModifier]: that
//                    stage re-calibrates through the scaled model, so GPTQ's
//                    Hessian is the one of the scaled inputs.
// A smoothing group is scaled only when every linear in it (and the producing
// linear for v -> o / up -> down) is quantized by this modifier.
// Needs calibration inputs with X^T X (the exact output loss of the search).
// Per-module figures: awq_ratio (the chosen alpha; absent when the module's
// input was not scaled), output_rel_error (||(W - W_hat) X^T|| / ||W X^T|| on
// the calibration inputs), rtn_output_rel_error (the same for plain RTN of
// the original weight), plus InstallQuantized's figures (rel_error is
// measured against the scaled weight W diag(s)).
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/methods/quant/awq.h"
#include "workers/methods/quant/gptq.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/rtn.h"
#include "workers/runner/modifier_registry.h"
#include "workers/runner/quant_module_report.h"
#include "workers/runner/quant_scheme_args.h"

namespace squeeze {
namespace {

class AwqModifier final : public Modifier {
 public:
  AwqModifier(QuantScheme scheme, AwqOptions options, bool quantize)
      : scheme_(std::move(scheme)), options_(options), options_quantize_(quantize) {}
  std::string type() const override { return "AWQModifier"; }
  const TargetMatcher& matcher() const override { return scheme_.any; }
  bool needs_calibration() const override { return true; }
  bool needs_xtx() const override { return true; }
  // Scaling only: the block's inputs change, so a calibrated quantizer after
  // it needs statistics of the scaled model.
  bool ends_calibration_pass() const override { return !options_quantize_; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    if (ctx.model == nullptr || ctx.layer < 0 || ctx.layer >= static_cast<int>(ctx.model->blocks.size()) ||
        ctx.inputs == nullptr) {
      return absl::FailedPreconditionError("AWQModifier: applies to calibrated transformer blocks only");
    }
    std::array<const WeightQuantArgs*, 7> args{};
    std::array<const Eigen::MatrixXd*, 7> h{};
    std::array<std::vector<double>, 7> x_mag;
    std::array<MatrixRM, 7> w0;
    for (const LayerContext::Target& t : ctx.targets) {
      const int g = scheme_.Find(t.slot.name);
      if (g < 0 || t.which < 0 || t.which >= 7) continue;
      const ActivationStats* st = ctx.inputs->stats[t.which];
      if (st == nullptr || !st->has_xtx() || st->count() == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("AWQModifier: ", t.slot.name, ": no calibration inputs for this module (add it to ignore)"));
      }
      args[t.which] = &scheme_.groups[g].weights;
      h[t.which] = &st->xtx();
      x_mag[t.which].resize(st->channels());
      for (int64_t c = 0; c < st->channels(); ++c) {
        x_mag[t.which][c] = std::sqrt(st->sum_sq()[c] / static_cast<double>(st->count()));
      }
      w0[t.which] = (*t.slot.slot)->DenseWeight();
    }
    auto res = ApplyAwqBlockScales(ctx.model->config, ctx.model->blocks[ctx.layer], args, h, x_mag, options_);
    if (!res.ok()) {
      return absl::Status(res.status().code(),
                          absl::StrCat("AWQModifier: layer ", ctx.layer, ": ", res.status().message()));
    }
    for (LayerContext::Target& t : ctx.targets) {
      if (t.which < 0 || t.which >= 7 || args[t.which] == nullptr) continue;
      const int i = t.which;
      const WeightQuantArgs& a = *args[i];
      std::unique_ptr<LinearLayer>& slot = *t.slot.slot;
      const MatrixRM w = slot->DenseWeight();  // W diag(s)
      const bool clip = options_.apply_clip && i != 0 && i != 1;  // never q / k
      const MatrixRM wc = clip ? AwqClipWeight(w, res->h[i], a, options_) : w;
      std::vector<float> bias(slot->bias().begin(), slot->bias().end());
      if (!options_quantize_) {
        ModuleReport r;
        r.module = t.slot.name;
        r.modifier = type();
        r.metrics["bytes_before"] = static_cast<double>(slot->StorageBytes());
        r.metrics["clip_rel_change"] = RelativeError(w, wc);
        slot = DenseLinear::FromMatrix(wc, std::move(bias));
        r.kind = slot->kind();
        r.metrics["bytes_after"] = static_cast<double>(slot->StorageBytes());
        if (res->scaled[i]) r.metrics["awq_ratio"] = res->search[i].ratio;
        r.metrics["clipped"] = clip ? 1.0 : 0.0;
        reports->push_back(std::move(r));
        continue;
      }
      auto q = QuantizeRtn(wc, a, std::move(bias));
      if (!q.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("AWQModifier: ", t.slot.name, ": ", q.status().message()));
      }
      const MatrixRM w_hat = (*q)->DenseWeight();
      ModuleReport r = InstallQuantized(type(), t.slot.name, w, w_hat, std::move(*q), slot);
      r.metrics["output_rel_error"] = RelativeOutputError(w, w_hat, res->h[i]);
      auto rtn = QuantizeRtn(w0[i], a);
      if (rtn.ok()) r.metrics["rtn_output_rel_error"] = RelativeOutputError(w0[i], (*rtn)->DenseWeight(), *h[i]);
      if (res->scaled[i]) r.metrics["awq_ratio"] = res->search[i].ratio;
      r.metrics["clipped"] = clip ? 1.0 : 0.0;
      reports->push_back(std::move(r));
    }
    return absl::OkStatus();
  }

 private:
  QuantScheme scheme_;
  AwqOptions options_;
  bool options_quantize_ = true;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  AwqOptions options;
  auto duo = args.GetBool("duo_scaling", true);
  if (!duo.ok()) return duo.status();
  options.duo_scaling = *duo;
  auto clip = args.GetBool("apply_clip", true);
  if (!clip.ok()) return clip.status();
  options.apply_clip = *clip;
  auto quantize = args.GetBool("quantize", true);
  if (!quantize.ok()) return quantize.status();
  QuantSchemeSpec spec;
  spec.observer_error = "only the minmax observer is implemented (AWQ does its own clipping search: apply_clip)";
  spec.input_activations_error = "AWQModifier quantizes weights only (use SmoothQuant for W8A8)";
  spec.actorder = [](size_t, const nlohmann::json& v, const std::string& path) {
    if (!v.is_null() && !(v.is_boolean() && !v.get<bool>())) {
      return RecipeFieldError(path, "actorder applies to GPTQModifier, not AWQModifier");
    }
    return absl::OkStatus();
  };
  auto scheme = ParseQuantScheme(args, spec);
  if (!scheme.ok()) return scheme.status();
  return std::unique_ptr<Modifier>(std::make_unique<AwqModifier>(std::move(*scheme), options, *quantize));
}

}  // namespace

void RegisterAwqModifier(ModifierRegistry& registry) {
  registry.Register({"AWQModifier",
                     "AWQ: activation-aware scale and clip search, then round-to-nearest into packed integers",
                     QuantSchemeArgSpecs("W4A16, W4A16_ASYM, W8A16",
                                         {{"duo_scaling", ArgType::kBool,
                                           "scale = x^a / w^(1-a) (true, default) or x^a (false)"},
                                          {"apply_clip", ArgType::kBool, "weight clipping search (default true)"},
                                          {"quantize", ArgType::kBool,
                                           "false: scale and clip only, quantize in a later stage (default true)"}}),
                     Create});
}

}  // namespace squeeze
