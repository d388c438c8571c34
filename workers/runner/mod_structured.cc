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
//                          sum |w| (no calibration); "taylor": first-order
//                          Taylor |sum dL/dw * w| from one backward pass of
//                          the calibration set through the model as the
//                          stage starts (methods/prune/taylor.h; the scores
//                          are kept in the stage report under "prepared").
//                          See structured.h.
//   remove_layers          whole blocks removed when the stage starts, by
//                          block influence (ShortGPT cosine, methods/prune/
//                          layer_removal.h), lowest first (default 0). Needs
//                          calibration. The stage report's "layer_removal"
//                          lists them; the artifact's config.json key
//                          "squeeze_source_layers" gives the original index
//                          of every remaining block. With pruning_ratio 0
//                          only layers are removed.
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
#include "workers/methods/prune/layer_removal.h"
#include "workers/methods/prune/structured.h"
#include "workers/methods/prune/taylor.h"
#include "workers/runner/modifier.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {
namespace {

struct StructuredOptions {
  double head_ratio = 0.2;
  double channel_ratio = 0.2;
  StructureImportance importance = StructureImportance::kWanda;
  bool taylor = false;     // importance: taylor (then `importance` is unused)
  int remove_layers = 0;   // whole blocks removed by block influence
  bool prunes_structures() const { return head_ratio > 0.0 || channel_ratio > 0.0; }
  bool needs_norms() const { return prunes_structures() && !taylor && importance != StructureImportance::kMagnitude; }
};

class StructuredPruningModifier final : public Modifier {
 public:
  StructuredPruningModifier(TargetMatcher matcher, StructuredOptions options)
      : matcher_(std::move(matcher)), options_(options) {}
  std::string type() const override { return "StructuredPruningModifier"; }
  const TargetMatcher& matcher() const override { return matcher_; }
  bool needs_calibration() const override {
    return options_.needs_norms() || (options_.prunes_structures() && options_.taylor) || options_.remove_layers > 0;
  }
  bool ends_calibration_pass() const override { return true; }  // widths change

  absl::StatusOr<std::vector<int>> LayersToRemove(const Model& model, const std::vector<std::vector<int>>& calibration,
                                                  ThreadPool& pool, nlohmann::json* details) override {
    if (options_.remove_layers <= 0) return std::vector<int>();
    const int n = static_cast<int>(model.blocks.size());
    if (options_.remove_layers >= n) {
      return Fail(absl::StrCat("remove_layers ", options_.remove_layers, " would leave no layer of ", n));
    }
    auto bi = BlockInfluence(model, calibration, pool);
    if (!bi.ok()) return Fail(bi.status().message());
    (*details)["block_influence"] = *bi;
    return LowestScored(*bi, options_.remove_layers);
  }

  // Taylor: the scores of every block from one backward pass over the
  // calibration set (the model as the stage starts), kept so a resumed stage
  // prunes exactly the same structures.
  absl::StatusOr<nlohmann::json> PrepareStage(const Model& model, const std::vector<std::vector<int>>& calibration,
                                              ThreadPool& pool) override {
    if (!options_.taylor || !options_.prunes_structures()) return nlohmann::json();
    auto scores = TaylorImportance(model, calibration, pool);
    if (!scores.ok()) return Fail(scores.status().message());
    nlohmann::json j = {{"importance", "taylor"}, {"head_groups", scores->head_groups}, {"channels", scores->channels}};
    if (auto s = RestorePrepared(j); !s.ok()) return s;
    return j;
  }
  absl::Status RestorePrepared(const nlohmann::json& prepared) override {
    if (!prepared.is_object() || !prepared.contains("head_groups") || !prepared.contains("channels")) {
      return Fail("bad prepared Taylor scores");
    }
    try {
      taylor_heads_ = prepared["head_groups"].get<std::vector<std::vector<double>>>();
      taylor_channels_ = prepared["channels"].get<std::vector<std::vector<double>>>();
    } catch (const nlohmann::json::exception& e) {
      return Fail(absl::StrCat("bad prepared Taylor scores: ", e.what()));
    }
    return absl::OkStatus();
  }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    if (ctx.layer < 0 || ctx.layer >= static_cast<int>(ctx.model->blocks.size())) return absl::OkStatus();  // lm_head
    if (!options_.prunes_structures()) return absl::OkStatus();  // layer removal only
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
    if (options_.needs_norms()) {
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
      auto scores = options_.taylor ? PreparedScores(taylor_heads_, ctx.layer, b.k_proj->out_features() / hd)
                                    : HeadGroupImportance(b, hd, options_.importance, norms);
      if (!scores.ok()) return Fail(scores.status().message());
      const std::vector<int> drop =
          LowestScored(*scores, StructuresToRemove(options_.head_ratio, static_cast<int>(scores->size())));
      if (auto s = RemoveHeadGroups(b, hd, drop); !s.ok()) return Fail(s.message());
      removed_groups = static_cast<int>(drop.size());
    }
    if (channels) {
      auto scores = options_.taylor ? PreparedScores(taylor_channels_, ctx.layer, b.gate_proj->out_features())
                                    : ChannelImportance(b, options_.importance, norms);
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

  // The prepared Taylor scores of `layer`, checked against its width.
  absl::StatusOr<std::vector<double>> PreparedScores(const std::vector<std::vector<double>>& all, int layer,
                                                     int64_t width) const {
    if (layer >= static_cast<int>(all.size()) || static_cast<int64_t>(all[layer].size()) != width) {
      return absl::FailedPreconditionError(
          absl::StrCat("no Taylor scores of width ", width, " for layer ", layer, " (was the stage prepared?)"));
    }
    return all[layer];
  }

  TargetMatcher matcher_;
  StructuredOptions options_;
  std::vector<std::vector<double>> taylor_heads_, taylor_channels_;  // [layer][structure]
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
  } else if (*imp == "taylor") {
    o.taylor = true;
  } else {
    return args.Error("importance",
                      absl::StrCat("unknown value \"", *imp, "\" (expected wanda, output, magnitude or taylor)"));
  }
  auto layers = args.GetInt("remove_layers", 0);
  if (!layers.ok()) return layers.status();
  if (*layers < 0 || *layers > 100000) return args.Error("remove_layers", absl::StrCat(*layers, " must be >= 0"));
  o.remove_layers = static_cast<int>(*layers);
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
                      {"importance", ArgType::kString, "\"wanda\" (default), \"output\", \"magnitude\" or \"taylor\""},
                      {"remove_layers", ArgType::kInt, "whole layers removed by block influence when the stage starts; default 0"},
                      {"targets", ArgType::kStringList, "modules (default [Linear])"},
                      {"ignore", ArgType::kStringList, "modules to skip (default [lm_head])"}},
                     Create});
}

}  // namespace squeeze
