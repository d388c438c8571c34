// Helpers for the kernel tests: random data, the variants to test, and the
// float tolerance the kernels state (|err| <= rel * sum |x w| + abs).
#pragma once

#include <cmath>
#include <cstring>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "workers/kernels/cpu/cpu_features.h"
#include "workers/kernels/cpu/packed_int_gemm.h"

namespace squeeze::kernels::testing {

// Packed int weights owned by a test and the PackedIntWeights view of them:
// fill the arrays (zero_points / g_idx empty = none), then PointView. Moving
// keeps the view valid (vector buffers move); copying does not.
struct PackedTestWeights {
  std::vector<uint32_t> packed;   // [rows, words_per_row]
  std::vector<float> scales;      // [rows, groups]
  std::vector<int32_t> zero_points, g_idx;
  PackedIntWeights view;

  void PointView(int bits, int64_t rows, int64_t cols, int64_t group) {
    const int64_t per_word = 32 / bits;
    view.num_bits = bits;
    view.rows = rows;
    view.cols = cols;
    view.words_per_row = (cols + per_word - 1) / per_word;
    view.packed = packed.data();
    view.groups_per_row = (cols + group - 1) / group;
    view.group_size = group;
    view.scales = scales.data();
    view.zero_points = zero_points.empty() ? nullptr : zero_points.data();
    view.g_idx = g_idx.empty() ? nullptr : g_idx.data();
  }
};

inline std::vector<float> RandomFloats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

inline std::vector<int8_t> RandomInt8(size_t n, uint64_t seed, int lo = -128, int hi = 127) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int8_t> v(n);
  for (int8_t& x : v) x = static_cast<int8_t>(d(rng));
  return v;
}

// One kernel variant: an ISA level, and whether VNNI is used (AVX-512 VNNI, or
// AVX-VNNI for AVX2).
struct Variant {
  KernelIsa isa;
  bool vnni;
  std::string Name() const { return std::string(KernelIsaName(isa)) + (vnni ? "+vnni" : ""); }
};

// Every variant runnable here, reference dispatch first: AVX-512 appears
// once without VNNI and, when the CPU has it, once with; AVX2 likewise with
// AVX-VNNI.
inline std::vector<Variant> AllVariants() {
  std::vector<Variant> v;
  for (KernelIsa isa : SupportedIsas()) v.push_back({isa, false});
  if (CpuHasAvx512Vnni()) v.push_back({KernelIsa::kAvx512, true});
  // AVX2 with AVX-VNNI (the AVX2 int8 panel core's vpdpbusd variant).
  if (CpuHasAvxVnni()) v.push_back({KernelIsa::kAvx2, true});
  return v;
}

// Runs body under each variant.
class VariantScope {
 public:
  explicit VariantScope(const Variant& v) : scoped_(v.isa, v.vnni) {}

 private:
  ScopedKernelIsa scoped_;
};

inline ::testing::AssertionResult BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      return ::testing::AssertionFailure() << "index " << i << ": " << a[i] << " vs " << b[i];
    }
  }
  return ::testing::AssertionSuccess();
}

// |got - want| <= rel * mag + 1e-6 per element; mag[i] = sum |x w| of that output.
inline ::testing::AssertionResult Near(const std::vector<float>& got, const std::vector<float>& want,
                                       const std::vector<double>& mag, double rel) {
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double{got[i]} - want[i]);
    if (!(err <= rel * mag[i] + 1e-6)) {
      return ::testing::AssertionFailure() << "index " << i << ": " << got[i] << " vs " << want[i]
                                           << " (err " << err << ", bound " << rel * mag[i] + 1e-6 << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace squeeze::kernels::testing
