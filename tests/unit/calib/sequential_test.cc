// Sequential calibration on a synthetic model: the captured inputs equal a
// plain forward's, replacing weights changes later blocks' inputs exactly as
// running the modified model would, and ActivationStats matches plain sums.
#include "workers/engine/calib/sequential.h"

#include <map>
#include <random>

#include <gtest/gtest.h>

#include "tests/common/synthetic_inputs.h"
#include "workers/engine/calib/activation_stats.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

ModelConfig Config() {
  return test_inputs::SmallGqaConfig(/*hidden_dim=*/64, /*n_layers=*/3, /*vocab_size=*/50, /*max_seq_len=*/32,
                                     /*tied=*/true);
}

std::vector<std::vector<int>> Sequences() {
  std::mt19937_64 rng(5);
  std::vector<std::vector<int>> s;
  for (int len : {12, 7, 20}) {
    std::vector<int> t(len);
    for (int& x : t) x = static_cast<int>(rng() % 50);
    s.push_back(t);
  }
  return s;
}

// name + sequence -> captured rows.
using Captures = std::map<std::pair<std::string, int>, MatrixRM>;

class Recorder final : public BlockObserver {
 public:
  Recorder(Captures& c, int seq) : c_(c), seq_(seq) {}
  void OnLinearInput(int layer, BlockLinear which, const float* x, int64_t rows, int64_t cols) override {
    const std::string name = "model.layers." + std::to_string(layer) + "." + BlockLinearSuffix(which);
    c_[{name, seq_}] = ConstMapMatrixRM(x, rows, cols);
  }
  Captures& c_;
  int seq_;
};

// Inputs of every linear from a plain forward (KV-cached, as Forward runs).
Captures PlainForwardCaptures(const Model& m, const std::vector<std::vector<int>>& seqs) {
  Captures c;
  ThreadPool pool(2);
  for (size_t s = 0; s < seqs.size(); ++s) {
    MatrixRM h;
    EXPECT_TRUE(Embed(m, seqs[s], h).ok());
    KVCache cache(m, 0);
    Recorder rec(c, static_cast<int>(s));
    for (int l = 0; l < static_cast<int>(m.blocks.size()); ++l) {
      EXPECT_TRUE(RunBlock(m, l, h, 0, &cache, &rec, pool).ok());
    }
  }
  return c;
}

Captures Calibrate(Model& m, const std::vector<std::vector<int>>& seqs,
                   std::function<absl::StatusOr<bool>(int, Model&)> done, std::vector<int>* progress) {
  Captures c;
  SequentialHooks hooks;
  hooks.on_input = [&](const LinearInput& in) {
    EXPECT_EQ(*in.name, "model.layers." + std::to_string(in.layer) + "." + BlockLinearSuffix(in.which));
    c[{*in.name, in.sequence}] = ConstMapMatrixRM(in.x, in.rows, in.cols);
  };
  hooks.on_block_done = std::move(done);
  hooks.progress = [&](int d, int n) {
    EXPECT_EQ(n, 3);
    if (progress) progress->push_back(d);
  };
  ThreadPool pool(2);
  EXPECT_TRUE(RunSequentialCalibration(m, seqs, hooks, pool).ok());
  return c;
}

TEST(SequentialCalibrationTest, CapturesEqualPlainForward) {
  Model m = MakeRandomModel(Config(), 1);
  const auto seqs = Sequences();
  const Captures plain = PlainForwardCaptures(m, seqs);
  std::vector<int> progress;
  const Captures cal = Calibrate(m, seqs, nullptr, &progress);
  EXPECT_EQ(progress, (std::vector<int>{1, 2, 3}));
  ASSERT_EQ(cal.size(), 3u * 7u * 3u);
  ASSERT_EQ(cal.size(), plain.size());
  for (const auto& [key, x] : plain) {
    auto it = cal.find(key);
    ASSERT_NE(it, cal.end()) << key.first;
    EXPECT_EQ(it->second.rows(), static_cast<int64_t>(seqs[key.second].size()));
    EXPECT_LT((it->second - x).cwiseAbs().maxCoeff(), 1e-5) << key.first << " seq " << key.second;
  }
}

