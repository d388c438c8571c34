#include "workers/methods/quant/rtn.h"

#include <iostream>
#include <random>

#include <gtest/gtest.h>

#include "tests/unit/methods/method_test_util.h"

#include "workers/engine/model/dense_linear.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/stored_linear.h"

namespace squeeze {
namespace {

using test_util::Args;
using test_util::RandomMatrix;

TEST(Pack, RoundTripsEveryBitWidth) {
  std::mt19937 rng(7);
  for (int bits = 2; bits <= 8; ++bits) {
    const int qmin = -(1 << (bits - 1)), qmax = (1 << (bits - 1)) - 1;
    std::uniform_int_distribution<int> d(qmin, qmax);
    for (int n : {1, 7, 31, 64, 172}) {
      std::vector<int32_t> codes(n), back(n);
      for (int32_t& c : codes) c = d(rng);
      codes[0] = qmin;
      codes[n - 1] = qmax;
      std::vector<uint32_t> words((n + ValuesPerWord(bits) - 1) / ValuesPerWord(bits));
      PackRow(codes.data(), n, bits, words.data());
      UnpackRow(words.data(), n, bits, back.data());
      EXPECT_EQ(codes, back) << bits << " bits, n " << n;
    }
  }
}

TEST(Pack, Int4LayoutIsLowNibbleFirst) {
  // Codes -8..7 are stored as u = q + 8; value j at bits [4j, 4j + 4).
  const std::vector<int32_t> codes = {-8, -7, 0, 7, 1, 2, 3, 4};
  uint32_t word = 0;
  PackRow(codes.data(), 8, 4, &word);
  EXPECT_EQ(word, 0xCBA9F810u);
}

TEST(Rtn, DequantizedWeightEqualsReferenceBitForBit) {
  const MatrixRM w = RandomMatrix(24, 172, 11);
  for (const WeightQuantArgs& a :
       {Args(4, true, QuantStrategy::kGroup, 64), Args(4, false, QuantStrategy::kGroup, 128),
        Args(8, true, QuantStrategy::kChannel), Args(3, true, QuantStrategy::kChannel),
        Args(8, false, QuantStrategy::kTensor), Args(2, false, QuantStrategy::kGroup, 32)}) {
    auto q = QuantizeRtn(w, a);
    ASSERT_TRUE(q.ok()) << q.status();
    const MatrixRM ref = FakeQuantRtnReference(w, a);
    const MatrixRM got = (*q)->DenseWeight();
    EXPECT_TRUE((got.array() == ref.array()).all()) << a.ShortName();
  }
}

TEST(Rtn, ErrorBoundsPerScheme) {
  const MatrixRM w = RandomMatrix(32, 128, 12);
  for (const WeightQuantArgs& a :
       {Args(4, true, QuantStrategy::kGroup, 128), Args(4, false, QuantStrategy::kGroup, 128),
        Args(8, true, QuantStrategy::kChannel), Args(4, true, QuantStrategy::kGroup, 32),
        Args(8, false, QuantStrategy::kTensor)}) {
    auto q = QuantizeRtn(w, a);
    ASSERT_TRUE(q.ok());
    const PackedIntLinear& l = **q;
    const MatrixRM got = l.DenseWeight();
    const int64_t gs = a.EffectiveGroupSize(128);
    for (int r = 0; r < 32; ++r) {
      for (int c = 0; c < 128; ++c) {
        const float s = l.Scale(r, c / gs);
        const float bound = (a.symmetric ? 0.5f : 1.0f) * s * (1.0f + 1e-5f);
        ASSERT_LE(std::fabs(w(r, c) - got(r, c)), bound) << a.ShortName() << " at " << r << "," << c;
      }
    }
  }
  // More bits, smaller groups => smaller error.
  auto e = [&](const WeightQuantArgs& a) { return RelativeError(w, (*QuantizeRtn(w, a))->DenseWeight()); };
  const double e8 = e(Args(8, true, QuantStrategy::kChannel));
  const double e4c = e(Args(4, true, QuantStrategy::kChannel));
  const double e4g = e(Args(4, true, QuantStrategy::kGroup, 32));
  const double e3 = e(Args(3, true, QuantStrategy::kChannel));
  EXPECT_LT(e8, 0.01);
  EXPECT_LT(e8, e4g);
  EXPECT_LT(e4g, e4c);
  EXPECT_LT(e4c, e3);
  EXPECT_LT(e3, 0.5);
}

TEST(Rtn, AsymmetricHelpsOneSidedWeights) {
  MatrixRM w = RandomMatrix(8, 64, 13).cwiseAbs();  // all >= 0
  const double sym = RelativeError(w, (*QuantizeRtn(w, Args(4, true, QuantStrategy::kChannel)))->DenseWeight());
  const double asym = RelativeError(w, (*QuantizeRtn(w, Args(4, false, QuantStrategy::kChannel)))->DenseWeight());
  EXPECT_LT(asym, sym);
}

TEST(Rtn, ZeroGroupsStayZero) {
  MatrixRM w = RandomMatrix(4, 16, 14);
  w.row(2).setZero();
  auto q = QuantizeRtn(w, Args(4, false, QuantStrategy::kChannel));
  ASSERT_TRUE(q.ok());
  EXPECT_TRUE(((*q)->DenseWeight().row(2).array() == 0.0f).all());
}

TEST(PackedIntLinear, ForwardEqualsDenseWeightMatmul) {
  const MatrixRM w = RandomMatrix(70, 172, 15);
  std::vector<float> bias(70);
  for (int i = 0; i < 70; ++i) bias[i] = 0.01f * i;
  auto q = QuantizeRtn(w, Args(4, true, QuantStrategy::kGroup, 64), bias);
  ASSERT_TRUE(q.ok());
  const MatrixRM x = RandomMatrix(5, 172, 16);
  MatrixRM y(5, 70);
  ThreadPool pool(2);
  (*q)->Forward(x.data(), 5, y.data(), pool);
  MatrixRM ref = x * (*q)->DenseWeight().transpose();
  ref.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias.data(), 70);
  EXPECT_LT((y - ref).cwiseAbs().maxCoeff(), 1e-4f * (1.0f + ref.cwiseAbs().maxCoeff()));
  // Independent of the pool size.
  MatrixRM y1(5, 70);
  ThreadPool one(1);
  (*q)->Forward(x.data(), 5, y1.data(), one);
  EXPECT_TRUE((y.array() == y1.array()).all());
}

TEST(PackedIntLinear, StoredTensorsRoundTrip) {
  const MatrixRM w = RandomMatrix(20, 40, 17);
  auto q = QuantizeRtn(w, Args(4, false, QuantStrategy::kGroup, 16), std::vector<float>(20, 0.5f));
  ASSERT_TRUE(q.ok());
  std::map<std::string, TensorView> tensors;
  for (auto& [name, view] : (*q)->StoredTensors()) tensors[name] = view;
  ASSERT_TRUE(tensors.count("weight_packed"));
  EXPECT_EQ(tensors["weight_packed"].dtype, DType::kI32);
  EXPECT_EQ(tensors["weight_packed"].shape, (std::vector<int64_t>{20, 5}));
  EXPECT_EQ(tensors["weight_scale"].shape, (std::vector<int64_t>{20, 3}));
  EXPECT_EQ(tensors["weight_zero_point"].shape, (std::vector<int64_t>{20, 3}));
  auto back = LinearFromStoredTensors("m", tensors);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->kind(), (*q)->kind());
  EXPECT_TRUE(((*back)->DenseWeight().array() == (*q)->DenseWeight().array()).all());
  EXPECT_EQ((*back)->bias().size(), 20u);
  EXPECT_EQ((*back)->StorageBytes(), (*q)->StorageBytes());
  // 4-bit storage is far below fp32.
  EXPECT_LT((*q)->StorageBytes(), static_cast<int64_t>(w.size() * sizeof(float)) / 3);

