// Reading values back from Prometheus exposition text in tests.
#pragma once

#include <cmath>
#include <sstream>
#include <string>

namespace squeeze::test_inputs {

// The value of `series` (name plus labels, exactly as rendered), NaN if absent.
inline double Sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nan("");
}

}  // namespace squeeze::test_inputs
