// Pieces of the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/):
// sample values, label-value and HELP escaping, and name checks.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace squeeze::metrics {

// The Content-Type of a /metrics response in this format.
inline constexpr char kTextContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// A sample value as Go's strconv.ParseFloat reads it: "NaN", "+Inf", "-Inf",
// otherwise the shortest decimal that round-trips (3 -> "3", 0.25 -> "0.25").
std::string FormatValue(double v);

// A label value between double quotes: \ -> \\, " -> \", newline -> \n.
// Invalid UTF-8 bytes become U+FFFD, so the output always parses.
std::string EscapeLabelValue(absl::string_view value);

// HELP text: \ -> \\, newline -> \n (quotes stay as they are); invalid UTF-8
// bytes become U+FFFD.
std::string EscapeHelp(absl::string_view help);

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool IsValidMetricName(absl::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]* and not starting with "__" (reserved by Prometheus).
bool IsValidLabelName(absl::string_view name);

}  // namespace squeeze::metrics
