// Low-rank factorization (workers/methods/lowrank/) and LowRankModifier
// (workers/runner/mod_lowrank.cc):
//  - math: exact reconstruction at full rank, Eckart-Young error at rank r,
//    ASVD's output error below plain SVD's on inputs with uneven channel
//    scales, rank selection and the no-savings refusal;
//  - FactorizedLinear: Forward (two GEMMs) equal to the dense reference,
//    independent of the pool size; save / load round trip;
//  - the modifier through RunRecipe on a small synthetic model, and on the
//    real stories260K (skipped when ../shared is absent), printing
//    perplexities of SVD vs ASVD at a few ranks.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/methods/method_test_util.h"
#include "tests/common/run_helpers.h"
#include "tests/common/synthetic_inputs.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/methods/lowrank/factorized_linear.h"
#include "workers/methods/lowrank/lowrank.h"
#include "workers/methods/lowrank/svd_llm.h"
#include "workers/methods/stored_linear.h"
#include "workers/runner/compressed_model.h"
#include "workers/runner/modifier_registry.h"
#include "workers/runner/recipe.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using test_util::RandomMatrix;
using test_util::XtX;

LowRankOptions Rank(int64_t r, LowRankMethod m = LowRankMethod::kSvd, bool allow = false) {
  LowRankOptions o;
  o.rank = r;
  o.method = m;
  o.allow_no_savings = allow;
  return o;
}

double FrobDiff(const MatrixRM& a, const MatrixRM& b) { return (a.cast<double>() - b.cast<double>()).norm(); }

// ---- Math.

TEST(LowRankFactorize, FullRankReconstructsExactly) {
  for (auto shape : {std::pair<int, int>{24, 40}, {40, 24}, {16, 16}}) {
    const MatrixRM w = RandomMatrix(shape.first, shape.second, 3);
    const int64_t full = std::min(shape.first, shape.second);
    auto f = LowRankFactorize(w, {}, Rank(full, LowRankMethod::kSvd, /*allow=*/true));
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->rank, full);
    EXPECT_EQ(f->u.rows(), shape.first);
    EXPECT_EQ(f->v.cols(), shape.second);
    EXPECT_NEAR(f->energy_kept, 1.0, 1e-12);
    EXPECT_LT(FrobDiff(f->u * f->v, w) / w.cast<double>().norm(), 1e-5);
  }
}

TEST(LowRankFactorize, TruncationErrorIsTheTailSingularValues) {
  // W = P diag(s) Q^T with random orthonormal P, Q and known s.
  const int out = 30, in = 20;
  const Eigen::MatrixXd p = Eigen::HouseholderQR<Eigen::MatrixXd>(RandomMatrix(out, in, 5).cast<double>())
                                .householderQ() * Eigen::MatrixXd::Identity(out, in);
  const Eigen::MatrixXd q = Eigen::HouseholderQR<Eigen::MatrixXd>(RandomMatrix(in, in, 6).cast<double>())
                                .householderQ() * Eigen::MatrixXd::Identity(in, in);
  Eigen::VectorXd s(in);
  for (int i = 0; i < in; ++i) s[i] = 10.0 * std::pow(0.8, i);
  const MatrixRM w = (p * s.asDiagonal() * q.transpose()).cast<float>();
  for (int r : {1, 4, 7}) {
    auto f = LowRankFactorize(w, {}, Rank(r));
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_EQ(f->singular_values.size(), static_cast<size_t>(in));
    for (int i = 0; i < in; ++i) EXPECT_NEAR(f->singular_values[i], s[i], 1e-5 * s[0]);
    const double tail = s.tail(in - r).norm();
    EXPECT_NEAR(FrobDiff(f->u * f->v, w), tail, 1e-4 * s[0]) << "rank " << r;
    EXPECT_NEAR(f->energy_kept, s.head(r).squaredNorm() / s.squaredNorm(), 1e-9);
    // Eckart-Young: no other rank-r matrix does better; a random rank-r
    // perturbation of the optimum is worse.
    const MatrixRM other = f->u * f->v + 0.01f * RandomMatrix(out, r, 9) * RandomMatrix(r, in, 10);
    EXPECT_GT(FrobDiff(other, w), tail);
  }
}

