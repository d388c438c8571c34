// StructuredPruningModifier: recipe adapter for
// workers/methods/prune/structured.h (LLM-Pruner / Wanda-sp style removal of
// whole attention head groups and MLP channels; the model becomes physically
// smaller and its artifact records the widths, hf_config.h).
//   pruning_ratio          fraction of each block's head groups and MLP
//                          channels removed, [0, 1) (default 0.2); rounded
//                          per block, at least one of each kept
//   head_pruning_ratio     overrides pruning_ratio for head groups
//   channel_pruning_ratio  overrides pruning_ratio for MLP channels
//   importance             "wanda" (default): sum |w|*||x||; "output":
//                          ||W[:,c]||*||x_c|| of o/down columns; "magnitude":
//                          sum |w| (no calibration). See structured.h.
//   targets / ignore       heads of a block are pruned only when its q, k, v
//                          and o_proj are all targeted, channels only when
//                          gate, up and down_proj are (defaults [Linear] /
//                          [lm_head]).
// Head groups respect GQA: a kv head goes together with its query heads.
// Needs calibration unless importance is "magnitude". Put it in its own stage
// (or last in its stage): modifiers after it in the same stage would see
// calibration statistics of the old widths.
// Reports per changed module: "out_features", "in_features",
// "params_before", "params_after", "removed_fraction" (of the module's
// parameters), "bytes_before", "bytes_after"; kind "dense_f32".
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "workers/engine/model/forward.h"
#include "workers/methods/prune/structured.h"
#include "workers/runner/modifier.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {
namespace {

struct StructuredOptions {
  double head_ratio = 0.2;
  double channel_ratio = 0.2;
  StructureImportance importance = StructureImportance::kWanda;
};

class StructuredPruningModifier final : public Modifier {
 public:
  StructuredPruningModifier(TargetMatcher matcher, StructuredOptions options)
      : matcher_(std::move(matcher)), options_(options) {}
  std::string type() const override { return "StructuredPruningModifier"; }
  const TargetMatcher& matcher() const override { return matcher_; }
  bool needs_calibration() const override { return options_.importance != StructureImportance::kMagnitude; }
  bool ends_calibration_pass() const override { return true; }  // widths change

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    if (ctx.layer < 0 || ctx.layer >= static_cast<int>(ctx.model->blocks.size())) return absl::OkStatus();  // lm_head
    bool targeted[kNumBlockLinears] = {};
    for (const LayerContext::Target& t : ctx.targets) {
      if (t.which >= 0 && t.which < kNumBlockLinears) targeted[t.which] = true;
    }
    const bool heads = targeted[0] && targeted[1] && targeted[2] && targeted[3];
    const bool channels = targeted[4] && targeted[5] && targeted[6];
    if (!heads && !channels) return absl::OkStatus();
    TransformerBlock& b = ctx.model->blocks[ctx.layer];
    const int hd = ctx.model->config.head_dim;

    BlockInputNorms norms;
    if (needs_calibration()) {
      if (ctx.inputs == nullptr) return Fail("no calibration inputs for this layer");
      auto norm_of = [&](BlockLinear w, std::vector<double>* dst) -> absl::Status {
        const ActivationStats* st = ctx.inputs->stats[static_cast<int>(w)];
        if (st == nullptr) return Fail(absl::StrCat("no calibration statistics of ", BlockLinearSuffix(w), "'s input"));
        *dst = st->ChannelNorms();
        return absl::OkStatus();
      };
      if (heads) {
        if (auto s = norm_of(BlockLinear::kQ, &norms.attn_in); !s.ok()) return s;
        if (auto s = norm_of(BlockLinear::kO, &norms.attn_out); !s.ok()) return s;
      }
      if (channels) {
        if (auto s = norm_of(BlockLinear::kGate, &norms.mlp_in); !s.ok()) return s;
        if (auto s = norm_of(BlockLinear::kDown, &norms.mlp_hidden); !s.ok()) return s;
      }
    }

