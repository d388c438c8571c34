// SmoothQuantModifier: recipe adapter for workers/methods/quant/smoothquant.h,
// in llm-compressor's vocabulary. Smoothing only, as llm-compressor: stack it
// with a quantizing modifier, e.g.
//   smooth_stage: {smooth_modifiers: {SmoothQuantModifier: {smoothing_strength: 0.5}}}
//   quant_stage:  {quant_modifiers: {QuantizationModifier: {scheme: W8A8}}}   (or GPTQModifier)
//   smoothing_strength  alpha in [0, 1] (default 0.5, the paper's)
//   mappings            llm-compressor's [[balance layers], smooth layer]
//                       list; supported: the RMSNorm -> q/k/v mapping
//                       (smooth layer matching input_layernorm, balance
//                       layers exactly q_proj, k_proj, v_proj) and the
//                       RMSNorm -> gate/up one (post_attention_layernorm;
//                       gate_proj, up_proj). Default: both.
//   ignore              modules left alone; a mapping with an ignored
//                       balance layer is skipped in that block.
// Needs calibration activation maxima (no X^T X). The scaled linears become
// DenseLinear and the norms change; the float model is unchanged.
// A calibrated quantizer (GPTQ) may follow in the same stage, as in
// llm-compressor recipes: ends_calibration_pass() makes RunRecipe run it as
// a stage of its own ("<stage>.2"), whose calibration goes through the
// smoothed model, so its Hessians are those of the smoothed inputs.
// Per-module figures: smooth_scale_min / smooth_scale_max, act_absmax_before
// (max_j a_j) and act_absmax_after (max_j a_j / s_j) of the shared input,
// act_outlier_ratio_before / _after (max_j over median_j of the channel
// maxima: how far the largest channel sticks out).
#include <algorithm>
#include <cmath>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "workers/methods/quant/smoothquant.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {
namespace {

using nlohmann::json;

constexpr int kBlockQ = 0, kBlockGate = 4;

double Median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

class SmoothQuantModifier final : public Modifier {
 public:
  SmoothQuantModifier(TargetMatcher matcher, std::array<bool, 2> enabled, double alpha)
      : matcher_(std::move(matcher)), enabled_(enabled), alpha_(alpha) {}
  std::string type() const override { return "SmoothQuantModifier"; }
  const TargetMatcher& matcher() const override { return matcher_; }
  bool needs_calibration() const override { return true; }
  bool ends_calibration_pass() const override { return true; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    if (ctx.model == nullptr || ctx.inputs == nullptr || ctx.layer < 0 ||
        ctx.layer >= static_cast<int>(ctx.model->blocks.size())) {
      return absl::FailedPreconditionError("SmoothQuantModifier: applies to calibrated transformer blocks only");
    }
    std::set<int> present;
    for (const LayerContext::Target& t : ctx.targets) present.insert(t.which);
    const std::array<std::vector<int>, 2> members = {std::vector<int>{0, 1, 2}, std::vector<int>{4, 5}};
    const std::array<int, 2> input = {kBlockQ, kBlockGate};
    std::array<const std::vector<float>*, 2> act{};
    for (int m = 0; m < 2; ++m) {
      if (!enabled_[m]) continue;
      bool all = true;
      for (int i : members[m]) all = all && present.count(i) > 0;
      if (!all) continue;
      const ActivationStats* st = ctx.inputs->stats[input[m]];
      if (st == nullptr || st->count() == 0) {
        return absl::FailedPreconditionError(absl::StrCat("SmoothQuantModifier: layer ", ctx.layer,
                                                          ": no calibration inputs"));
      }
      act[m] = &st->max_abs();
    }
    auto res = ApplySmoothQuantBlock(ctx.model->blocks[ctx.layer], act, alpha_);
    if (!res.ok()) {
      return absl::Status(res.status().code(),
                          absl::StrCat("SmoothQuantModifier: layer ", ctx.layer, ": ", res.status().message()));
    }
    for (int m = 0; m < 2; ++m) {
      if (!res->applied[m]) continue;
      const std::vector<float>& s = res->scales[m];
      const std::vector<float>& a = *act[m];
      std::vector<double> before(a.begin(), a.end()), after(a.size());
      for (size_t j = 0; j < a.size(); ++j) after[j] = static_cast<double>(a[j]) / s[j];
      const double mb = *std::max_element(before.begin(), before.end());
      const double ma = *std::max_element(after.begin(), after.end());
      const double medb = Median(before), meda = Median(after);
      for (const LayerContext::Target& t : ctx.targets) {
        if (std::find(members[m].begin(), members[m].end(), t.which) == members[m].end()) continue;
        ModuleReport r;
        r.module = t.slot.name;
        r.modifier = type();
        r.kind = (*t.slot.slot)->kind();
        r.metrics["smooth_scale_min"] = *std::min_element(s.begin(), s.end());
        r.metrics["smooth_scale_max"] = *std::max_element(s.begin(), s.end());
        r.metrics["act_absmax_before"] = mb;
        r.metrics["act_absmax_after"] = ma;
        if (medb > 0.0) r.metrics["act_outlier_ratio_before"] = mb / medb;
        if (meda > 0.0) r.metrics["act_outlier_ratio_after"] = ma / meda;
        r.metrics["bytes_before"] = r.metrics["bytes_after"] = static_cast<double>((*t.slot.slot)->StorageBytes());
        reports->push_back(std::move(r));
      }
    }
    return absl::OkStatus();
  }

