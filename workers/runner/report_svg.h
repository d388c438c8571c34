// Small helpers shared by the report's SVG plots (report_render.cc: the
// Pareto panels; report_training.cc: the loss curve). Pure functions.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace squeeze {

// Escapes & < > " ' for XML text and attributes; control characters other
// than tab / newline / carriage return (not allowed in XML 1.0) become '?'.
std::string XmlEscape(const std::string& s);

// Human-readable counts with 3 significant digits: 1234567 -> "1.23M".
std::string Human(double v);

// The axis range of values `v` (non-empty): [min, max] padded by 8% of its
// width on each side; a zero-width range becomes [v - 10%|v|, v + 10%|v|],
// or [-1, 1] at v = 0.
std::pair<double, double> AxisRange(const std::vector<double>& v);

}  // namespace squeeze