// Inputs whose channels have scales spread over three orders of magnitude.
MatrixRM UnevenInputs(int rows, int in, uint64_t seed, std::vector<double>* rms) {
  MatrixRM x = RandomMatrix(rows, in, seed);
  std::mt19937_64 rng(seed + 1);
  std::uniform_real_distribution<double> d(-3.5, 3.5);
  for (int j = 0; j < in; ++j) x.col(j) *= static_cast<float>(std::exp(d(rng)));
  rms->assign(in, 0.0);
  for (int j = 0; j < in; ++j) (*rms)[j] = x.col(j).cast<double>().norm() / std::sqrt(rows);
  return x;
}

TEST(LowRankFactorize, AsvdOutputErrorBelowSvdOnUnevenChannels) {
  const int out = 48, in = 64, rows = 512;
  std::vector<double> rms;
  const MatrixRM x = UnevenInputs(rows, in, 21, &rms);
  const MatrixRM w = RandomMatrix(out, in, 22);
  for (int r : {4, 8, 16}) {
    auto svd = LowRankFactorize(w, {}, Rank(r));
    LowRankOptions ao = Rank(r, LowRankMethod::kAsvd);
    auto asvd = LowRankFactorize(w, rms, ao);
    ASSERT_TRUE(svd.ok()) << svd.status();
    ASSERT_TRUE(asvd.ok()) << asvd.status();
    const MatrixRM ws = svd->u * svd->v, wa = asvd->u * asvd->v;
    const double out_svd = ((w - ws) * x.transpose()).cast<double>().norm();
    const double out_asvd = ((w - wa) * x.transpose()).cast<double>().norm();
    std::printf("rank %2d: ||(W-What)X^T|| svd %.3f asvd %.3f; ||W-What|| svd %.3f asvd %.3f\n", r, out_svd,
                out_asvd, FrobDiff(ws, w), FrobDiff(wa, w));
    EXPECT_LT(out_asvd, out_svd) << "rank " << r;
    // And plain SVD stays the best in weight space (Eckart-Young).
    EXPECT_LE(FrobDiff(ws, w), FrobDiff(wa, w) * (1 + 1e-6)) << "rank " << r;
  }
  // alpha = 0 is plain SVD.
  LowRankOptions a0 = Rank(8, LowRankMethod::kAsvd);
  a0.asvd_alpha = 0;
  auto f0 = LowRankFactorize(w, rms, a0);
  auto plain = LowRankFactorize(w, {}, Rank(8));
  ASSERT_TRUE(f0.ok() && plain.ok());
  EXPECT_LT(FrobDiff(f0->u * f0->v, plain->u * plain->v), 1e-4);
}

// Inputs with correlated channels: x = z M with a random mixing M and uneven
// channel scales (so X^T X is far from diagonal).
MatrixRM CorrelatedInputs(int rows, int in, uint64_t seed) {
  std::vector<double> rms;
  const MatrixRM z = UnevenInputs(rows, in, seed, &rms);
  const MatrixRM mix = MatrixRM::Identity(in, in) + 0.5f * RandomMatrix(in, in, seed + 7) / std::sqrt(float(in));
  return z * mix;
}