    // Before: the module shapes and bytes, for the reports.
    std::vector<LinearSlot> slots = ctx.model->BlockLinears(ctx.layer);
    struct Before {
      int64_t params = 0, bytes = 0;
    };
    std::vector<Before> before(slots.size());
    for (size_t i = 0; i < slots.size(); ++i) {
      const LinearLayer& l = **slots[i].slot;
      before[i] = {l.in_features() * l.out_features() + static_cast<int64_t>(l.bias().size()), l.StorageBytes()};
    }
    int removed_groups = 0, removed_channels = 0;
    if (heads) {
      auto scores = HeadGroupImportance(b, hd, options_.importance, norms);
      if (!scores.ok()) return Fail(scores.status().message());
      const std::vector<int> drop =
          LowestScored(*scores, StructuresToRemove(options_.head_ratio, static_cast<int>(scores->size())));
      if (auto s = RemoveHeadGroups(b, hd, drop); !s.ok()) return Fail(s.message());
      removed_groups = static_cast<int>(drop.size());
    }
    if (channels) {
      auto scores = ChannelImportance(b, options_.importance, norms);
      if (!scores.ok()) return Fail(scores.status().message());
      const std::vector<int> drop =
          LowestScored(*scores, StructuresToRemove(options_.channel_ratio, static_cast<int>(scores->size())));
      if (auto s = RemoveChannels(b, drop); !s.ok()) return Fail(s.message());
      removed_channels = static_cast<int>(drop.size());
    }
    for (size_t i = 0; i < slots.size(); ++i) {
      const bool changed = i < 4 ? heads && removed_groups > 0 : channels && removed_channels > 0;
      if (!changed) continue;
      const LinearLayer& l = **slots[i].slot;  // the slot now holds the narrower layer
      ModuleReport r;
      r.module = slots[i].name;
      r.modifier = type();
      r.kind = l.kind();
      const int64_t params = l.in_features() * l.out_features() + static_cast<int64_t>(l.bias().size());
      r.metrics["out_features"] = static_cast<double>(l.out_features());
      r.metrics["in_features"] = static_cast<double>(l.in_features());
      r.metrics["params_before"] = static_cast<double>(before[i].params);
      r.metrics["params_after"] = static_cast<double>(params);
      r.metrics["removed_fraction"] =
          before[i].params > 0 ? 1.0 - static_cast<double>(params) / static_cast<double>(before[i].params) : 0.0;
      r.metrics["bytes_before"] = static_cast<double>(before[i].bytes);
      r.metrics["bytes_after"] = static_cast<double>(l.StorageBytes());
      r.metrics[i < 4 ? "removed_head_groups" : "removed_channels"] =
          static_cast<double>(i < 4 ? removed_groups : removed_channels);
      reports->push_back(std::move(r));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Fail(absl::string_view message) const {
    return absl::FailedPreconditionError(absl::StrCat(type(), ": ", message));
  }

  TargetMatcher matcher_;
  StructuredOptions options_;
};

absl::StatusOr<double> Ratio(const ModifierArgs& args, const std::string& key, double def) {
  auto v = args.GetNumber(key, def);
  if (!v.ok()) return v.status();
  if (!(*v >= 0.0 && *v < 1.0)) return args.Error(key, absl::StrCat(*v, " is outside [0, 1)"));
  return *v;
}

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  StructuredOptions o;
  auto ratio = Ratio(args, "pruning_ratio", 0.2);
  if (!ratio.ok()) return ratio.status();
  auto hr = Ratio(args, "head_pruning_ratio", *ratio);
  if (!hr.ok()) return hr.status();
  auto cr = Ratio(args, "channel_pruning_ratio", *ratio);
  if (!cr.ok()) return cr.status();
  o.head_ratio = *hr;
  o.channel_ratio = *cr;
  auto imp = args.GetString("importance", "wanda");
  if (!imp.ok()) return imp.status();
  if (*imp == "wanda") {
    o.importance = StructureImportance::kWanda;
  } else if (*imp == "output") {
    o.importance = StructureImportance::kOutput;
  } else if (*imp == "magnitude") {
    o.importance = StructureImportance::kMagnitude;
  } else {
    return args.Error("importance", absl::StrCat("unknown value \"", *imp, "\" (expected wanda, output or magnitude)"));
  }
  auto matcher = args.GetMatcher();
  if (!matcher.ok()) return matcher.status();
  return std::unique_ptr<Modifier>(std::make_unique<StructuredPruningModifier>(std::move(*matcher), o));
}

}  // namespace

void RegisterStructuredPruningModifier(ModifierRegistry& registry) {
  registry.Register({"StructuredPruningModifier",
                     "remove whole attention head groups (GQA-aware) and MLP channels of lowest importance; "
                     "the model becomes smaller",
                     {{"pruning_ratio", ArgType::kNumber, "fraction of head groups and channels removed per layer, [0, 1); default 0.2"},
                      {"head_pruning_ratio", ArgType::kNumber, "overrides pruning_ratio for head groups"},
                      {"channel_pruning_ratio", ArgType::kNumber, "overrides pruning_ratio for MLP channels"},
                      {"importance", ArgType::kString, "\"wanda\" (default), \"output\" or \"magnitude\""},
                      {"targets", ArgType::kStringList, "modules (default [Linear])"},
                      {"ignore", ArgType::kStringList, "modules to skip (default [lm_head])"}},
                     Create});
}

}  // namespace squeeze
