// The store-wide Pareto front of issue #7: every SUCCEEDED job of one base
// model (identified by the manifest digest of its input files) contributes its
// compressed variant; the dense point comes from the anchor job (the one asked
// about, or the newest). The coordinator gathers the reports (GetPareto,
// GetReport's scores.pareto.store); this file is the pure part.
//
// Comparability (a score enters only when it was measured on the same thing):
//   - a job whose dense point differs from the anchor's (bytes in memory or
//     FLOPs per token, e.g. FLOPs counted at another context) is excluded,
//     with the reason;
//   - per task, a job's score is kept only when its evaluation identity equals
//     the anchor's: eval_text = (eval text digest, window, tokens); a
//     zero-shot task = (format, n, sampled indices, subset sha256 when the
//     report has one) — and its dense score equals the anchor's (the dense
//     model is deterministic, so a difference means other examples). Dropped
//     scores are listed with the reason.
// Quality = mean task score (percent, efficiency.h) over the tasks every kept
// variant has (quality_tasks). Fronts per axis as pareto.h defines them
// (latency: decode ms/token p50 at batch 1, as measured by each job's worker;
// a job without a measured latency is "unmeasured"). Each compressed variant
// gets an ELUE-style score whose baseline curve is the dense model and every
// other variant in the store.
//
// JSON (StoreParetoJson):
//   {model_digest, anchor_job, quality_tasks, variants: [{name, job_id, kind
//    (dense|compressed), recipe, bytes, flops_per_token, latency_ms|null,
//    quality|null, scores, elue|null}], fronts: {bytes|flops|latency:
//    {optimal, dominated, unmeasured}} | null, excluded: [{job_id, reason}],
//    dropped_scores: [{job_id, task, reason}], note}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "workers/engine/eval/efficiency.h"

namespace squeeze {

struct StoredJobReport {
  std::string job_id;
  std::string eval_digest;  // manifest digest of the job's evaluation text; "" = none
  nlohmann::json report;    // the job's report (GetReport: report.json + measured figures)
};

// InvalidArgument when `jobs` is empty, anchor is out of range or the anchor's
// report has no cost section.
absl::StatusOr<nlohmann::json> StoreParetoJson(const std::string& model_digest,
                                               const std::vector<StoredJobReport>& jobs, size_t anchor);

// The variants of a StoreParetoJson result (for RenderParetoSvg /
// RenderComparisonMarkdown), scores restricted to quality_tasks.
std::vector<VariantPoint> StoreFrontVariants(const nlohmann::json& front);

// Markdown section of a StoreParetoJson result.
std::string RenderStoreFrontMarkdown(const nlohmann::json& front, const std::string& svg_name);

}  // namespace squeeze