// SVD-LLM: the output error is exactly the tail of W S's singular values, is
// below plain SVD's and ASVD's at the same rank, and equals a plain
// reference whitening by the symmetric square root of X^T X (the optimal
// rank-r weight for the output is unique, whatever whitening reaches it).
TEST(LowRankFactorize, SvdLlmOutputErrorIsTheWhitenedTailAndBeatsSvdAndAsvd) {
  const int out = 40, in = 48, rows = 400;
  const MatrixRM x = CorrelatedInputs(rows, in, 31);
  const MatrixRM w = RandomMatrix(out, in, 32);
  const Eigen::MatrixXd xtx = XtX(x);
  std::vector<double> rms(in);
  for (int j = 0; j < in; ++j) rms[j] = x.col(j).cast<double>().norm() / std::sqrt(rows);
  auto out_err = [&](const MatrixRM& wh) {
    const Eigen::MatrixXd d = (w - wh).cast<double>();
    return std::sqrt((d * xtx).cwiseProduct(d).sum());
  };
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(xtx);
  const Eigen::MatrixXd hs = eig.eigenvectors() * eig.eigenvalues().cwiseSqrt().asDiagonal() * eig.eigenvectors().transpose();
  const Eigen::MatrixXd hs_inv =
      eig.eigenvectors() * eig.eigenvalues().cwiseSqrt().cwiseInverse().asDiagonal() * eig.eigenvectors().transpose();
  for (int r : {4, 8, 16}) {
    auto llm = SvdLlmFactorize(w, xtx, Rank(r, LowRankMethod::kSvdLlm));
    auto svd = LowRankFactorize(w, {}, Rank(r));
    auto asvd = LowRankFactorize(w, rms, Rank(r, LowRankMethod::kAsvd));
    ASSERT_TRUE(llm.ok()) << llm.status();
    ASSERT_TRUE(svd.ok() && asvd.ok());
    EXPECT_EQ(llm->damping, 0.0);
    EXPECT_EQ(llm->factors.rank, r);
    const MatrixRM wl = llm->factors.u * llm->factors.v;
    double tail = 0;
    for (size_t i = r; i < llm->factors.singular_values.size(); ++i) {
      tail += llm->factors.singular_values[i] * llm->factors.singular_values[i];
    }
    const double e_llm = out_err(wl), e_svd = out_err(svd->u * svd->v), e_asvd = out_err(asvd->u * asvd->v);
    std::printf("rank %2d: ||(W-What)X^T|| svd %.3f asvd %.3f svd_llm %.3f (tail %.3f)\n", r, e_svd, e_asvd, e_llm,
                std::sqrt(tail));
    EXPECT_NEAR(e_llm, std::sqrt(tail), 1e-3 * std::sqrt(tail));
    EXPECT_LT(e_llm, e_svd);
    EXPECT_LT(e_llm, e_asvd);
    // Reference: whitening by H^{1/2} (symmetric), truncated SVD, unwhitened.
    Eigen::BDCSVD<Eigen::MatrixXd> ref(w.cast<double>() * hs, Eigen::ComputeThinU | Eigen::ComputeThinV);
    const Eigen::MatrixXd wr = ref.matrixU().leftCols(r) * ref.singularValues().head(r).asDiagonal() *
                               ref.matrixV().leftCols(r).transpose() * hs_inv;
    EXPECT_LT((wl.cast<double>() - wr).norm(), 1e-3 * wr.norm()) << "rank " << r;
  }
  // Fewer calibration rows than inputs: X^T X is singular, damping makes it usable.
  const MatrixRM few = CorrelatedInputs(16, in, 33);
  auto damped = SvdLlmFactorize(w, XtX(few), Rank(8, LowRankMethod::kSvdLlm));
  ASSERT_TRUE(damped.ok()) << damped.status();
  EXPECT_GT(damped->damping, 0.0);
  EXPECT_TRUE(damped->factors.u.allFinite() && damped->factors.v.allFinite());
  // Refusals.
  EXPECT_FALSE(SvdLlmFactorize(w, Eigen::MatrixXd::Identity(in - 1, in - 1), Rank(8)).ok());
  EXPECT_FALSE(SvdLlmFactorize(w, Eigen::MatrixXd::Zero(in, in), Rank(8)).ok());
  EXPECT_FALSE(LowRankFactorize(w, {}, Rank(8, LowRankMethod::kSvdLlm)).ok());
}

