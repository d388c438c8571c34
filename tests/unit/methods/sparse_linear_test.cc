// SparseLinear (methods/prune/sparse_linear.h): both storage formats hold
// exactly the pruned weight, the compressed forward equals the plain
// reference (x * DenseWeight()^T + b) for any pool size, stored tensors
// rebuild the layer bit for bit, bytes follow the documented formula, and
// damaged tensors are refused naming the module.
#include "workers/methods/prune/sparse_linear.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "workers/engine/core/thread_pool.h"
#include "workers/methods/prune/magnitude.h"

namespace squeeze {
namespace {

using ::testing::HasSubstr;

MatrixRM RandomMatrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  MatrixRM m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
  return m;
}

// Zeroes a random `fraction` of the entries (unstructured).
MatrixRM Unstructured(MatrixRM w, double fraction, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int64_t i = 0; i < w.size(); ++i) {
    if (u(rng) < fraction) w.data()[i] = 0.0f;
  }
  return w;
}

// Keeps the `keep` largest |w| of every `group` consecutive inputs; the
// first group of every row keeps fewer (one nonzero) to exercise padding.
MatrixRM NM(MatrixRM w, int keep, int group) {
  for (int64_t r = 0; r < w.rows(); ++r) {
    for (int64_t g = 0; g < w.cols() / group; ++g) {
      std::vector<int> order(group);
      for (int p = 0; p < group; ++p) order[p] = p;
      std::sort(order.begin(), order.end(), [&](int a, int b) {
        return std::abs(w(r, g * group + a)) > std::abs(w(r, g * group + b));
      });
      const int kept = g == 0 ? 1 : keep;
      for (int i = kept; i < group; ++i) w(r, g * group + order[i]) = 0.0f;
    }
  }
  return w;
}

MatrixRM Reference(const MatrixRM& x, const LinearLayer& l) {
  MatrixRM y = x * l.DenseWeight().transpose();
  for (int64_t t = 0; t < y.rows(); ++t) {
    for (int64_t r = 0; r < y.cols(); ++r) y(t, r) += l.bias().empty() ? 0.0f : l.bias()[r];
  }
  return y;
}

MatrixRM ForwardOf(const LinearLayer& l, const MatrixRM& x, ThreadPool& pool) {
  MatrixRM y(x.rows(), l.out_features());
  l.Forward(x.data(), x.rows(), y.data(), pool);
  return y;
}

std::map<std::string, TensorView> AsMap(const LinearLayer& l) {
  std::map<std::string, TensorView> m;
  for (auto& [name, view] : l.StoredTensors()) m[name] = view;
  return m;
}

struct Case {
  const char* name;
  SparseFormat format;
  int keep, group;
  int64_t out, in;
};

class SparseLinearCases : public ::testing::TestWithParam<Case> {};

