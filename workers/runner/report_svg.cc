#include "workers/runner/report_svg.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace squeeze {

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += '?';
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string Human(double v) {
  const double a = std::fabs(v);
  if (a >= 1e12) return absl::StrFormat("%.3gT", v / 1e12);
  if (a >= 1e9) return absl::StrFormat("%.3gG", v / 1e9);
  if (a >= 1e6) return absl::StrFormat("%.3gM", v / 1e6);
  if (a >= 1e3) return absl::StrFormat("%.3gk", v / 1e3);
  return absl::StrFormat("%.3g", v);
}

std::pair<double, double> AxisRange(const std::vector<double>& v) {
  double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
  if (hi > lo) {
    const double pad = 0.08 * (hi - lo);
    return {lo - pad, hi + pad};
  }
  if (lo == 0) return {-1, 1};
  const double d = 0.1 * std::fabs(lo);
  return {lo - d, hi + d};
}

}  // namespace squeeze