TEST(LowRankFactorize, RankSelectionAndRefusals) {
  const MatrixRM w = RandomMatrix(40, 60, 4);
  LowRankOptions o;
  o.rank_ratio = 0.25;
  auto f = LowRankFactorize(w, {}, o);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->rank, 10);

  o = LowRankOptions();
  o.energy = 0.6;
  f = LowRankFactorize(w, {}, o);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_GE(f->energy_kept, 0.6);
  double prev = 0;  // one fewer value would keep less than 60%
  for (int64_t i = 0; i + 1 < f->rank; ++i) prev += f->singular_values[i] * f->singular_values[i];
  double total = 0;
  for (double s : f->singular_values) total += s * s;
  EXPECT_LT(prev / total, 0.6);

  // 40 * 60 = 2400; r * 100 >= 2400 from r = 24.
  auto refused = LowRankFactorize(w, {}, Rank(24));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("saves no parameters"));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("allow_no_savings"));
  EXPECT_TRUE(LowRankFactorize(w, {}, Rank(23)).ok());
  EXPECT_TRUE(LowRankFactorize(w, {}, Rank(24, LowRankMethod::kSvd, true)).ok());
  // Rank above min(out, in) is capped.
  auto capped = LowRankFactorize(w, {}, Rank(500, LowRankMethod::kSvd, true));
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->rank, 40);

  LowRankOptions two = Rank(4);
  two.energy = 0.5;
  EXPECT_EQ(LowRankFactorize(w, {}, two).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LowRankFactorize(w, {}, LowRankOptions()).status().code(), absl::StatusCode::kInvalidArgument);
  auto no_mags = LowRankFactorize(w, {1.0, 2.0}, Rank(4, LowRankMethod::kAsvd));
  EXPECT_THAT(std::string(no_mags.status().message()), HasSubstr("60 input channel magnitudes"));
  MatrixRM bad = w;
  bad(3, 3) = NAN;
  EXPECT_EQ(LowRankFactorize(bad, {}, Rank(4)).status().code(), absl::StatusCode::kInvalidArgument);
  // Zero channels (never active) do not break ASVD.
  std::vector<double> mags(60, 1.0);
  mags[5] = 0.0;
  auto zero = LowRankFactorize(w, mags, Rank(4, LowRankMethod::kAsvd));
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_TRUE(zero->v.allFinite());
}

// ---- FactorizedLinear.

TEST(FactorizedLinear, ForwardMatchesDenseReferenceForAnyPool) {
  const int out = 70, in = 50, r = 9, n = 13;
  std::vector<float> bias(out);
  for (int i = 0; i < out; ++i) bias[i] = 0.01f * i - 0.3f;
  auto layer = FactorizedLinear::Create(RandomMatrix(out, r, 1), RandomMatrix(r, in, 2), bias);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ((*layer)->kind(), "lowrank_r9");
  EXPECT_EQ((*layer)->in_features(), in);
  EXPECT_EQ((*layer)->out_features(), out);
  EXPECT_EQ((*layer)->StorageBytes(), static_cast<int64_t>((out * r + r * in + out) * 4));
  const MatrixRM x = RandomMatrix(n, in, 3);
  MatrixRM ref = x * (*layer)->DenseWeight().transpose();
  ref.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias.data(), out);
  ThreadPool p1(1), p3(3);
  MatrixRM y1(n, out), y3(n, out);
  (*layer)->Forward(x.data(), n, y1.data(), p1);
  (*layer)->Forward(x.data(), n, y3.data(), p3);
  EXPECT_TRUE((y1.array() == y3.array()).all()) << "Forward depends on the pool size";
  EXPECT_LT(FrobDiff(y1, ref) / ref.cast<double>().norm(), 1e-5);

  EXPECT_FALSE(FactorizedLinear::Create(RandomMatrix(4, 3, 1), RandomMatrix(2, 5, 1)).ok());
  EXPECT_FALSE(FactorizedLinear::Create(RandomMatrix(4, 2, 1), RandomMatrix(2, 5, 1), {1.0f}).ok());
}

TEST(FactorizedLinear, StoredTensorsRebuildTheLayer) {
  auto layer = FactorizedLinear::Create(RandomMatrix(6, 2, 1), RandomMatrix(2, 5, 2), {1, 2, 3, 4, 5, 6});
  ASSERT_TRUE(layer.ok());
  std::map<std::string, TensorView> t;
  for (auto& [name, view] : (*layer)->StoredTensors()) t[name] = view;
  EXPECT_EQ(t.size(), 3u);
  auto back = LinearFromStoredTensors("m", t);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->kind(), "lowrank_r2");
  EXPECT_TRUE(((*back)->DenseWeight().array() == (*layer)->DenseWeight().array()).all());
  EXPECT_EQ((*back)->bias().size(), 6u);
  t.erase("weight_v");
  auto missing = LinearFromStoredTensors("model.layers.0.mlp.up_proj", t);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("model.layers.0.mlp.up_proj: missing tensor weight_v"));
}

