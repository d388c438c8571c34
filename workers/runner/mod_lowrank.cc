// LowRankModifier: recipe adapter for workers/methods/lowrank/lowrank.h.
// Replaces each target linear W [out, in] by a FactorizedLinear U V
// (U [out, r], V [r, in], fp32, bias kept) that runs as two matmuls.
//   rank              int r >= 1                        } exactly one
//   rank_ratio        r = round(ratio * min(out, in))    } of these
//   energy            smallest r keeping this fraction   } three
//                     of sum s_i^2, in (0, 1]
//   method            "svd" (default), "asvd" (activation-aware) or
//                     "svd_llm" (SVD-LLM whitening with the Cholesky factor
//                     of X^T X, svd_llm.h); the last two need calibration data
//   asvd_alpha        exponent of the ASVD channel scale (default 0.5, as in
//                     the ASVD paper); only with method: asvd
//   allow_no_savings  accept a rank with r * (out + in) >= out * in (default
//                     false: such a rank is an error naming the module)
//   targets / ignore  see target_match.h (defaults [Linear] / [lm_head])
// ASVD's channel magnitude is the RMS of the input channel over the
// calibration set (see lowrank.h for why not mean |x|).
// svd_llm also reports "damping" (added to X^T X's diagonal, 0 when PD).
// Reports per module: "rank", "rel_error" (||W - U V||_F / ||W||_F),
// "energy_kept", "params_before" (out * in), "params_after" (r * (out + in)),
// "bytes_before", "bytes_after" and, when the stage gathered X^T X,
// "rel_output_error" (||(W - U V) X^T||_F / ||W X^T||_F).
#include <algorithm>
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/methods/lowrank/factorized_linear.h"
#include "workers/methods/lowrank/lowrank.h"
#include "workers/methods/lowrank/svd_llm.h"
#include "workers/methods/quant/rtn.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {
namespace {

constexpr char kType[] = "LowRankModifier";

class LowRankModifier final : public Modifier {
 public:
  LowRankModifier(TargetMatcher matcher, LowRankOptions options)
      : matcher_(std::move(matcher)), options_(options) {}
  std::string type() const override { return kType; }
  const TargetMatcher& matcher() const override { return matcher_; }
  bool needs_calibration() const override { return options_.method != LowRankMethod::kSvd; }
  bool needs_xtx() const override { return options_.method == LowRankMethod::kSvdLlm; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    if (needs_calibration() && ctx.inputs == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(kType, ": method ", LowRankMethodName(options_.method),
                       " needs calibration data, but there are no calibration inputs for "
                              "this layer (give a calibration text; the lm_head has none, so ignore it)"));
    }
    for (LayerContext::Target& t : ctx.targets) {
      std::unique_ptr<LinearLayer>& slot = *t.slot.slot;
      const MatrixRM w = slot->DenseWeight();
      const ActivationStats* st = Stats(ctx, t);
      std::vector<double> magnitudes;
      if (options_.method != LowRankMethod::kSvd) {
        if (st == nullptr || st->count() == 0 || (options_.method == LowRankMethod::kSvdLlm && !st->has_xtx())) {
          return absl::FailedPreconditionError(
              absl::StrCat(kType, ": ", t.slot.name, ": no calibration statistics of its input"));
        }
        magnitudes = st->ChannelNorms();
        for (double& m : magnitudes) m /= std::sqrt(static_cast<double>(st->count()));
      }
      double damping = -1;
      absl::StatusOr<LowRankResult> f;
      if (options_.method == LowRankMethod::kSvdLlm) {
        auto whitened = SvdLlmFactorize(w, st->xtx(), options_);
        if (whitened.ok()) {
          damping = whitened->damping;
          f = std::move(whitened->factors);
        } else {
          f = whitened.status();
        }
      } else {
        f = LowRankFactorize(w, magnitudes, options_);
      }
      if (!f.ok()) {
        return absl::Status(f.status().code(), absl::StrCat(kType, ": ", t.slot.name, ": ", f.status().message()));
      }
      ModuleReport r;
      r.module = t.slot.name;
      r.modifier = kType;
      r.metrics["rank"] = static_cast<double>(f->rank);
      r.metrics["energy_kept"] = f->energy_kept;
      if (damping >= 0) r.metrics["damping"] = damping;
      r.metrics["params_before"] = static_cast<double>(w.size());
      r.metrics["params_after"] = static_cast<double>(f->rank * (w.rows() + w.cols()));
      r.metrics["bytes_before"] = static_cast<double>(slot->StorageBytes());
      std::vector<float> bias(slot->bias().begin(), slot->bias().end());
      auto layer = FactorizedLinear::Create(std::move(f->u), std::move(f->v), std::move(bias));
      if (!layer.ok()) {
        return absl::InternalError(absl::StrCat(kType, ": ", t.slot.name, ": ", layer.status().message()));
      }
      const MatrixRM w_hat = (*layer)->DenseWeight();
      r.metrics["rel_error"] = RelativeError(w, w_hat);
      if (st != nullptr && st->has_xtx()) {
        const Eigen::MatrixXd wd = w.cast<double>();
        const Eigen::MatrixXd dd = wd - w_hat.cast<double>();
        const double base = (wd * st->xtx()).cwiseProduct(wd).sum();
        const double err = (dd * st->xtx()).cwiseProduct(dd).sum();
        r.metrics["rel_output_error"] = base > 0 ? std::sqrt(std::max(0.0, err) / base) : 0.0;
      }
      slot = std::move(*layer);
      r.kind = slot->kind();
      r.metrics["bytes_after"] = static_cast<double>(slot->StorageBytes());
      reports->push_back(std::move(r));
    }
    return absl::OkStatus();
  }

