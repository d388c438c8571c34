// CPU only (built in every Squeeze build, runs in CI): the plain references
// of workers/kernels/cuda against the engine's own code, so that "GPU equals
// its reference" also means "GPU equals what the engine does":
//  * GptqQuantizeReference == squeeze::QuantizeGptqReference (codes, scales,
//    zero points, g_idx, loss) for every strategy / act-order / observer;
//  * PackedIntGemvReference reads PackedIntLinear's stored weight_packed /
//    weight_scale / weight_zero_point bytes unchanged and equals the layer's
//    Forward and kernels::PackedIntGemmReference;
//  * Int8GemmNTReference is bit-identical to kernels::Int8GemmNTReference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "workers/engine/core/thread_pool.h"
#include "workers/kernels/cpu/int8_gemm.h"
#include "workers/kernels/cpu/packed_int_gemm.h"
#include "workers/kernels/cuda/fp16.h"
#include "workers/kernels/cuda/gptq_gpu.h"
#include "workers/kernels/cuda/packed_int_gemv.h"
#include "workers/kernels/cuda/w8a8_gemm.h"
#include "workers/methods/quant/gptq.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "tests/common/gptq_cases.h"

namespace squeeze {
namespace {

using testing_gptq::CorrelatedCalibrationX;
using testing_gptq::GptqCase;
using testing_gptq::GptqCoverageCases;

TEST(CudaReferences, GptqReferenceEqualsEngineGptq) {
  std::mt19937 rng(21);
  const int64_t out = 23, in = 150, n = 300;
  const MatrixRM x = CorrelatedCalibrationX(n, in, rng);
  const Eigen::MatrixXd xd = x.cast<double>();
  Eigen::MatrixXd h = (2.0 / n) * (xd.transpose() * xd);
  h.row(9).setZero();
  h.col(9).setZero();
  MatrixRM w(out, in);
  std::normal_distribution<float> d(0.0f, 0.02f);
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = d(rng);

  std::vector<double> hflat(static_cast<size_t>(in * in));
  for (int64_t i = 0; i < in; ++i)
    for (int64_t j = 0; j < in; ++j) hflat[i * in + j] = h(i, j);
  for (const GptqCase& c : GptqCoverageCases()) {
    SCOPED_TRACE(c.name);
    GptqOptions o;
    o.quant = c.quant;
    o.block_size = c.block_size;
    o.actorder = c.order;
    auto eng = QuantizeGptqReference(w, h, o);
    ASSERT_TRUE(eng.ok()) << eng.status();
    gpu::GptqGpuOptions g;
    g.num_bits = c.quant.num_bits;
    g.symmetric = c.quant.symmetric;
    g.strategy = static_cast<int>(c.quant.strategy);
    g.group_size = c.quant.group_size;
    g.mse_observer = c.quant.observer == QuantObserver::kMse;
    g.block_size = c.block_size;
    g.actorder = static_cast<int>(c.order);
    gpu::GptqGpuResult mine;
    const gpu::GpuStatus st = gpu::GptqQuantizeReference(w.data(), out, in, hflat.data(), g, &mine);
    ASSERT_TRUE(st.ok()) << st.error;
    const PackedIntLinear& l = *eng->layer;
    int64_t diff = 0;
    for (int64_t r = 0; r < out; ++r)
      for (int64_t k = 0; k < in; ++k) diff += l.Code(r, k) != mine.codes[r * in + k];
    EXPECT_EQ(diff, 0);
    ASSERT_EQ(static_cast<int64_t>(mine.scales.size()), out * l.groups_per_row());
    for (int64_t r = 0; r < out; ++r) {
      for (int64_t gi = 0; gi < l.groups_per_row(); ++gi) {
        const size_t i = static_cast<size_t>(r * l.groups_per_row() + gi);
        ASSERT_NEAR(mine.scales[i], l.Scale(r, gi), 1e-6f * std::fabs(l.Scale(r, gi))) << r << "," << gi;
        if (!c.quant.symmetric) {
          ASSERT_EQ(mine.zeros[i], l.ZeroPoint(r, gi));
        }
      }
    }
    EXPECT_EQ(mine.g_idx, l.g_idx());
    EXPECT_EQ(mine.dead_columns, eng->dead_columns);
    EXPECT_NEAR(mine.loss, eng->loss, 1e-9 * std::max(1.0, eng->loss));
    EXPECT_NEAR(mine.damp, eng->damp, 1e-12 * eng->damp);  // mean of diag H: summation order differs
  }
}

TEST(CudaReferences, PackedGemvReferenceReadsStoredLayerBytes) {
  std::mt19937 rng(5);
  for (int bits : {4, 8}) {
    for (bool sym : {true, false}) {
      SCOPED_TRACE(std::to_string(bits) + (sym ? " sym" : " asym"));
      const int64_t out = 19, in = 203, n = 3;  // 203: padding slots in the last word
      WeightQuantArgs a;
      a.num_bits = bits;
      a.symmetric = sym;
      a.group_size = 64;
      const int64_t gpr = a.GroupsPerRow(in);
      std::uniform_int_distribution<int32_t> code(a.qmin(), a.qmax());
      std::vector<int32_t> q(static_cast<size_t>(out * in));
      for (int32_t& v : q) v = code(rng);
      std::vector<float> scales(static_cast<size_t>(out * gpr));
      std::uniform_real_distribution<float> sc(0.001f, 0.1f);
      for (float& s : scales) s = sc(rng);
      std::vector<int32_t> zeros;
      if (!sym) {
        zeros.resize(scales.size());
        for (int32_t& z : zeros) z = code(rng);
      }
      std::vector<float> bias(static_cast<size_t>(out));
      for (float& b : bias) b = sc(rng);
      auto layer = PackedIntLinear::FromCodes(a, out, in, q, scales, zeros, bias);
      ASSERT_TRUE(layer.ok()) << layer.status();
      std::map<std::string, TensorView> t;
      for (auto& [name, view] : (*layer)->StoredTensors()) t[name] = view;
      gpu::PackedIntGpuWeights w;
      w.num_bits = bits;
      w.rows = out;
      w.cols = in;
      w.words_per_row = (*layer)->words_per_row();
      w.packed = static_cast<const uint32_t*>(t.at("weight_packed").data);
      w.groups_per_row = gpr;
      w.group_size = 64;
      w.scales = static_cast<const float*>(t.at("weight_scale").data);
      w.zero_points = sym ? nullptr : static_cast<const int32_t*>(t.at("weight_zero_point").data);
      ASSERT_TRUE(gpu::ValidatePackedIntGpuWeights(w).ok()) << gpu::ValidatePackedIntGpuWeights(w).error;

      std::vector<uint16_t> xh(static_cast<size_t>(n * in));
      std::normal_distribution<float> d(0.0f, 1.0f);
      for (uint16_t& v : xh) v = gpu::FloatToHalf(d(rng));
      std::vector<float> xf(xh.size());
      for (size_t i = 0; i < xh.size(); ++i) xf[i] = gpu::HalfToFloat(xh[i]);

      std::vector<float> mine(static_cast<size_t>(n * out)), fwd(mine.size()), kref(mine.size());
      std::vector<double> abs_sum(mine.size());
      gpu::PackedIntGemvReference(w, xh.data(), n, bias.data(), mine.data(), abs_sum.data());
      (*layer)->Forward(xf.data(), n, fwd.data(), ThreadPool::Default());
      kernels::PackedIntWeights kw;
      kw.num_bits = bits;
      kw.rows = out;
      kw.cols = in;
      kw.words_per_row = w.words_per_row;
      kw.packed = w.packed;
      kw.groups_per_row = gpr;
      kw.group_size = 64;
      kw.scales = w.scales;
      kw.zero_points = w.zero_points;
      kernels::PackedIntGemmReference(kw, xf.data(), n, bias.data(), kref.data());
      for (size_t i = 0; i < mine.size(); ++i) {
        EXPECT_NEAR(mine[i], fwd[i], 1e-5 * abs_sum[i] + 1e-6) << i;
        EXPECT_NEAR(mine[i], kref[i], 1e-6 * abs_sum[i] + 1e-7) << i;
      }
    }
  }
}

TEST(CudaReferences, Int8ReferenceBitIdenticalToCpuKernelReference) {
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> byte(-128, 127);
  std::uniform_real_distribution<float> sc(1e-4f, 1e-2f);
  const int64_t m = 7, n = 29, k = 301;
  std::vector<int8_t> a(static_cast<size_t>(m * k)), w(static_cast<size_t>(n * k));
  for (int8_t& v : a) v = static_cast<int8_t>(byte(rng));
  for (int8_t& v : w) v = static_cast<int8_t>(byte(rng));
  std::vector<float> as(static_cast<size_t>(m)), ws(static_cast<size_t>(n)), bias(static_cast<size_t>(n));
  for (float& v : as) v = sc(rng);
  for (float& v : ws) v = sc(rng);
  for (float& v : bias) v = sc(rng) - 0.005f;
  std::vector<float> mine(static_cast<size_t>(m * n)), theirs(mine.size());
  gpu::Int8GemmNTReference(a.data(), m, k, as.data(), w.data(), n, ws.data(), bias.data(), mine.data());
  kernels::Int8GemmNTReference(a.data(), m, k, as.data(), w.data(), n, ws.data(), bias.data(), theirs.data());
  EXPECT_EQ(std::memcmp(mine.data(), theirs.data(), mine.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace squeeze