ModelConfig SmallConfig(int vocab) {
  return test_inputs::SmallGqaConfig(/*hidden_dim=*/64, /*n_layers=*/2, /*vocab_size=*/vocab, /*max_seq_len=*/64,
                                     /*tied=*/false);
}

std::string Fresh(const std::string& name) { return test_inputs::FreshTestDir("squeeze_lowrank_test_", name); }

MatrixRM Logits(const Model& m, const std::vector<int>& tokens) {
  KVCache cache(m, 16);
  MatrixRM logits;
  absl::Status s = Forward(m, tokens, 0, cache, logits);
  EXPECT_TRUE(s.ok()) << s;
  return logits;
}

TEST(FactorizedLinear, SaveModelLoadModelRoundTrip) {
  Model m = MakeRandomModel(SmallConfig(40), 7);
  for (const LinearSlot& s : m.BlockLinears(1)) {
    auto f = LowRankFactorize((*s.slot)->DenseWeight(), {}, Rank(5));
    ASSERT_TRUE(f.ok()) << s.name << ": " << f.status();
    auto layer = FactorizedLinear::Create(std::move(f->u), std::move(f->v));
    ASSERT_TRUE(layer.ok());
    *s.slot = std::move(*layer);
  }
  const std::string dir = Fresh("roundtrip");
  ASSERT_TRUE(SaveModel(m, dir).ok());
  auto back = LoadCompressedModel(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  for (const LinearSlot& s : back->BlockLinears(1)) {
    EXPECT_EQ((*s.slot)->kind(), "lowrank_r5") << s.name;
    EXPECT_NE(dynamic_cast<const FactorizedLinear*>(s.slot->get()), nullptr);
  }
  for (const LinearSlot& s : back->BlockLinears(0)) EXPECT_EQ((*s.slot)->kind(), "dense_f32");
  const std::vector<int> tokens = {1, 5, 9, 13};
  EXPECT_TRUE((Logits(m, tokens).array() == Logits(*back, tokens).array()).all());
}

// ---- The modifier.

absl::StatusOr<std::unique_ptr<Modifier>> MakeModifier(const std::string& json_args) {
  return ModifierRegistry::Builtin().Create("LowRankModifier", nlohmann::json::parse(json_args),
                                            "s.m.LowRankModifier");
}

TEST(LowRankModifier, ArgumentErrorsNameTheField) {
  EXPECT_TRUE(MakeModifier(R"({"rank": 8})").ok());
  EXPECT_TRUE(MakeModifier(R"({"rank_ratio": 0.3, "method": "asvd", "asvd_alpha": 1.0})").ok());
  EXPECT_TRUE((*MakeModifier(R"({"energy": 0.9, "method": "asvd"})"))->needs_calibration());
  EXPECT_FALSE((*MakeModifier(R"({"energy": 0.9})"))->needs_calibration());
  struct Case {
    const char* args;
    const char* message;
  };
  for (const Case& c : {Case{R"({})", "exactly one of rank, rank_ratio or energy"},
                        Case{R"({"rank": 4, "energy": 0.5})", "exactly one of rank"},
                        Case{R"({"rank": 0})", "s.m.LowRankModifier.rank: 0 must be >= 1"},
                        Case{R"({"rank": 2.5})", "rank: expected an integer"},
                        Case{R"({"rank_ratio": 1.5})", "rank_ratio: 1.5 is outside (0, 1]"},
                        Case{R"({"energy": 0})", "energy: 0 is outside (0, 1]"},
                        Case{R"({"rank": 4, "method": "svd-llm"})", "method: unknown value \"svd-llm\""},
                        Case{R"({"rank": 4, "asvd_alpha": 0.5})", "asvd_alpha: only applies with method: asvd"},
                        Case{R"({"rank": 4, "method": "asvd", "asvd_alpha": -1})", "asvd_alpha: -1 must be"},
                        Case{R"({"rank": 4, "ranks": 3})", "unknown argument"}}) {
    auto m = MakeModifier(c.args);
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << c.args;
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.message)) << c.args;
  }
}

