#include "workers/engine/eval/pareto.h"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace squeeze {

AxisFront ParetoFront(const std::vector<VariantPoint>& variants, const std::string& axis,
                      const std::function<double(const VariantPoint&)>& cost,
                      const std::function<double(const VariantPoint&)>& quality) {
  AxisFront out;
  out.axis = axis;
  std::vector<VariantPoint> measured;
  for (const VariantPoint& v : variants) {
    const double c = cost(v);
    if (std::isfinite(c) && c > 0) {
      measured.push_back(v);
    } else {
      out.unmeasured.push_back(v.name);
    }
  }
  const std::vector<bool> opt = ParetoOptimal(measured, cost, quality);
  std::vector<std::tuple<double, double, std::string>> front;  // (cost, -quality, name)
  for (size_t i = 0; i < measured.size(); ++i) {
    if (opt[i]) {
      front.emplace_back(cost(measured[i]), -quality(measured[i]), measured[i].name);
    } else {
      out.dominated.push_back(measured[i].name);
    }
  }
  std::sort(front.begin(), front.end());
  for (const auto& f : front) out.optimal.push_back(std::get<2>(f));
  return out;
}

std::vector<AxisFront> ReportParetoFronts(const std::vector<VariantPoint>& variants,
                                          const std::vector<std::string>& tasks) {
  auto quality = [&tasks](const VariantPoint& v) { return MeanScore(v, tasks); };
  return {ParetoFront(variants, "bytes", [](const VariantPoint& v) { return v.bytes; }, quality),
          ParetoFront(variants, "flops", [](const VariantPoint& v) { return v.flops_per_token; }, quality),
          ParetoFront(variants, "latency", [](const VariantPoint& v) { return v.latency_ms; }, quality)};
}

}  // namespace squeeze