TEST_P(SparseLinearCases, HoldsTheWeightAndForwardMatchesTheReference) {
  const Case c = GetParam();
  const MatrixRM w = c.format == SparseFormat::kBitmask ? Unstructured(RandomMatrix(c.out, c.in, 1), 0.6, 2)
                                                         : NM(RandomMatrix(c.out, c.in, 1), c.keep, c.group);
  std::vector<float> bias(c.out);
  for (int64_t r = 0; r < c.out; ++r) bias[r] = 0.01f * static_cast<float>(r);
  auto l = SparseLinear::FromDense(w, bias, c.format, c.keep, c.group);
  ASSERT_TRUE(l.ok()) << l.status();
  const SparseLinear& s = **l;
  EXPECT_TRUE(((*l)->DenseWeight().array() == w.array()).all());
  const int64_t nnz = (w.array() != 0.0f).count();
  EXPECT_EQ(s.NonZeroWeights(), nnz);
  if (c.format == SparseFormat::kBitmask) {
    EXPECT_EQ(s.kind(), "sparse_bitmask");
    EXPECT_EQ(s.stored_values(), nnz);
    EXPECT_EQ(s.StorageBytes(), 4 * nnz + c.out * ((c.in + 7) / 8) + 8 * c.out + 4 * c.out + 16);
  } else {
    EXPECT_EQ(s.kind(), "sparse_" + std::to_string(c.keep) + "of" + std::to_string(c.group));
    const int64_t per_row = c.in / c.group * c.keep;
    EXPECT_EQ(s.stored_values(), c.out * per_row);
    EXPECT_EQ(s.StorageBytes(), 4 * c.out * per_row + c.out * ((per_row + 1) / 2) + 4 * c.out + 32);
  }
  EXPECT_LT(s.StorageBytes(), c.out * c.in * 4 + 4 * c.out);

  // Forward: equal to the reference within fp32 summation error, and bit
  // identical for any pool size and row count.
  ThreadPool one(1), three(3);
  for (int64_t rows : {1, 5, 17}) {
    const MatrixRM x = RandomMatrix(rows, c.in, 10 + rows);
    const MatrixRM ref = Reference(x, s);
    const MatrixRM y1 = ForwardOf(s, x, one), y3 = ForwardOf(s, x, three);
    EXPECT_TRUE((y1.array() == y3.array()).all()) << rows;
    const double err = (y1.cast<double>() - ref.cast<double>()).cwiseAbs().maxCoeff();
    EXPECT_LT(err, 1e-4 * (1.0 + ref.cwiseAbs().maxCoeff())) << rows;
  }

  // Stored tensors rebuild the same layer (same bytes, same outputs).
  auto back = SparseLinear::FromStored("m", AsMap(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->kind(), s.kind());
  EXPECT_EQ((*back)->StorageBytes(), s.StorageBytes());
  EXPECT_TRUE(((*back)->DenseWeight().array() == w.array()).all());
  const MatrixRM x = RandomMatrix(3, c.in, 99);
  EXPECT_TRUE((ForwardOf(**back, x, one).array() == ForwardOf(s, x, one).array()).all());
}

INSTANTIATE_TEST_SUITE_P(Formats, SparseLinearCases,
                         ::testing::Values(Case{"bitmask", SparseFormat::kBitmask, 0, 0, 13, 37},
                                           Case{"bitmask_wide", SparseFormat::kBitmask, 0, 0, 40, 96},
                                           Case{"nm_2of4", SparseFormat::kNM, 2, 4, 13, 36},
                                           Case{"nm_4of8", SparseFormat::kNM, 4, 8, 9, 64},
                                           Case{"nm_3of4", SparseFormat::kNM, 3, 4, 7, 20},
                                           Case{"nm_1of16", SparseFormat::kNM, 1, 16, 5, 48}),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

TEST(SparseLinear, RefusesWhatItCannotHold) {
  const MatrixRM dense = RandomMatrix(4, 8, 3);
  auto over = SparseLinear::FromDense(dense, {}, SparseFormat::kNM, 2, 4);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("more than the 2 of 4 kept"));
  EXPECT_FALSE(SparseLinear::FromDense(dense, {}, SparseFormat::kNM, 2, 3).ok());   // 3 does not divide 8
  EXPECT_FALSE(SparseLinear::FromDense(dense, {}, SparseFormat::kNM, 4, 32).ok());  // M > 16
  EXPECT_FALSE(SparseLinear::FromDense(dense, {1.0f}, SparseFormat::kBitmask).ok());  // bias size
  // All-zero weight: a bitmask layer with no stored value.
  auto empty = SparseLinear::FromDense(MatrixRM::Zero(3, 5), {}, SparseFormat::kBitmask);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ((*empty)->stored_values(), 0);
  ThreadPool pool(2);
  const MatrixRM x = RandomMatrix(2, 5, 4);
  EXPECT_TRUE((ForwardOf(**empty, x, pool).array() == 0.0f).all());
}

// Damaged stored tensors: every inconsistency is an InvalidArgument naming
// the module and the tensor.
TEST(SparseLinear, DamagedTensorsAreRefused) {
  const MatrixRM w = Unstructured(RandomMatrix(6, 12, 5), 0.5, 6);
  auto bm = SparseLinear::FromDense(w, {}, SparseFormat::kBitmask);
  ASSERT_TRUE(bm.ok());
  auto nm = SparseLinear::FromDense(NM(RandomMatrix(6, 12, 7), 2, 4), {}, SparseFormat::kNM, 2, 4);
  ASSERT_TRUE(nm.ok());

  auto expect_refused = [](std::map<std::string, TensorView> t, const std::string& what) {
    auto l = SparseLinear::FromStored("model.layers.0.mlp.up_proj", t);
    EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_THAT(std::string(l.status().message()), HasSubstr("model.layers.0.mlp.up_proj")) << what;
  };
  std::vector<uint8_t> bad_mask;
  {
    auto t = AsMap(**bm);
    t.erase("weight_values");
    expect_refused(t, "no values");
  }
  {  // one more bit than values: popcount and offsets disagree
    auto t = AsMap(**bm);
    const TensorView& m = t["weight_bitmask"];
    bad_mask.assign(static_cast<const uint8_t*>(m.data), static_cast<const uint8_t*>(m.data) + m.nbytes);
    bad_mask[bad_mask.size() - 2] ^= 0x01;
    t["weight_bitmask"].data = bad_mask.data();
    expect_refused(t, "flipped bit");
  }
  std::vector<uint8_t> padding;
  {  // a padding bit (in 12 = 1.5 bytes per row)
    auto t = AsMap(**bm);
    const TensorView& m = t["weight_bitmask"];
    padding.assign(static_cast<const uint8_t*>(m.data), static_cast<const uint8_t*>(m.data) + m.nbytes);
    padding[1] |= 0x80;
    t["weight_bitmask"].data = padding.data();
    expect_refused(t, "padding bit");
  }
  std::vector<uint8_t> idx;
  {  // positions not ascending inside a group
    auto t = AsMap(**nm);
    const TensorView& m = t["weight_indices"];
    idx.assign(static_cast<const uint8_t*>(m.data), static_cast<const uint8_t*>(m.data) + m.nbytes);
    idx[0] = static_cast<uint8_t>((idx[0] >> 4) | ((idx[0] & 0xF) << 4));  // swap the first two positions
    t["weight_indices"].data = idx.data();
    expect_refused(t, "indices");
  }
  {
    auto t = AsMap(**nm);
    t["weight_values"].shape = {6, 5};
    expect_refused(t, "values shape");
  }
  {
    auto t = AsMap(**nm);
    t.erase("weight_nm");
    expect_refused(t, "no nm");
  }
}

// Pruned by magnitude at 2:4 (methods/prune/magnitude.h), the N:M layout
// takes 2.25 bytes per weight plus the bias, the bitmask 2.125 + 8 per row.
TEST(SparseLinear, MagnitudePrunedLayerSizes) {
  const MatrixRM w = RandomMatrix(64, 256, 8);
  MagnitudeOptions o;
  o.sparsity = 0.5;
  auto mask = ParseMaskStructure("2:4");
  ASSERT_TRUE(mask.ok());
  o.mask = *mask;
  auto pruned = MagnitudePrune(w, o);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  auto nm = SparseLinear::FromDense(*pruned, {}, SparseFormat::kNM, 2, 4);
  auto bm = SparseLinear::FromDense(*pruned, {}, SparseFormat::kBitmask);
  ASSERT_TRUE(nm.ok() && bm.ok());
  EXPECT_EQ((*nm)->StorageBytes(), 64 * 128 * 4 + 64 * 64 + 32);
  EXPECT_EQ((*bm)->StorageBytes(), 64 * 128 * 4 + 64 * 32 + 64 * 8 + 16);
  EXPECT_TRUE(((*nm)->DenseWeight().array() == (*bm)->DenseWeight().array()).all());
}

}  // namespace
}  // namespace squeeze
