// GPTQModifier: recipe adapter for workers/methods/quant/gptq.h, in
// llm-compressor's vocabulary.
//   scheme / config_groups / targets / ignore   as QuantizationModifier
//       (quant_scheme_args.h); a group's weights may also carry `actorder`
//   block_size       columns per lazy-update block (default 128)
//   dampening_frac   fraction of mean(diag H) added to diag H (default 0.01)
//   actorder         null / false (input order), "static" (= "weight"),
//                    "group" (= "dynamic"); compressed-tensors'
//                    ActivationOrdering. Default: static, as llm-compressor.
//                    A group's weights.actorder, when given, wins.
// Needs calibration data with X^T X; H = 2 X^T X / n for each linear input.
// Output: a PackedIntLinear (the same packed format as RTN; act-order
// "group" with group strategy adds weight_g_idx); scheme W8A8 (or int8
// input_activations) gives a W8A8Linear with GPTQ's int8 codes (act-order
// "group" is then the same as "static": per-channel scales have no groups).
// weights.observer: minmax or mse (quant_grid.h).
// Per-module figures: rel_error, max_abs_error (weights), output_rel_error
// (||(W - W_hat) X^T|| / ||W X^T|| on the calibration inputs),
// rtn_output_rel_error (the same for RTN at the same scheme, for
// comparison), gptq_loss (gptq.h), dead_columns, damp, bits, bytes.
// Device: on the run's device (RunOptions::device); with cuda, GPTQ runs on
// the GPU (methods/quant/gptq_device.h) and a module that falls back to the
// CPU sends a progress event (unit "device") saying why.
#include <cmath>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "workers/methods/quant/gptq.h"
#include "workers/methods/quant/gptq_device.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/rtn.h"
#include "workers/methods/quant/w8a8_linear.h"
#include "workers/runner/modifier_registry.h"
#include "workers/runner/quant_module_report.h"
#include "workers/runner/quant_scheme_args.h"

namespace squeeze {
namespace {

using nlohmann::json;

class GptqModifier final : public Modifier {
 public:
  // options[i] goes with scheme.groups[i].
  GptqModifier(QuantScheme scheme, std::vector<GptqOptions> options)
      : scheme_(std::move(scheme)), options_(std::move(options)) {}
  std::string type() const override { return "GPTQModifier"; }
  const TargetMatcher& matcher() const override { return scheme_.any; }
  bool needs_calibration() const override { return true; }
  bool needs_xtx() const override { return true; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    for (LayerContext::Target& t : ctx.targets) {
      const int g = scheme_.Find(t.slot.name);
      if (g < 0) continue;
      const GptqOptions& options = options_[g];
      const ActivationStats* stats =
          (ctx.inputs != nullptr && t.which >= 0 && t.which < 7) ? ctx.inputs->stats[t.which] : nullptr;
      if (stats == nullptr) {
        return absl::FailedPreconditionError(absl::StrCat(
            "GPTQModifier: ", t.slot.name, ": no calibration inputs for this module (add it to ignore)"));
      }
      auto h = GptqHessian(*stats);
      if (!h.ok()) return absl::FailedPreconditionError(absl::StrCat("GPTQModifier: ", t.slot.name, ": ", h.status().message()));
      std::unique_ptr<LinearLayer>& slot = *t.slot.slot;
      const MatrixRM w = slot->DenseWeight();
      std::vector<float> bias(slot->bias().begin(), slot->bias().end());
      ThreadPool& pool = ctx.pool != nullptr ? *ctx.pool : ThreadPool::Default();
      // On the run's device (cuda: gptq_device.h; else, or when the layer
      // is not supported there, the CPU path with the reason recorded).
      const Device device = ctx.device != nullptr ? *ctx.device : CpuDevice();
      GptqDeviceInfo where;
      auto q = QuantizeGptqOnDevice(w, *h, options, device, std::move(bias), pool, &where);
      if (device.is_cuda()) {
        if (where.ran_on == DeviceKind::kCuda) {
          if (ctx.device_usage != nullptr) ctx.device_usage->RecordGpu();
        } else if (!where.fallback.empty()) {
          if (ctx.device_usage != nullptr) ctx.device_usage->RecordFallback(t.slot.name, where.fallback);
          if (ctx.progress) {
            ctx.progress("device", 0, 0, absl::StrCat("GPTQModifier: ", t.slot.name, ": ran on the CPU: ", where.fallback),
                         {});
          }
        }
      }
      if (!q.ok()) {
        return absl::Status(q.status().code(), absl::StrCat("GPTQModifier: ", t.slot.name, ": ", q.status().message()));
      }
      const MatrixRM w_hat = q->layer->DenseWeight();
      std::unique_ptr<LinearLayer> layer = std::move(q->layer);
      if (scheme_.groups[g].int8_token_activations) {
        auto w8 = W8A8Linear::FromPacked(static_cast<const PackedIntLinear&>(*layer));
        if (!w8.ok()) return absl::InvalidArgumentError(absl::StrCat("GPTQModifier: ", t.slot.name, ": ", w8.status().message()));
        layer = std::move(*w8);
      }
      ModuleReport r = InstallQuantized(type(), t.slot.name, w, w_hat, std::move(layer), slot);
      r.metrics["output_rel_error"] = RelativeOutputError(w, w_hat, stats->xtx());
      auto rtn = QuantizeRtn(w, options.quant);
      if (rtn.ok()) r.metrics["rtn_output_rel_error"] = RelativeOutputError(w, (*rtn)->DenseWeight(), stats->xtx());
      r.metrics["gptq_loss"] = q->loss;
      r.metrics["dead_columns"] = static_cast<double>(q->dead_columns);
      r.metrics["damp"] = q->damp;
      reports->push_back(std::move(r));
    }
    return absl::OkStatus();
  }

