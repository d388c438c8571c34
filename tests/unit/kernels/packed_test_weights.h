// Random packed int weights for the kernel tests: the raw PackedIntWeights
// arrays (MakePackedTestWeights, codes packed with PackedIntLinear's own
// PackRow) and whole PackedIntLinear layers (RandomPackedLayer). A given
// spec and seed always give the same weights.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/quant_args.h"

namespace squeeze::kernels::testing {

// Which codes q (in [qmin, qmax] = [-2^(bits-1), 2^(bits-1) - 1]) are drawn.
enum class Codes {
  kRandom,   // uniform over [qmin, qmax]
  kExtreme,  // qmin or qmax, a coin toss each
  kMin,      // all qmin
  kMax,      // all qmax
};

// Which zero points (in q units, one per row and group) are drawn.
enum class ZeroPoints {
  kNone,     // symmetric: no zero points
  kRandom,   // uniform over [qmin, qmax]
  kExtreme,  // qmin or qmax, a coin toss each (code offsets 0 and 2^bits - 1)
  kFar,      // uniform over [-100000, 100000]: far outside the code range
};

// In-range zero points drawn like `codes`: the extremes for extreme codes,
// else random.
inline ZeroPoints InRangeZerosLike(Codes codes) {
  return codes == Codes::kExtreme ? ZeroPoints::kExtreme : ZeroPoints::kRandom;
}

struct PackedTestSpec {
  int bits = 4;
  int64_t rows = 1, cols = 1;
  int64_t group = 1;                         // contiguous columns per group; cols = one group per row
  Codes codes = Codes::kRandom;
  ZeroPoints zeros = ZeroPoints::kNone;
  float scale_lo = 0.001f, scale_hi = 0.1f;  // scales uniform in [lo, hi)
  int64_t zero_scale_every = 0;              // > 0: scales[i] = 0 for i % zero_scale_every == 0
  bool g_idx = false;                        // a shuffled group index (each group keeps `group` columns)
};

// Draw order (fixed, so seeds keep their weights): codes row by row, then
// the zero points, then the g_idx shuffle from mt19937_64(seed); scales from
// RandomFloats(seed + 1).
inline PackedTestWeights MakePackedTestWeights(const PackedTestSpec& s, uint64_t seed) {
  PackedTestWeights t;
  std::mt19937_64 rng(seed);
  const int qmin = -(1 << (s.bits - 1)), qmax = (1 << (s.bits - 1)) - 1;
  std::uniform_int_distribution<int> code(qmin, qmax), coin(0, 1), far(-100000, 100000);
  const int64_t groups = (s.cols + s.group - 1) / s.group;
  const int per_word = 32 / s.bits;
  const int64_t wpr = (s.cols + per_word - 1) / per_word;
  t.packed.resize(s.rows * wpr);
  std::vector<int32_t> q(s.cols);
  for (int64_t r = 0; r < s.rows; ++r) {
    for (int64_t c = 0; c < s.cols; ++c) {
      switch (s.codes) {
        case Codes::kRandom: q[c] = code(rng); break;
        case Codes::kExtreme: q[c] = coin(rng) ? qmin : qmax; break;
        case Codes::kMin: q[c] = qmin; break;
        case Codes::kMax: q[c] = qmax; break;
      }
    }
    PackRow(q.data(), s.cols, s.bits, t.packed.data() + r * wpr);
  }
  t.scales = RandomFloats(s.rows * groups, seed + 1, s.scale_lo, s.scale_hi);
  if (s.zero_scale_every > 0) {
    for (size_t i = 0; i < t.scales.size(); i += s.zero_scale_every) t.scales[i] = 0.0f;
  }
  if (s.zeros != ZeroPoints::kNone) {
    t.zero_points.resize(s.rows * groups);
    for (int32_t& z : t.zero_points) {
      switch (s.zeros) {
        case ZeroPoints::kRandom: z = code(rng); break;
        case ZeroPoints::kExtreme: z = coin(rng) ? qmin : qmax; break;
        case ZeroPoints::kFar: z = far(rng); break;
        case ZeroPoints::kNone: break;
      }
    }
  }
  if (s.g_idx) {
    t.g_idx.resize(s.cols);
    for (int64_t c = 0; c < s.cols; ++c) t.g_idx[c] = static_cast<int32_t>(c / s.group);
    std::shuffle(t.g_idx.begin(), t.g_idx.end(), rng);
  }
  t.PointView(s.bits, s.rows, s.cols, s.group);
  return t;
}

// The quantization scheme of a test case; group <= 0 keeps the default.
inline WeightQuantArgs PackedArgs(int bits, bool sym, QuantStrategy strategy, int group) {
  WeightQuantArgs args;
  args.num_bits = bits;
  args.symmetric = sym;
  args.strategy = strategy;
  if (group > 0) args.group_size = group;
  return args;
}

// A row of a random-layer case table: the scheme, g_idx on/off and the
// layer width (0: the test's own).
struct PackedLayerCase {
  int bits;
  bool sym;
  QuantStrategy strategy;
  int group;  // <= 0: the default
  bool g_idx;
  int64_t in = 0;

  WeightQuantArgs Args() const { return PackedArgs(bits, sym, strategy, group); }
};

struct RandomLayerOptions {
  bool bias = true;               // a random bias (RandomFloats(seed + 2)), else none
  bool zero_first_scale = false;  // scales[0] = 0
  int64_t g_idx_stride = 0;       // > 0: g_idx[c] = (c * stride) % groups; 0: no g_idx
};

// A PackedIntLinear of `out` x `in` random codes (mt19937_64(seed), then
// the zero points when asymmetric), scales RandomFloats(seed + 1) in
// [0.001, 0.05).
inline std::unique_ptr<PackedIntLinear> RandomPackedLayer(const WeightQuantArgs& args, int64_t out, int64_t in,
                                                          uint64_t seed, const RandomLayerOptions& o = {}) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> code(args.qmin(), args.qmax());
  std::vector<int32_t> q(out * in);
  for (int32_t& v : q) v = code(rng);
  const int64_t groups = args.GroupsPerRow(in);
  std::vector<float> scales = RandomFloats(out * groups, seed + 1, 0.001f, 0.05f);
  if (o.zero_first_scale) scales[0] = 0.0f;
  std::vector<int32_t> zp;
  if (!args.symmetric) {
    zp.resize(out * groups);
    for (int32_t& z : zp) z = code(rng);
  }
  std::vector<int32_t> gi;
  if (o.g_idx_stride > 0) {
    gi.resize(in);
    for (int64_t c = 0; c < in; ++c) gi[c] = static_cast<int32_t>((c * o.g_idx_stride) % groups);
  }
  auto layer = PackedIntLinear::FromCodes(args, out, in, q, std::move(scales), std::move(zp),
                                          o.bias ? RandomFloats(out, seed + 2) : std::vector<float>{}, gi);
  EXPECT_TRUE(layer.ok()) << layer.status();
  return layer.ok() ? std::move(*layer) : nullptr;
}

}  // namespace squeeze::kernels::testing
