// Pareto front of model variants for one cost axis (bytes, FLOPs, latency):
// the store-wide front of issue #7 is this function applied to every variant
// of one base model (workers/runner/report_front.h gathers them).
//
// Definitions (all pure; no I/O):
//   - quality(v) is higher-is-better, cost(v) lower-is-better;
//   - a variant is *unmeasured* on the axis when its cost is not a finite
//     number > 0 (latency 0 = not measured; a model never has 0 bytes or 0
//     FLOPs). Unmeasured variants take no part in the front of that axis: they
//     neither join it nor dominate anyone (treating "no latency" as 0 ms would
//     make them dominate everything);
//   - among the measured ones, v is dominated when some other w has
//     cost(w) <= cost(v) and quality(w) >= quality(v) with at least one strict;
//     exact ties (equal cost and equal quality) dominate neither way, so both
//     stay on the front;
//   - `optimal` is ordered by cost ascending, then quality descending, then
//     name; `dominated` and `unmeasured` keep the input order.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "workers/engine/eval/efficiency.h"

namespace squeeze {

struct AxisFront {
  std::string axis;
  std::vector<std::string> optimal;
  std::vector<std::string> dominated;
  std::vector<std::string> unmeasured;
};

AxisFront ParetoFront(const std::vector<VariantPoint>& variants, const std::string& axis,
                      const std::function<double(const VariantPoint&)>& cost,
                      const std::function<double(const VariantPoint&)>& quality);

// The three axes of the report with quality = MeanScore over `tasks`:
// "bytes" (VariantPoint::bytes), "flops" (flops_per_token), "latency"
// (latency_ms, decode ms/token p50 at batch 1).
std::vector<AxisFront> ReportParetoFronts(const std::vector<VariantPoint>& variants,
                                          const std::vector<std::string>& tasks);

}  // namespace squeeze