const std::string& SyntheticModelDir() {
  static const std::string dir = [] {
    auto d = test_inputs::WriteSyntheticModelDir("squeeze_lowrank_test_", "model", SmallConfig(259), 11);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : std::string();
  }();
  return dir;
}

const std::string& CalibText() {
  static const std::string path = [] {
    auto p = test_inputs::WriteCalibrationText("squeeze_lowrank_test_", 777);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : std::string();
  }();
  return path;
}

absl::StatusOr<RunResult> RunLowRank(const std::string& yaml, const std::string& model, const std::string& out,
                                     const std::string& calib, const std::string& eval = "", int64_t eval_bytes = 0) {
  auto recipe = ParseRecipe(yaml);
  if (!recipe.ok()) return recipe.status();
  RunOptions o;
  o.model_path = model;
  o.output_dir = out;
  o.calib_text_path = calib;
  o.eval_text_path = eval;
  o.eval_max_bytes = eval_bytes;
  NullProgressSink null;
  RunControl control;
  return RunRecipe(*recipe, o, null, control);
}

TEST(LowRankModifier, ThroughRunRecipeOnSyntheticModel) {
  const std::string asvd_yaml =
      "num_calibration_samples: 4\nmax_seq_length: 32\n"
      "s:\n  m_modifiers:\n    LowRankModifier: {rank_ratio: 0.25, method: asvd}\n";
  auto missing = RunLowRank(asvd_yaml, SyntheticModelDir(), Fresh("nocalib"), "");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("calibration"));

  auto refused = RunLowRank("s:\n  m_modifiers:\n    LowRankModifier: {rank: 20}\n", SyntheticModelDir(), Fresh("refused"), "");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("model.layers.0.self_attn.q_proj: rank 20 saves no"));

  for (const char* method : {"svd", "asvd", "svd_llm"}) {
    SCOPED_TRACE(method);
    const std::string yaml = std::string("num_calibration_samples: 4\nmax_seq_length: 32\n") +
                             "s:\n  m_modifiers:\n    LowRankModifier: {rank_ratio: 0.25, method: " + method + "}\n";
    const std::string out = Fresh(method);
    auto r = RunLowRank(yaml, SyntheticModelDir(), out, CalibText());
    ASSERT_TRUE(r.ok()) << r.status();
    const nlohmann::json& layers = r->report["stages"][0]["layers"];
    ASSERT_EQ(layers.size(), 2u);
    for (const auto& l : layers) {
      ASSERT_EQ(l["modules"].size(), 7u);
      for (const auto& m : l["modules"]) {
        EXPECT_EQ(m["modifier"], "LowRankModifier");
        const double rank = m["rank"].get<double>();
        EXPECT_EQ(m["kind"], "lowrank_r" + std::to_string(static_cast<int>(rank))) << m.dump();
        EXPECT_LT(m["params_after"].get<double>(), m["params_before"].get<double>()) << m.dump();
        EXPECT_LT(m["bytes_after"].get<double>(), m["bytes_before"].get<double>()) << m.dump();
        const double e = m["rel_error"].get<double>();
        EXPECT_TRUE(e > 0 && e < 1) << m.dump();
      }
    }
    auto loaded = LoadCompressedModel(out);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    for (int l = 0; l < 2; ++l) {
      for (const LinearSlot& s : loaded->BlockLinears(l)) {
        const auto* f = dynamic_cast<const FactorizedLinear*>(s.slot->get());
        ASSERT_NE(f, nullptr) << s.name;
        // round(0.25 * min(out, in)): 4 for k/v [16, 32], 8 for the others.
        const int64_t expected = std::llround(0.25 * std::min(f->out_features(), f->in_features()));
        EXPECT_EQ(f->rank(), expected) << s.name;
        EXPECT_GE(f->rank(), 4);
      }
    }
    EXPECT_EQ(loaded->lm_head->kind(), "dense_f32");
    EXPECT_TRUE(Logits(*loaded, {1, 70, 80, 90}).allFinite());
  }
}