 private:
  TargetMatcher matcher_;
  std::array<bool, 2> enabled_;
  double alpha_;
};

const std::array<const char*, 7> kSuffix = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                            "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                            "mlp.down_proj"};

// Parses one mapping [[balance...], smooth]; returns 0 (attn) or 1 (mlp).
absl::StatusOr<int> ParseMapping(const json& m, const std::string& path, std::vector<std::string>* balance_out) {
  const std::string shape = "expected [[balance layer patterns], smooth layer pattern]";
  if (!m.is_array() || m.size() != 2 || !m[0].is_array() || !m[1].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("recipe: ", path, ": ", shape));
  }
  std::vector<std::string> balance;
  for (const json& b : m[0]) {
    if (!b.is_string()) return absl::InvalidArgumentError(absl::StrCat("recipe: ", path, "[0]: ", shape));
    balance.push_back(b.get<std::string>());
  }
  auto smooth = TargetMatcher::Create({m[1].get<std::string>()}, {}, path + "[1]");
  if (!smooth.ok()) return smooth.status();
  const bool attn = smooth->Matches("model.layers.0.input_layernorm");
  const bool mlp = smooth->Matches("model.layers.0.post_attention_layernorm");
  if (attn == mlp) {
    return absl::InvalidArgumentError(absl::StrCat(
        "recipe: ", path, "[1]: the smooth layer must match exactly one of input_layernorm or "
        "post_attention_layernorm (the RMSNorms; other smooth layers are not supported)"));
  }
  auto bm = TargetMatcher::Create(balance, {}, path + "[0]");
  if (!bm.ok()) return bm.status();
  std::set<int> got;
  for (int i = 0; i < 7; ++i) {
    if (bm->Matches(absl::StrCat("model.layers.0.", kSuffix[i]))) got.insert(i);
  }
  const std::set<int> want = attn ? std::set<int>{0, 1, 2} : std::set<int>{4, 5};
  if (got != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        "recipe: ", path, "[0]: the balance layers of ", attn ? "input_layernorm" : "post_attention_layernorm",
        " must be exactly ", attn ? "q_proj, k_proj, v_proj" : "gate_proj, up_proj"));
  }
  balance_out->insert(balance_out->end(), balance.begin(), balance.end());
  return attn ? 0 : 1;
}

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  auto alpha = args.GetNumber("smoothing_strength", 0.5);
  if (!alpha.ok()) return alpha.status();
  if (!(*alpha >= 0.0 && *alpha <= 1.0)) return args.Error("smoothing_strength", absl::StrCat(*alpha, " is outside [0, 1]"));
  auto ignore = args.GetStringList("ignore", {"lm_head"});
  if (!ignore.ok()) return ignore.status();
  std::array<bool, 2> enabled = {true, true};
  std::vector<std::string> balance = {"re:.*self_attn\\.(q|k|v)_proj$", "re:.*mlp\\.(gate|up)_proj$"};
  if (args.Has("mappings")) {
    const json& m = args.json().at("mappings");
    if (!m.is_array() || m.empty()) return args.Error("mappings", "expected a non-empty list of mappings");
    enabled = {false, false};
    balance.clear();
    for (size_t i = 0; i < m.size(); ++i) {
      auto which = ParseMapping(m[i], absl::StrCat(args.path(), ".mappings[", i, "]"), &balance);
      if (!which.ok()) return which.status();
      if (enabled[*which]) return args.Error(absl::StrCat("mappings[", i, "]"), "the same RMSNorm is mapped twice");
      enabled[*which] = true;
    }
  }
  auto matcher = TargetMatcher::Create(balance, *ignore, args.path());
  if (!matcher.ok()) return matcher.status();
  return std::unique_ptr<Modifier>(std::make_unique<SmoothQuantModifier>(std::move(*matcher), enabled, *alpha));
}

}  // namespace

void RegisterSmoothQuantModifier(ModifierRegistry& registry) {
  registry.Register({"SmoothQuantModifier",
                     "SmoothQuant: per-channel scales s = max|x|^a / max|w|^(1-a) folded into the RMSNorms "
                     "(smoothing only; quantize with W8A8 in a later stage)",
                     {{"smoothing_strength", ArgType::kNumber, "alpha in [0, 1] (default 0.5)"},
                      {"mappings", ArgType::kAny, "[[balance layers], smooth layer] list (RMSNorm mappings only)"},
                      {"ignore", ArgType::kStringList, "modules to leave alone (default [lm_head])"}},
                     Create});
}

}  // namespace squeeze