  // Damaged tensors are rejected with the module name.
  std::map<std::string, TensorView> bad = tensors;
  bad.erase("weight_scale");
  auto e = LinearFromStoredTensors("model.layers.0.mlp.up_proj", bad);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("model.layers.0.mlp.up_proj"), absl::string_view::npos) << e.status();
  bad = tensors;
  std::vector<int32_t> qp = {9, 0, 2, 16};
  bad["weight_qparams"].data = qp.data();
  EXPECT_FALSE(LinearFromStoredTensors("m", bad).ok());
}

TEST(PackedIntLinear, FromCodesRejectsOutOfRange) {
  const WeightQuantArgs a = Args(4, true, QuantStrategy::kChannel);
  std::vector<int32_t> q(8, 0);
  q[3] = 8;
  EXPECT_FALSE(PackedIntLinear::FromCodes(a, 2, 4, q, {1.0f, 1.0f}, {}).ok());
  q[3] = -8;
  EXPECT_TRUE(PackedIntLinear::FromCodes(a, 2, 4, q, {1.0f, 1.0f}, {}).ok());
}

TEST(Schemes, Presets) {
  EXPECT_EQ(WeightOnlySchemePreset("W4A16")->ShortName(), "w4_sym_g128");
  EXPECT_EQ(WeightOnlySchemePreset("W4A16_ASYM")->ShortName(), "w4_asym_g128");
  EXPECT_EQ(WeightOnlySchemePreset("W8A16")->ShortName(), "w8_sym_channel");
  EXPECT_EQ(WeightOnlySchemePreset("W8A8").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(WeightOnlySchemePreset("W5A3").status().code(), absl::StatusCode::kInvalidArgument);
}


// observer: mse (quant_grid.h): on heavy-tailed weights (Student-t, 2
// degrees of freedom) a few large values stretch the minmax range; the
// shrink-grid search finds a clipping range with a smaller squared
// error. It is never worse than minmax for any row (p = 1 is on the grid),
// and the packed layer holds exactly the reference's dequantized values.
TEST(Rtn, MseObserverBeatsMinmaxOnHeavyTailedWeights) {
  std::mt19937_64 rng(11);
  std::student_t_distribution<float> t(2.0f);
  MatrixRM w(48, 256);
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = t(rng);
  for (const WeightQuantArgs& base : {Args(4, true, QuantStrategy::kChannel), Args(3, true, QuantStrategy::kChannel),
                                      Args(4, false, QuantStrategy::kGroup, 64), Args(2, false, QuantStrategy::kTensor)}) {
    WeightQuantArgs mse = base;
    mse.observer = QuantObserver::kMse;
    const MatrixRM a = FakeQuantRtnReference(w, base), b = FakeQuantRtnReference(w, mse);
    const double e_minmax = (w - a).cast<double>().squaredNorm(), e_mse = (w - b).cast<double>().squaredNorm();
    std::cout << base.ShortName() << ": squared error minmax " << e_minmax << ", mse " << e_mse << "\n";
    EXPECT_LT(e_mse, 0.99 * e_minmax) << base.ShortName();
    if (base.strategy != QuantStrategy::kTensor) {
      for (int64_t r = 0; r < w.rows(); ++r) {
        EXPECT_LE((w.row(r) - b.row(r)).cast<double>().squaredNorm(),
                  (w.row(r) - a.row(r)).cast<double>().squaredNorm() * (1 + 1e-12))
            << base.ShortName() << " row " << r;
      }
    }
    auto q = QuantizeRtn(w, mse);
    ASSERT_TRUE(q.ok());
    EXPECT_TRUE(((*q)->DenseWeight().array() == b.array()).all()) << base.ShortName();
  }
  // A group without outliers: uniform values are best left unclipped.
  MatrixRM u(1, 16);
  for (int i = 0; i < 16; ++i) u(0, i) = -1.0f + 2.0f * static_cast<float>(i) / 15.0f;
  WeightQuantArgs m8 = Args(8, true, QuantStrategy::kChannel);
  m8.observer = QuantObserver::kMse;
  EXPECT_LE((u - FakeQuantRtnReference(u, m8)).squaredNorm(),
            (u - FakeQuantRtnReference(u, Args(8, true, QuantStrategy::kChannel))).squaredNorm());
}

TEST(Schemes, ObserverNamesAndW8A8Preset) {
  EXPECT_EQ(*ParseQuantObserver("mse"), QuantObserver::kMse);
  EXPECT_EQ(*ParseQuantObserver("minmax"), QuantObserver::kMinMax);
  EXPECT_FALSE(ParseQuantObserver("percentile").ok());
  auto p = FindSchemePreset("W8A8");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->int8_token_activations);
  EXPECT_EQ(p->weights.ShortName(), "w8_sym_channel");
  EXPECT_FALSE(FindSchemePreset("W4A16")->int8_token_activations);
}

}  // namespace
}  // namespace squeeze