TEST(SequentialCalibrationTest, ReplacedWeightsFeedLaterBlocks) {
  const auto seqs = Sequences();
  // Calibrate, zeroing block 0's o_proj once block 0 is done.
  Model m = MakeRandomModel(Config(), 2);
  Captures before = PlainForwardCaptures(m, seqs);
  int calls = 0;
  const Captures cal = Calibrate(
      m, seqs,
      [&](int layer, Model& model) -> absl::StatusOr<bool> {
        ++calls;
        if (layer != 0) return false;
        model.blocks[0].o_proj = DenseLinear::FromMatrix(MatrixRM::Zero(32, 32));
        return true;
      },
      nullptr);
  EXPECT_EQ(calls, 3);
  // Block 0's own inputs were captured before the change...
  const std::pair<std::string, int> o0{"model.layers.0.self_attn.o_proj", 0};
  EXPECT_LT((cal.at(o0) - before.at(o0)).cwiseAbs().maxCoeff(), 1e-5);
  // ... block 1's inputs are those of the modified model, not the original.
  const Captures after = PlainForwardCaptures(m, seqs);
  for (int s = 0; s < 3; ++s) {
    const std::pair<std::string, int> q1{"model.layers.1.self_attn.q_proj", s};
    EXPECT_LT((cal.at(q1) - after.at(q1)).cwiseAbs().maxCoeff(), 1e-5);
    EXPECT_GT((cal.at(q1) - before.at(q1)).cwiseAbs().maxCoeff(), 1e-3);
  }
}

TEST(SequentialCalibrationTest, HookErrorsStopTheRun) {
  Model m = MakeRandomModel(Config(), 3);
  SequentialHooks hooks;
  int seen = 0;
  hooks.on_block_done = [&](int layer, Model&) -> absl::StatusOr<bool> {
    ++seen;
    return absl::InternalError("method failed");
  };
  auto s = RunSequentialCalibration(m, Sequences(), hooks);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(seen, 1);
  EXPECT_EQ(RunSequentialCalibration(m, {{1, 2}, {}}, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunSequentialCalibration(m, {{1, 50}}, {}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ActivationStatsTest, MatchesPlainSums) {
  const int64_t rows = 37, ch = 70;
  std::mt19937_64 rng(9);
  std::normal_distribution<float> d(0.0f, 2.0f);
  MatrixRM x(rows, ch);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = d(rng);
  ActivationStats stats(ch, true);
  ThreadPool pool(3);
  stats.Add(x.data(), 20, pool);
  stats.Add(x.data() + 20 * ch, rows - 20, pool);
  EXPECT_EQ(stats.count(), rows);
  for (int64_t c = 0; c < ch; ++c) {
    double ss = 0, mx = 0;
    for (int64_t r = 0; r < rows; ++r) {
      ss += double{x(r, c)} * x(r, c);
      mx = std::max(mx, std::abs(double{x(r, c)}));
    }
    EXPECT_NEAR(stats.sum_sq()[c], ss, 1e-9 * ss);
    EXPECT_FLOAT_EQ(stats.max_abs()[c], mx);
    EXPECT_NEAR(stats.ChannelNorms()[c], std::sqrt(ss), 1e-9 * ss);
    for (int64_t c2 = 0; c2 < ch; ++c2) {
      double xtx = 0;
      for (int64_t r = 0; r < rows; ++r) xtx += double{x(r, c)} * x(r, c2);
      ASSERT_NEAR(stats.xtx()(c, c2), xtx, 1e-4 * (1 + std::abs(xtx)));
    }
  }
  ActivationStats no_xtx(ch, false);
  no_xtx.Add(x.data(), rows, pool);
  EXPECT_FALSE(no_xtx.has_xtx());
  EXPECT_EQ(no_xtx.sum_sq(), stats.sum_sq());
}

}  // namespace
}  // namespace squeeze
