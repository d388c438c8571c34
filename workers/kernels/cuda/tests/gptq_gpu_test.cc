// GPU calibration math against the plain CPU references: Hessian
// accumulation, the inverse Cholesky factor, and whole GPTQ runs on odd
// shapes for every strategy / act-order / observer, with a dead column.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "workers/kernels/cuda/gptq_gpu.h"
#include "workers/kernels/cuda/tests/gpu_test_util.h"

namespace squeeze::gpu {
namespace {

using testing::ToDevice;
using testing::ToHost;

// X [rows, in] with correlated columns and a few outlier columns.
std::vector<float> MakeX(int64_t rows, int64_t in, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * in));
  for (int64_t r = 0; r < rows; ++r) {
    const float common = d(rng);
    for (int64_t c = 0; c < in; ++c) {
      x[r * in + c] = d(rng) + 0.5f * common + (c % 17 == 3 ? 4.0f * d(rng) : 0.0f);
    }
  }
  return x;
}

TEST(GptqGpu, HessianAccumulationMatchesReference) {
  SQ_SKIP_WITHOUT_GPU();
  std::mt19937 rng(1);
  for (int64_t in : {1, 7, 130}) {
    for (int64_t rows : {1, 33, 500}) {
      SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(in));
      const std::vector<float> x = MakeX(rows, in, rng);
      std::vector<double> h0(static_cast<size_t>(in * in));
      for (int64_t a = 0; a < in; ++a)
        for (int64_t b = 0; b <= a; ++b) h0[a * in + b] = h0[b * in + a] = 0.25 * static_cast<double>(a + b);
      GpuBuffer dx = ToDevice(x), dh = ToDevice(h0);
      SQ_ASSERT_GPU_OK(HessianAccumulateGpu(dx.as<float>(), rows, in, dh.as<double>()));
      // Twice: accumulation, not overwrite.
      SQ_ASSERT_GPU_OK(HessianAccumulateGpu(dx.as<float>(), rows, in, dh.as<double>()));
      const std::vector<double> h = ToHost<double>(dh, h0.size());
      std::vector<double> ref = h0, absref(h0.size(), 0.0);
      HessianAccumulateReference(x.data(), rows, in, ref.data());
      HessianAccumulateReference(x.data(), rows, in, ref.data());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t a = 0; a < in; ++a)
          for (int64_t b = 0; b < in; ++b)
            absref[a * in + b] += 2.0 * std::fabs(static_cast<double>(x[r * in + a]) * x[r * in + b]);
      for (size_t i = 0; i < h.size(); ++i) {
        ASSERT_NEAR(h[i], ref[i], 1e-12 * (absref[i] + std::fabs(h0[i])) + 1e-300) << "element " << i;
      }
    }
  }
}

TEST(GptqGpu, InverseCholeskyFactorMatchesReference) {
  SQ_SKIP_WITHOUT_GPU();
  std::mt19937 rng(2);
  for (int64_t in : {1, 5, 64, 301}) {
    SCOPED_TRACE(in);
    const std::vector<float> x = MakeX(3 * in + 10, in, rng);
    std::vector<double> h(static_cast<size_t>(in * in), 0.0);
    HessianAccumulateReference(x.data(), 3 * in + 10, in, h.data());
    for (int64_t j = 0; j < in; ++j) h[j * in + j] += 0.01;
    GpuBuffer dh = ToDevice(h);
    SQ_ASSERT_GPU_OK(InverseCholeskyUpperGpu(dh.as<double>(), in));
    const std::vector<double> u = ToHost<double>(dh, h.size());
    std::vector<double> ref = h;
    ASSERT_TRUE(InverseCholeskyUpperReference(ref, in));
    double umax = 0.0;
    for (int64_t k = 0; k < in; ++k)
      for (int64_t j = 0; j <= k; ++j) umax = std::max(umax, std::fabs(ref[j + k * in]));
    for (int64_t k = 0; k < in; ++k)
      for (int64_t j = 0; j <= k; ++j)
        ASSERT_NEAR(u[j + k * in], ref[j + k * in], 1e-9 * umax) << "U(" << j << ", " << k << ")";
  }
  // Not positive definite: a clear error from both.
  std::vector<double> bad = {1.0, 2.0, 2.0, 1.0};
  GpuBuffer db = ToDevice(bad);
  const GpuStatus s = InverseCholeskyUpperGpu(db.as<double>(), 2);
  EXPECT_NE(s.error.find("not positive definite"), std::string::npos) << s.error;
  EXPECT_FALSE(InverseCholeskyUpperReference(bad, 2));
}

struct Config {
  std::string name;
  GptqGpuOptions o;
};