 private:
  QuantScheme scheme_;
  std::vector<GptqOptions> options_;
};

// actorder as YAML: null / false = none; a string = a compressed-tensors name.
absl::StatusOr<ActOrder> ParseActOrderValue(const json& v, const std::string& path) {
  if (v.is_null() || (v.is_boolean() && !v.get<bool>())) return ActOrder::kNone;
  if (!v.is_string()) {
    return RecipeFieldError(path, "expected null, false or one of static, weight, group, dynamic");
  }
  auto a = ParseActOrder(v.get<std::string>());
  if (!a.ok()) return RecipeFieldError(path, std::string(a.status().message()));
  return *a;
}

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  GptqOptions base;
  auto block = args.GetInt("block_size", 128);
  if (!block.ok()) return block.status();
  if (*block <= 0) return args.Error("block_size", absl::StrCat(*block, " must be positive"));
  base.block_size = *block;
  auto damp = args.GetNumber("dampening_frac", 0.01);
  if (!damp.ok()) return damp.status();
  if (!(*damp >= 0.0) || !std::isfinite(*damp)) return args.Error("dampening_frac", absl::StrCat(*damp, " must be >= 0"));
  base.dampening_frac = *damp;
  base.actorder = ActOrder::kStatic;  // llm-compressor's default
  if (args.json().contains("actorder")) {
    auto o = ParseActOrderValue(args.json().at("actorder"), absl::StrCat("", args.path(), ".actorder"));
    if (!o.ok()) return o.status();
    base.actorder = *o;
  }

  // A group's weights.actorder, when given, wins over the modifier's.
  std::vector<std::optional<ActOrder>> group_orders;
  QuantSchemeSpec spec;
  spec.allow_mse_observer = true;
  spec.observer_error = "expected minmax or mse";
  spec.allow_input_activations = true;
  spec.input_activations_error = "";
  spec.actorder = [&group_orders](size_t group, const json& v, const std::string& path) {
    auto o = ParseActOrderValue(v, path);
    if (!o.ok()) return o.status();
    if (group_orders.size() <= group) group_orders.resize(group + 1);
    group_orders[group] = *o;
    return absl::OkStatus();
  };
  auto scheme = ParseQuantScheme(args, spec);
  if (!scheme.ok()) return scheme.status();
  std::vector<GptqOptions> options;
  for (size_t i = 0; i < scheme->groups.size(); ++i) {
    GptqOptions o = base;
    o.quant = scheme->groups[i].weights;
    if (i < group_orders.size() && group_orders[i].has_value()) o.actorder = *group_orders[i];
    options.push_back(o);
  }
  return std::unique_ptr<Modifier>(std::make_unique<GptqModifier>(std::move(*scheme), std::move(options)));
}

}  // namespace

void RegisterGptqModifier(ModifierRegistry& registry) {
  registry.Register({"GPTQModifier",
                     "GPTQ weight quantization (Hessian-aware error feedback) into packed integers",
                     QuantSchemeArgSpecs(
                         "W4A16, W4A16_ASYM, W8A16, W8A8",
                         {{"block_size", ArgType::kInt, "columns per lazy-update block (default 128)"},
                          {"dampening_frac", ArgType::kNumber, "fraction of mean diag(H) added to diag(H) (default 0.01)"},
                          {"actorder", ArgType::kAny, "null/false, static (weight), group (dynamic); default static"}}),
                     Create});
}

}  // namespace squeeze