 private:
  // t's input statistics when ctx has them and their width is t's input.
  static const ActivationStats* Stats(const LayerContext& ctx, const LayerContext::Target& t) {
    if (ctx.inputs == nullptr || t.which < 0 || t.which >= static_cast<int>(ctx.inputs->stats.size())) return nullptr;
    const ActivationStats* st = ctx.inputs->stats[t.which];
    if (st == nullptr || st->channels() != (*t.slot.slot)->in_features()) return nullptr;
    return st;
  }

  TargetMatcher matcher_;
  LowRankOptions options_;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  LowRankOptions o;
  auto rank = args.GetInt("rank", 0);
  if (!rank.ok()) return rank.status();
  if (args.Has("rank") && *rank < 1) return args.Error("rank", absl::StrCat(*rank, " must be >= 1"));
  o.rank = *rank;
  auto ratio = args.GetNumber("rank_ratio", 0);
  if (!ratio.ok()) return ratio.status();
  if (args.Has("rank_ratio") && !(*ratio > 0 && *ratio <= 1)) {
    return args.Error("rank_ratio", absl::StrCat(*ratio, " is outside (0, 1]"));
  }
  o.rank_ratio = *ratio;
  auto energy = args.GetNumber("energy", 0);
  if (!energy.ok()) return energy.status();
  if (args.Has("energy") && !(*energy > 0 && *energy <= 1)) {
    return args.Error("energy", absl::StrCat(*energy, " is outside (0, 1]"));
  }
  o.energy = *energy;
  const int given = args.Has("rank") + args.Has("rank_ratio") + args.Has("energy");
  if (given != 1) {
    return absl::InvalidArgumentError(absl::StrCat("recipe: ", args.path(), ": give exactly one of rank, "
                                                   "rank_ratio or energy (got ", given, ")"));
  }
  auto method = args.GetString("method", "svd");
  if (!method.ok()) return method.status();
  if (*method == "svd") {
    o.method = LowRankMethod::kSvd;
  } else if (*method == "asvd") {
    o.method = LowRankMethod::kAsvd;
  } else if (*method == "svd_llm") {
    o.method = LowRankMethod::kSvdLlm;
  } else {
    return args.Error("method", absl::StrCat("unknown value \"", *method, "\" (expected svd, asvd or svd_llm)"));
  }
  auto alpha = args.GetNumber("asvd_alpha", 0.5);
  if (!alpha.ok()) return alpha.status();
  if (args.Has("asvd_alpha") && o.method != LowRankMethod::kAsvd) {
    return args.Error("asvd_alpha", "only applies with method: asvd");
  }
  if (!(*alpha >= 0 && std::isfinite(*alpha))) {
    return args.Error("asvd_alpha", absl::StrCat(*alpha, " must be a finite value >= 0"));
  }
  o.asvd_alpha = *alpha;
  auto allow = args.GetBool("allow_no_savings", false);
  if (!allow.ok()) return allow.status();
  o.allow_no_savings = *allow;
  if (absl::Status s = ValidateLowRankOptions(o); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("recipe: ", args.path(), ": ", s.message()));
  }
  auto matcher = args.GetMatcher();
  if (!matcher.ok()) return matcher.status();
  return std::unique_ptr<Modifier>(std::make_unique<LowRankModifier>(std::move(*matcher), o));
}

}  // namespace

void RegisterLowRankModifier(ModifierRegistry& registry) {
  registry.Register(
      {kType,
       "factorize each weight as U V by truncated SVD or activation-aware SVD (ASVD); runs as two matmuls",
       {{"rank", ArgType::kInt, "rank r >= 1 (one of rank / rank_ratio / energy)"},
        {"rank_ratio", ArgType::kNumber, "r = round(ratio * min(out, in)), ratio in (0, 1]"},
        {"energy", ArgType::kNumber, "smallest r keeping this fraction of sum s_i^2, in (0, 1]"},
        {"method", ArgType::kString, "\"svd\" (default), \"asvd\" or \"svd_llm\" (the last two need calibration data)"},
        {"asvd_alpha", ArgType::kNumber, "ASVD channel-scale exponent (default 0.5)"},
        {"allow_no_savings", ArgType::kBool, "accept ranks with r * (out + in) >= out * in (default false)"},
        {"targets", ArgType::kStringList, "modules to factorize (default [Linear])"},
        {"ignore", ArgType::kStringList, "modules to skip (default [lm_head])"}},
       Create});
}

}  // namespace squeeze
