// GPTQ on the run's device (workers/methods/quant/gptq_device.h), CPU side:
//  * on the cpu device QuantizeGptqOnDevice is QuantizeGptq, bit for bit;
//  * the glue from a kernel result to the engine's layer (GptqResultFromKernel
//    with ToGptqGpuOptions / HessianRowMajor) is checked with the kernels'
//    plain CPU reference GptqQuantizeReference, whose numbers equal the GPU's
//    (workers/kernels/cuda/tests/gptq_gpu_test.cc): the layer it builds equals
//    the engine's QuantizeGptqReference layer for every strategy / act-order /
//    observer, bias and g_idx included;
//  * a cuda device that cannot be used falls back to the CPU path with the
//    reason (only where no CUDA device is present; with one, the *_gpu tests
//    cover the GPU path).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "workers/engine/device/device.h"
#include "workers/kernels/cuda/cuda_plugin.h"
#include "workers/kernels/cuda/gptq_gpu.h"
#include "workers/methods/quant/gptq.h"
#include "workers/methods/quant/gptq_device.h"
#include "tests/common/gptq_cases.h"

namespace squeeze {
namespace {

using ::testing::HasSubstr;

using testing_gptq::CorrelatedCalibrationX;
using testing_gptq::GptqCase;
using testing_gptq::GptqCoverageCases;

struct Layer {
  MatrixRM w;
  Eigen::MatrixXd h;
  std::vector<float> bias;
};

// w [out, in], H = 2 X^T X / n with one dead column (9).
Layer MakeLayer(int64_t out, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t n = 3 * in;
  const MatrixRM x = CorrelatedCalibrationX(n, in, rng);
  const Eigen::MatrixXd xd = x.cast<double>();
  Layer l;
  l.h = (2.0 / n) * (xd.transpose() * xd);
  if (in > 9) {
    l.h.row(9).setZero();
    l.h.col(9).setZero();
  }
  l.w.resize(out, in);
  std::normal_distribution<float> d(0.0f, 0.02f);
  for (int64_t i = 0; i < l.w.size(); ++i) l.w.data()[i] = d(rng);
  for (int64_t r = 0; r < out; ++r) l.bias.push_back(0.01f * static_cast<float>(r));
  return l;
}

GptqOptions Opts(const GptqCase& c) {
  GptqOptions o;
  o.quant = c.quant;
  o.block_size = c.block_size;
  o.actorder = c.order;
  return o;
}

// Every stored number of two packed layers: codes, scales, zero points, g_idx, bias.
void ExpectSameLayer(const PackedIntLinear& a, const PackedIntLinear& b, bool exact_scales, bool compare_bias = true) {
  ASSERT_EQ(a.out_features(), b.out_features());
  ASSERT_EQ(a.in_features(), b.in_features());
  ASSERT_EQ(a.groups_per_row(), b.groups_per_row());
  int64_t diff = 0;
  for (int64_t r = 0; r < a.out_features(); ++r)
    for (int64_t k = 0; k < a.in_features(); ++k) diff += a.Code(r, k) != b.Code(r, k);
  EXPECT_EQ(diff, 0) << "codes differing";
  for (int64_t r = 0; r < a.out_features(); ++r) {
    for (int64_t g = 0; g < a.groups_per_row(); ++g) {
      if (exact_scales) {
        ASSERT_EQ(a.Scale(r, g), b.Scale(r, g)) << r << "," << g;
      } else {
        ASSERT_NEAR(a.Scale(r, g), b.Scale(r, g), 1e-6f * std::fabs(a.Scale(r, g))) << r << "," << g;
      }
      ASSERT_EQ(a.ZeroPoint(r, g), b.ZeroPoint(r, g)) << r << "," << g;
    }
  }
  EXPECT_EQ(a.g_idx(), b.g_idx());
  if (compare_bias) {
    EXPECT_EQ(std::vector<float>(a.bias().begin(), a.bias().end()), std::vector<float>(b.bias().begin(), b.bias().end()));
  }
  EXPECT_EQ(a.kind(), b.kind());
}

TEST(GptqDevice, CpuDeviceIsQuantizeGptqBitForBit) {
  const Layer l = MakeLayer(40, 150, 3);
  for (const GptqCase& c : GptqCoverageCases()) {
    SCOPED_TRACE(c.name);
    auto ref = QuantizeGptq(l.w, l.h, Opts(c), l.bias);
    ASSERT_TRUE(ref.ok()) << ref.status();
    GptqDeviceInfo info;
    info.gpu_seconds = 99;  // must be reset
    auto got = QuantizeGptqOnDevice(l.w, l.h, Opts(c), CpuDevice(), l.bias, ThreadPool::Default(), &info);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(info.ran_on, DeviceKind::kCpu);
    EXPECT_TRUE(info.fallback.empty());  // cpu was asked for: no fallback
    EXPECT_EQ(info.gpu_seconds, 0.0);
    ExpectSameLayer(*ref->layer, *got->layer, /*exact_scales=*/true);
    EXPECT_EQ(ref->loss, got->loss);
    EXPECT_EQ(ref->damp, got->damp);
    EXPECT_EQ(ref->dead_columns, got->dead_columns);
  }
}

TEST(GptqDevice, OptionsMapFieldForField) {
  GptqOptions o;
  o.quant.num_bits = 3;
  o.quant.symmetric = false;
  o.quant.strategy = QuantStrategy::kChannel;
  o.quant.group_size = 77;
  o.quant.observer = QuantObserver::kMse;
  o.block_size = 19;
  o.dampening_frac = 0.125;
  o.actorder = ActOrder::kGroup;
  const gpu::GptqGpuOptions g = ToGptqGpuOptions(o);
  EXPECT_EQ(g.num_bits, 3);
  EXPECT_FALSE(g.symmetric);
  EXPECT_EQ(g.strategy, 1);
  EXPECT_EQ(g.group_size, 77);
  EXPECT_TRUE(g.mse_observer);
  EXPECT_EQ(g.block_size, 19);
  EXPECT_EQ(g.dampening_frac, 0.125);
  EXPECT_EQ(g.actorder, 2);
  o.quant.strategy = QuantStrategy::kTensor;
  o.actorder = ActOrder::kStatic;
  EXPECT_EQ(ToGptqGpuOptions(o).strategy, 0);
  EXPECT_EQ(ToGptqGpuOptions(o).actorder, 1);
  o.quant.strategy = QuantStrategy::kGroup;
  o.actorder = ActOrder::kNone;
  o.quant.observer = QuantObserver::kMinMax;
  EXPECT_EQ(ToGptqGpuOptions(o).strategy, 2);
  EXPECT_EQ(ToGptqGpuOptions(o).actorder, 0);
  EXPECT_FALSE(ToGptqGpuOptions(o).mse_observer);

  Eigen::MatrixXd h(2, 3);
  h << 1, 2, 3, 4, 5, 6;
  EXPECT_EQ(HessianRowMajor(h), (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

// The kernels' CPU reference through the engine glue == the engine's reference.
TEST(GptqDevice, KernelResultBuildsTheEngineLayer) {
  const Layer l = MakeLayer(23, 150, 21);
  const std::vector<double> h = HessianRowMajor(l.h);
  for (const GptqCase& c : GptqCoverageCases()) {
    SCOPED_TRACE(c.name);
    const GptqOptions o = Opts(c);
    auto eng = QuantizeGptqReference(l.w, l.h, o);
    ASSERT_TRUE(eng.ok()) << eng.status();
    gpu::GptqGpuResult k;
    const gpu::GpuStatus st = gpu::GptqQuantizeReference(l.w.data(), l.w.rows(), l.w.cols(), h.data(),
                                                         ToGptqGpuOptions(o), &k);
    ASSERT_TRUE(st.ok()) << st.error;
    auto got = GptqResultFromKernel(k, o, l.w.rows(), l.w.cols(), l.bias);
    ASSERT_TRUE(got.ok()) << got.status();
    // The engine reference has no bias: compare everything else, then the bias.
    ExpectSameLayer(*eng->layer, *got->layer, /*exact_scales=*/false, /*compare_bias=*/false);
    EXPECT_EQ(std::vector<float>(got->layer->bias().begin(), got->layer->bias().end()), l.bias);
    EXPECT_EQ(got->dead_columns, eng->dead_columns);
    EXPECT_EQ(got->dead_columns, 1);
    EXPECT_NEAR(got->loss, eng->loss, 1e-9 * std::max(1.0, eng->loss));
    EXPECT_NEAR(got->damp, eng->damp, 1e-12 * eng->damp);
    // The dequantized weights agree too (what the model computes with).
    EXPECT_LE((eng->layer->DenseWeight() - got->layer->DenseWeight()).cwiseAbs().maxCoeff(), 1e-6f);
  }
}

TEST(GptqDevice, KernelResultOfTheWrongSizeIsAnError) {
  GptqOptions o;
  o.quant.group_size = 4;
  gpu::GptqGpuResult k;
  k.codes.assign(2 * 8, 0);
  k.scales.assign(2 * 2, 1.0f);
  EXPECT_TRUE(GptqResultFromKernel(k, o, 2, 8, {}).ok());
  k.codes.pop_back();
  EXPECT_THAT(std::string(GptqResultFromKernel(k, o, 2, 8, {}).status().message()), HasSubstr("codes has 15 values"));
  k.codes.push_back(0);
  k.scales.push_back(1.0f);
  EXPECT_THAT(std::string(GptqResultFromKernel(k, o, 2, 8, {}).status().message()), HasSubstr("scales has 5 values"));
  k.scales.pop_back();
  o.quant.symmetric = false;
  EXPECT_THAT(std::string(GptqResultFromKernel(k, o, 2, 8, {}).status().message()), HasSubstr("zeros has 0 values"));
  o.quant.symmetric = true;
  k.g_idx.assign(7, 0);
  EXPECT_THAT(std::string(GptqResultFromKernel(k, o, 2, 8, {}).status().message()), HasSubstr("g_idx has 7 values"));
}

TEST(GptqDevice, WorkingBytesCoverTheFactorAndTheWeights) {
  GptqOptions o;  // w4 g128, block 128
  // 4096 x 11008: 8 in^2 + 12 out in + 8 out (128 + 128) + 8 out 86 + 4 in + 8 out + 256 MiB.
  const int64_t out = 4096, in = 11008;
  EXPECT_EQ(GptqGpuWorkingBytes(out, in, o),
            8 * in * in + 12 * out * in + 8 * out * 256 + 8 * out * 86 + 4 * in + 8 * out + (int64_t{256} << 20));
  EXPECT_GT(GptqGpuWorkingBytes(4096, 4096, o), 8 * 4096 * 4096);
}

// The plugin with the GPU methods loads in CUDA builds (from beside the
// executable or its build path), and is refused with a reason otherwise.
TEST(GptqDevice, CudaPluginLoadsOnlyInCudaBuilds) {
  auto p = LoadCudaPlugin();
  if (BuiltWithCuda()) {
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ((*p)->abi_version, gpu::kCudaPluginAbiVersion);
    EXPECT_NE((*p)->gptq_quantize, nullptr);
    EXPECT_NE((*p)->memory_info, nullptr);
    auto again = LoadCudaPlugin();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *p);  // loaded once
  } else {
    ASSERT_FALSE(p.ok());
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("this build has no CUDA support"));
  }
}

// A cuda device that cannot be used: the CPU path runs, with the reason.
TEST(GptqDevice, UnusableCudaDeviceFallsBackToTheCpuWithTheReason) {
  if (ProbeDevices().cuda_devices > 0) GTEST_SKIP() << "a CUDA device is present: the *_gpu tests cover this path";
  const Layer l = MakeLayer(16, 64, 5);
  Device cuda;
  cuda.kind = DeviceKind::kCuda;
  cuda.description = "CUDA device 0 (absent)";
  GptqOptions o;
  o.quant.group_size = 32;
  auto ref = QuantizeGptq(l.w, l.h, o, l.bias);
  ASSERT_TRUE(ref.ok());
  GptqDeviceInfo info;
  auto got = QuantizeGptqOnDevice(l.w, l.h, o, cuda, l.bias, ThreadPool::Default(), &info);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(info.ran_on, DeviceKind::kCpu);
  EXPECT_EQ(info.gpu_seconds, 0.0);
  if (BuiltWithCuda()) {
    // The plugin loaded (cuBLAS / cuSOLVER and all) and its memory query
    // reported the missing device.
    EXPECT_THAT(info.fallback, HasSubstr("cannot read the device's free memory"));
  } else {
    EXPECT_THAT(info.fallback, HasSubstr("this build has no CUDA support"));
  }
  ExpectSameLayer(*ref->layer, *got->layer, /*exact_scales=*/true);
  EXPECT_EQ(ref->loss, got->loss);
  // Bad options are refused before any device work, with the CPU path's text.
  o.quant.num_bits = 9;
  auto bad = QuantizeGptqOnDevice(l.w, l.h, o, cuda, {}, ThreadPool::Default(), &info);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(std::string(bad.status().message()), std::string(QuantizeGptq(l.w, l.h, o).status().message()));
}

}  // namespace
}  // namespace squeeze
