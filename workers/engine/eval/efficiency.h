// Efficiency scores over model variants (the dense model and its compressed
// versions): ELUE-style score, Pareto fronts, HULK-style cost of getting there.
//
// Inputs: a VariantPoint per variant with its analytic FLOPs per token
// (engine/eval/cost.h), bytes in memory, measured decode latency and task
// scores. A task score is in percent, higher is better (the report uses
// acc_norm * 100 for multiple-choice tasks, acc * 100 for LAMBADA-style
// cloze, and 100 * exp(-nll per token) = 100 / perplexity for a perplexity
// text: the geometric-mean probability of the next token).
//
// ELUE-style score (Liu et al. 2021, "Towards Efficient NLP: A Standard
// Evaluation and A Strong Baseline"; issue #7's definition): for each task t
// the model has a score for,
//     d_t = score_t(model) - B_t(flops(model))
// where B_t is the baseline curve of task t: the reference points (f_r,
// score_t(r)) — the dense model and the job's other variants — joined
// piecewise-linearly in FLOPs, constant beyond the cheapest and dearest
// reference (no extrapolation), the mean score where references share a FLOPs
// value. ELUE score = mean over tasks of d_t. Tasks without a reference point
// are left out (listed in `missing`). ELUE's baseline is ElasticBERT; ours is
// the variants of the same model, so 0 = on the reference curve, > 0 = better
// quality than the references give at that cost.
//
// Pareto front: a variant is Pareto-optimal for (cost, quality) when no other
// variant has cost <= and quality >= with at least one strict. Quality = the
// mean score over the tasks every variant has.
//
// HULK-style cost (Zhou et al. 2020, "HULK: An Energy Efficiency Benchmark
// Platform for Responsible Natural Language Processing": report the time and
// cost of each phase, not only the end model): the compression job's wall and
// CPU seconds, the decode time saved per token (dense p50 - compressed p50,
// batch 1, wall ms on the same machine), and the break-even point: tokens to
// generate before the machine time spent compressing is paid back, =
// compression wall seconds * 1000 / saved ms per token (-1 when nothing is
// saved: it is never paid back). Wall against wall, as both occupy the
// machine; CPU seconds are reported beside it.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace squeeze {

struct VariantPoint {
  std::string name;
  double flops_per_token = 0;  // analytic, at the report's context length
  double bytes = 0;            // weights in memory
  double latency_ms = 0;       // decode ms/token p50 at batch 1; 0 = not measured
  std::map<std::string, double> scores;  // task -> percent, higher is better
};

// Piecewise-linear y(x) through `points` (any order; equal x averaged),
// constant outside [min x, max x]. InvalidArgument when empty.
absl::StatusOr<double> InterpolateCurve(std::vector<std::pair<double, double>> points, double x);

struct ElueResult {
  double score = 0;                        // mean of per_task
  std::map<std::string, double> per_task;  // d_t
  std::map<std::string, double> baseline;  // B_t(flops(model))
  std::vector<std::string> missing;        // tasks with no reference point
};

// InvalidArgument when no task of `model` has a reference point.
absl::StatusOr<ElueResult> ElueScore(const VariantPoint& model, const std::vector<VariantPoint>& references);

// Tasks scored by every variant (sorted); the mean of a variant's scores over them.
std::vector<std::string> CommonTasks(const std::vector<VariantPoint>& variants);
double MeanScore(const VariantPoint& v, const std::vector<std::string>& tasks);

// optimal[i] for (cost(v), quality(v)) as defined above.
std::vector<bool> ParetoOptimal(const std::vector<VariantPoint>& variants,
                                const std::function<double(const VariantPoint&)>& cost,
                                const std::function<double(const VariantPoint&)>& quality);

struct HulkResult {
  double compression_wall_s = 0;
  double compression_cpu_s = 0;
  double saved_ms_per_token = 0;   // dense - compressed decode p50, batch 1
  double break_even_tokens = -1;   // -1: never paid back
};
HulkResult HulkCost(double compression_wall_s, double compression_cpu_s, double dense_decode_ms,
                    double compressed_decode_ms);

}  // namespace squeeze
