#include "workers/engine/eval/efficiency.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"

namespace squeeze {

absl::StatusOr<double> InterpolateCurve(std::vector<std::pair<double, double>> points, double x) {
  if (points.empty()) return absl::InvalidArgumentError("baseline curve: no reference points");
  std::sort(points.begin(), points.end());
  // Average equal x.
  std::vector<std::pair<double, double>> curve;
  for (size_t i = 0; i < points.size();) {
    size_t j = i;
    double sum = 0;
    while (j < points.size() && points[j].first == points[i].first) sum += points[j++].second;
    curve.push_back({points[i].first, sum / static_cast<double>(j - i)});
    i = j;
  }
  if (x <= curve.front().first) return curve.front().second;
  if (x >= curve.back().first) return curve.back().second;
  for (size_t i = 1; i < curve.size(); ++i) {
    if (x <= curve[i].first) {
      const auto& [x0, y0] = curve[i - 1];
      const auto& [x1, y1] = curve[i];
      return y0 + (x - x0) / (x1 - x0) * (y1 - y0);
    }
  }
  return curve.back().second;  // unreachable
}

absl::StatusOr<ElueResult> ElueScore(const VariantPoint& model, const std::vector<VariantPoint>& references) {
  ElueResult r;
  double sum = 0;
  for (const auto& [task, score] : model.scores) {
    std::vector<std::pair<double, double>> pts;
    for (const VariantPoint& ref : references) {
      if (auto it = ref.scores.find(task); it != ref.scores.end()) pts.push_back({ref.flops_per_token, it->second});
    }
    if (pts.empty()) {
      r.missing.push_back(task);
      continue;
    }
    const double b = *InterpolateCurve(pts, model.flops_per_token);
    r.baseline[task] = b;
    r.per_task[task] = score - b;
    sum += score - b;
  }
  if (r.per_task.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ELUE score of ", model.name, ": no task has a reference point"));
  }
  r.score = sum / static_cast<double>(r.per_task.size());
  return r;
}

std::vector<std::string> CommonTasks(const std::vector<VariantPoint>& variants) {
  if (variants.empty()) return {};
  std::vector<std::string> out;
  for (const auto& [task, unused] : variants.front().scores) {
    bool all = true;
    for (const VariantPoint& v : variants) all = all && v.scores.count(task) > 0;
    if (all) out.push_back(task);
  }
  return out;
}

double MeanScore(const VariantPoint& v, const std::vector<std::string>& tasks) {
  if (tasks.empty()) return 0;
  double s = 0;
  for (const std::string& t : tasks) s += v.scores.at(t);
  return s / static_cast<double>(tasks.size());
}

std::vector<bool> ParetoOptimal(const std::vector<VariantPoint>& variants,
                                const std::function<double(const VariantPoint&)>& cost,
                                const std::function<double(const VariantPoint&)>& quality) {
  std::vector<bool> optimal(variants.size(), true);
  for (size_t i = 0; i < variants.size(); ++i) {
    const double ci = cost(variants[i]), qi = quality(variants[i]);
    for (size_t j = 0; j < variants.size() && optimal[i]; ++j) {
      if (j == i) continue;
      const double cj = cost(variants[j]), qj = quality(variants[j]);
      if (cj <= ci && qj >= qi && (cj < ci || qj > qi)) optimal[i] = false;
    }
  }
  return optimal;
}

HulkResult HulkCost(double compression_wall_s, double compression_cpu_s, double dense_decode_ms,
                    double compressed_decode_ms) {
  HulkResult h;
  h.compression_wall_s = compression_wall_s;
  h.compression_cpu_s = compression_cpu_s;
  h.saved_ms_per_token = dense_decode_ms - compressed_decode_ms;
  if (dense_decode_ms > 0 && compressed_decode_ms > 0 && h.saved_ms_per_token > 0) {
    h.break_even_tokens = compression_wall_s * 1000.0 / h.saved_ms_per_token;
  }
  return h;
}

}  // namespace squeeze
