// Central finite-difference gradient checks for fp32 code.
//
// Entries with mask 0 (pruned) are left out: the gradient there is 0 by
// design (the sparse subspace is what is trained).
// Per entry: fd = (f(x + h) - f(x - h)) / 2h with f evaluated in double
// where the test controls it; accepted when |fd - g| <= atol + rtol * max(|fd|, |g|).
// Directional: for a random direction u, (f(x + h u) - f(x - h u)) / 2h must
// (u of unit length) match g . u — aggregating many entries, it is robust to fp32 noise.
#pragma once

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace squeeze::train::testing {

inline void CheckEntries(const std::string& what, float* x, const float* g, int64_t n,
                         const std::function<double()>& f, int max_checks = 24, double h = 1e-2,
                         double rtol = 2e-2, double atol = 2e-3, const uint8_t* mask = nullptr) {
  const int64_t stride = std::max<int64_t>(1, n / max_checks);
  int checked = 0;
  for (int64_t i = 0; i < n; i += stride) {
    if (mask != nullptr && !mask[i]) {
      i += 1 - stride;  // pruned entry (outside the trained subspace): try the next one
      continue;
    }
    const float keep = x[i];
    x[i] = static_cast<float>(keep + h);
    const double fp = f();
    x[i] = static_cast<float>(keep - h);
    const double fm = f();
    x[i] = keep;
    const double fd = (fp - fm) / (2 * h);
    EXPECT_NEAR(g[i], fd, atol + rtol * std::max(std::abs(fd), std::abs(double{g[i]})))
        << what << " entry " << i << " of " << n;
    ++checked;
  }
  EXPECT_GT(checked, 0) << what;
}

// Returns true when the directional derivative matches (and records failures).
inline void CheckDirectional(const std::string& what, float* x, const float* g, int64_t n,
                             const std::function<double()>& f, uint64_t seed, double h = 1e-2,
                             double rtol = 2e-2, double atol = 1e-3, const uint8_t* mask = nullptr) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> u(n);
  double gu = 0, gnorm = 0, unorm = 0;
  for (int64_t i = 0; i < n; ++i) {
    u[i] = (mask != nullptr && !mask[i]) ? 0.0 : dist(rng);
    unorm += u[i] * u[i];
  }
  for (int64_t i = 0; i < n; ++i) {
    u[i] /= std::sqrt(unorm);  // unit direction: the step is h in parameter space
    gu += u[i] * g[i];
    gnorm += double{g[i]} * g[i];
  }
  std::vector<float> keep(x, x + n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(keep[i] + h * u[i]);
  const double fp = f();
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(keep[i] - h * u[i]);
  const double fm = f();
  std::copy(keep.begin(), keep.end(), x);
  const double fd = (fp - fm) / (2 * h);
  EXPECT_NEAR(gu, fd, atol + rtol * std::max(std::abs(fd), std::sqrt(gnorm)))
      << what << ": directional derivative (n=" << n << ", |g|=" << std::sqrt(gnorm) << ")";
}

inline std::vector<float> RandomVector(int64_t n, uint64_t seed, float stddev = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// sum_i r[i] * y[i] in double.
inline double Dot(const float* r, const float* y, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double{r[i]} * y[i];
  return s;
}

}  // namespace squeeze::train::testing