// A stop after block 0 and a resume (which reloads the factorized block 0
// from the checkpoint) give byte-identical artifacts to one uninterrupted run.
TEST(LowRankModifier, StopAndResumeIsByteIdentical) {
  RunOptions o;
  o.model_path = SyntheticModelDir();
  o.calib_text_path = CalibText();
  const std::string full = Fresh("full"), resumed = Fresh("resumed");
  absl::Status s = test_inputs::RunFullAndResumed(
      "num_calibration_samples: 4\nmax_seq_length: 32\n"
      "s:\n  m_modifiers:\n    LowRankModifier: {rank: 6, method: asvd}\n",
      o, full, resumed, /*stop_after=*/1);
  ASSERT_TRUE(s.ok()) << s;
  const auto a = test_inputs::DirContents(full), b = test_inputs::DirContents(resumed);
  EXPECT_GE(a.size(), 2u);
  for (const auto& [name, bytes] : a) {
    EXPECT_TRUE(b.count(name) && b.at(name) == bytes) << name << " differs after stop / resume";
  }
}

TEST(LowRankModifier, Stories260KPerplexitySvdAsvdSvdLlm) {
  const test_inputs::SharedStories st = test_inputs::Stories260K(SQUEEZE_SHARED_DIR);
  if (!st.ok) GTEST_SKIP() << st.missing;
  const std::string &model = st.model, &train = st.train, &valid = st.valid;
  // Linears: q/o [64, 64], k/v [32, 64], gate/up [172, 64], down [64, 172];
  // ratio 0.45 is the largest that still saves parameters in q/o (29 < 32).
  double dense = 0;
  std::map<std::string, std::vector<double>> ppl;
  for (const char* method : {"svd", "asvd", "svd_llm"}) {
    for (const char* ratio : {"0.3", "0.45"}) {
      const std::string yaml = std::string("num_calibration_samples: 16\nmax_seq_length: 256\n") +
                               "s:\n  m_modifiers:\n    LowRankModifier: {rank_ratio: " + ratio + ", method: " + method +
                               "}\n";
      auto r = RunLowRank(yaml, model, Fresh(std::string("stories_") + method + ratio), train, valid, 4096);
      ASSERT_TRUE(r.ok()) << r.status();
      const nlohmann::json& p = r->report["perplexity"];
      dense = p["before"].get<double>();
      const double after = p["after"].get<double>();
      double pb = 0, pa = 0;
      for (const auto& l : r->report["stages"][0]["layers"]) {
        for (const auto& m : l["modules"]) {
          pb += m["params_before"].get<double>();
          pa += m["params_after"].get<double>();
        }
      }
      std::printf("stories260K %-4s rank_ratio %-4s: linear params %.0f -> %.0f (%.1f%%), ppl %.3f (dense %.3f)\n",
                  method, ratio, pb, pa, 100.0 * pa / pb, after, dense);
      EXPECT_TRUE(std::isfinite(after));
      EXPECT_GT(after, 1.0);
      ppl[method].push_back(after);
    }
  }
  // More rank, lower perplexity, for both methods; never below dense.
  for (const auto& [method, v] : ppl) {
    for (size_t i = 1; i < v.size(); ++i) EXPECT_LT(v[i], v[i - 1]) << method;
    EXPECT_GT(v.back(), dense) << method;
  }
  // ASVD's claim (activation-aware truncation loses less): lower perplexity
  // than plain SVD at the same rank.
  for (size_t i = 0; i < ppl["svd"].size(); ++i) EXPECT_LT(ppl["asvd"][i], ppl["svd"][i]) << "ratio #" << i;
  // SVD-LLM's claim (truncation-aware whitening): lower perplexity than plain SVD.
  for (size_t i = 0; i < ppl["svd"].size(); ++i) EXPECT_LT(ppl["svd_llm"][i], ppl["svd"][i]) << "ratio #" << i;
}

}  // namespace
}  // namespace squeeze