std::vector<Config> Configs() {
  std::vector<Config> c;
  GptqGpuOptions o;
  o.num_bits = 4;
  o.group_size = 32;
  o.block_size = 64;
  c.push_back({"w4 sym g32 b64", o});
  o.symmetric = false;
  o.group_size = 16;
  o.block_size = 50;  // rounded up to 64 on the GPU
  o.mse_observer = true;
  c.push_back({"w4 asym g16 mse b50", o});
  o = GptqGpuOptions{};
  o.num_bits = 8;
  o.strategy = 1;
  o.block_size = 37;
  c.push_back({"w8 channel b37", o});
  o = GptqGpuOptions{};
  o.num_bits = 3;
  o.symmetric = false;
  o.strategy = 0;
  c.push_back({"w3 asym tensor", o});
  o = GptqGpuOptions{};
  o.group_size = 24;
  o.actorder = 1;
  o.block_size = 40;
  c.push_back({"w4 g24 actorder static", o});
  o.actorder = 2;
  o.symmetric = false;
  c.push_back({"w4 asym g24 actorder group", o});
  return c;
}

TEST(GptqGpu, QuantizeMatchesColumnByColumnReference) {
  SQ_SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  const int64_t out = 37, in = 203, rows = 400;
  const std::vector<float> x = MakeX(rows, in, rng);
  std::vector<double> h(static_cast<size_t>(in * in), 0.0);
  HessianAccumulateReference(x.data(), rows, in, h.data());
  for (double& v : h) v *= 2.0 / rows;
  const int64_t dead = 5;
  for (int64_t k = 0; k < in; ++k) h[dead * in + k] = h[k * in + dead] = 0.0;
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(out * in));
  for (float& v : w) v = d(rng);
  for (const Config& cfg : Configs()) {
    SCOPED_TRACE(cfg.name);
    GptqGpuResult g, r;
    SQ_ASSERT_GPU_OK(GptqQuantizeGpu(w.data(), out, in, h.data(), cfg.o, &g));
    SQ_ASSERT_GPU_OK(GptqQuantizeReference(w.data(), out, in, h.data(), cfg.o, &r));
    EXPECT_EQ(g.dead_columns, 1);
    EXPECT_EQ(r.dead_columns, 1);
    ASSERT_EQ(g.codes.size(), r.codes.size());
    int64_t diff = 0;
    for (size_t i = 0; i < g.codes.size(); ++i) diff += g.codes[i] != r.codes[i];
    EXPECT_EQ(diff, 0) << "codes differing from the reference";
    ASSERT_EQ(g.scales.size(), r.scales.size());
    for (size_t i = 0; i < g.scales.size(); ++i) ASSERT_EQ(g.scales[i], r.scales[i]) << "scale " << i;
    EXPECT_EQ(g.zeros, r.zeros);
    EXPECT_EQ(g.g_idx, r.g_idx);
    EXPECT_NEAR(g.loss, r.loss, 1e-9 * std::max(1.0, r.loss));
    EXPECT_EQ(g.damp, r.damp);
    // The dead column's weights are zeroed: every code dequantizes to 0
    // (code == its group's zero point).
    const int64_t gpr = static_cast<int64_t>(g.scales.size()) / out;
    const int64_t gs = cfg.o.strategy == 2 ? std::min<int64_t>(cfg.o.group_size, in) : in;
    const int64_t dg = gpr == 1 ? 0 : (g.g_idx.empty() ? dead / gs : g.g_idx[dead]);
    for (int64_t row = 0; row < out; ++row) {
      EXPECT_EQ(g.codes[row * in + dead], g.zeros.empty() ? 0 : g.zeros[row * gpr + dg]) << "dead column, row " << row;
    }
    const int qmin = -(1 << (cfg.o.num_bits - 1)), qmax = (1 << (cfg.o.num_bits - 1)) - 1;
    for (int32_t c : g.codes) ASSERT_TRUE(c >= qmin && c <= qmax);
  }
}

TEST(GptqGpu, ErrorsNameTheProblem) {
  SQ_SKIP_WITHOUT_GPU();
  const int64_t in = 4;
  std::vector<float> w(8, 0.5f);
  std::vector<double> h(16, 0.0);
  for (int64_t i = 0; i < in; ++i) h[i * in + i] = 1.0;
  h[1] = h[4] = 5.0;  // indefinite
  GptqGpuOptions o;
  o.dampening_frac = 0.0;
  GptqGpuResult res;
  GpuStatus s = GptqQuantizeGpu(w.data(), 2, in, h.data(), o, &res);
  EXPECT_NE(s.error.find("not positive definite"), std::string::npos) << s.error;
  s = GptqQuantizeReference(w.data(), 2, in, h.data(), o, &res);
  EXPECT_NE(s.error.find("not positive definite"), std::string::npos) << s.error;
  o.num_bits = 9;
  s = GptqQuantizeGpu(w.data(), 2, in, h.data(), o, &res);
  EXPECT_NE(s.error.find("num_bits"), std::string::npos) << s.error;
}

}  // namespace
}  // namespace squeeze::gpu
