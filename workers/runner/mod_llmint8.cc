// LLMInt8Modifier: LLM.int8() (Dettmers et al. 2022) as a recipe modifier
// (our name: llm-compressor has no LLM.int8 modifier; bitsandbytes calls the
// threshold `llm_int8_threshold`). Each targeted linear becomes an
// LLMInt8Linear (workers/methods/quant/llm_int8_linear.h): int8 weights with
// one scale per output row (vector-wise), per-token int8 activations, and the
// outlier input columns of each batch (|x| >= threshold in any row) computed
// in fp32.
//   threshold   outlier magnitude (default 6.0, the paper's)
//   targets / ignore   defaults [Linear] / [lm_head]
// No calibration: outliers are found at run time, per batch.
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/methods/quant/llm_int8_linear.h"
#include "workers/runner/modifier_registry.h"
#include "workers/runner/quant_module_report.h"

namespace squeeze {
namespace {

class LLMInt8Modifier final : public Modifier {
 public:
  LLMInt8Modifier(TargetMatcher matcher, float threshold) : matcher_(std::move(matcher)), threshold_(threshold) {}
  std::string type() const override { return "LLMInt8Modifier"; }
  const TargetMatcher& matcher() const override { return matcher_; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    for (LayerContext::Target& t : ctx.targets) {
      std::unique_ptr<LinearLayer>& slot = *t.slot.slot;
      const MatrixRM w = slot->DenseWeight();
      auto q = Int8Weight::Quantize(w, std::vector<float>(slot->bias().begin(), slot->bias().end()));
      if (!q.ok()) return absl::InvalidArgumentError(absl::StrCat("LLMInt8Modifier: ", t.slot.name, ": ", q.status().message()));
      auto layer = LLMInt8Linear::Create(std::move(*q), threshold_);
      if (!layer.ok()) return absl::InvalidArgumentError(absl::StrCat("LLMInt8Modifier: ", t.slot.name, ": ", layer.status().message()));
      const MatrixRM w_hat = (*layer)->DenseWeight();
      ModuleReport r = InstallQuantized(type(), t.slot.name, w, w_hat, std::move(*layer), slot);
      r.metrics["threshold"] = threshold_;
      reports->push_back(std::move(r));
    }
    return absl::OkStatus();
  }

 private:
  TargetMatcher matcher_;
  float threshold_;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  auto threshold = args.GetNumber("threshold", 6.0);
  if (!threshold.ok()) return threshold.status();
  if (!(*threshold > 0.0) || std::isnan(*threshold)) {
    return args.Error("threshold", absl::StrCat(*threshold, " must be > 0"));
  }
  auto matcher = args.GetMatcher();
  if (!matcher.ok()) return matcher.status();
  return std::unique_ptr<Modifier>(
      std::make_unique<LLMInt8Modifier>(std::move(*matcher), static_cast<float>(*threshold)));
}

}  // namespace

void RegisterLLMInt8Modifier(ModifierRegistry& registry) {
  registry.Register({"LLMInt8Modifier",
                     "LLM.int8(): vector-wise int8 weights and activations, outlier input columns in fp32",
                     {{"threshold", ArgType::kNumber, "outlier activation magnitude (default 6.0)"},
                      {"targets", ArgType::kStringList, "modules to quantize (default [Linear])"},
                      {"ignore", ArgType::kStringList, "modules to skip (default [lm_head])"}},
                     Create});
}

}  // namespace squeeze
