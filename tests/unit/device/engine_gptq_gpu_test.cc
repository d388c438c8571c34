// GPU: the engine's GPTQ on cuda against the CPU path (skips without a CUDA
// device). On odd random layers for every strategy / act-order / observer
// (QuantizeGptqOnDevice vs QuantizeGptq), and through the stage runner on the
// real stories260K with real calibration Hessians (device cuda vs cpu: every
// module's codes identical, as workers/kernels/cuda/tests/gptq_gpu_test.cc
// and cpu_ref_vs_engine_test.cc require of the kernels). The runner's
// measured report must say cuda with gpu_s > 0 and no CPU fallback.
//
// ../shared is found through $SQUEEZE_SHARED_DIR when set (a GPU machine runs
// a carried binary: workers/kernels/cuda/bench/engine_device_run.sh), else
// the SQUEEZE_SHARED_DIR compile definition.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tests/common/run_helpers.h"
#include "tests/common/temp_dirs.h"
#include "workers/engine/device/device.h"
#include "workers/methods/quant/gptq.h"
#include "workers/methods/quant/gptq_device.h"
#include "tests/common/gptq_cases.h"
#include "workers/runner/compressed_model.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

#define SQ_SKIP_WITHOUT_CUDA_DEVICE()                                                               \
  do {                                                                                              \
    if (!BuiltWithCuda()) GTEST_SKIP() << "this build has no CUDA support";                         \
    if (ProbeDevices().cuda_devices == 0) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount)";    \
  } while (0)

std::string SharedDir() {
  if (const char* env = std::getenv("SQUEEZE_SHARED_DIR"); env != nullptr && *env != '\0') return env;
  return SQUEEZE_SHARED_DIR;
}

Device Cuda() {
  auto d = SelectDevice(DeviceRequest::kCuda);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *d : CpuDevice();
}

struct Compared {
  int64_t codes = 0, codes_differing = 0;
  double max_scale_rel = 0;
  int64_t zeros_differing = 0;
};

Compared CompareLayers(const PackedIntLinear& a, const PackedIntLinear& b) {
  Compared c;
  EXPECT_EQ(a.out_features(), b.out_features());
  EXPECT_EQ(a.in_features(), b.in_features());
  EXPECT_EQ(a.groups_per_row(), b.groups_per_row());
  EXPECT_EQ(a.kind(), b.kind());
  EXPECT_EQ(a.g_idx(), b.g_idx());
  for (int64_t r = 0; r < a.out_features(); ++r) {
    for (int64_t k = 0; k < a.in_features(); ++k) {
      ++c.codes;
      c.codes_differing += a.Code(r, k) != b.Code(r, k);
    }
    for (int64_t g = 0; g < a.groups_per_row(); ++g) {
      const double s = a.Scale(r, g);
      c.max_scale_rel = std::max(c.max_scale_rel, std::fabs(s - b.Scale(r, g)) / std::max(1e-30, std::fabs(s)));
      c.zeros_differing += a.ZeroPoint(r, g) != b.ZeroPoint(r, g);
    }
  }
  return c;
}

TEST(EngineGptqGpu, RandomLayersCudaEqualsCpu) {
  SQ_SKIP_WITHOUT_CUDA_DEVICE();
  const Device cuda = Cuda();
  ASSERT_TRUE(cuda.is_cuda());
  std::mt19937 rng(17);
  struct Shape {
    int64_t out, in;
  };
  const std::vector<testing_gptq::GptqCase> cases = testing_gptq::GptqCoverageCases();
  for (const Shape& sh : {Shape{37, 150}, Shape{64, 64}, Shape{130, 301}}) {
    const int64_t n = 2 * sh.in + 7;
    const MatrixRM x = testing_gptq::CorrelatedCalibrationX(n, sh.in, rng);
    const Eigen::MatrixXd xd = x.cast<double>();
    Eigen::MatrixXd h = (2.0 / n) * (xd.transpose() * xd);
    h.row(5).setZero();
    h.col(5).setZero();
    MatrixRM w(sh.out, sh.in);
    std::normal_distribution<float> wd(0.0f, 0.02f);
    for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = wd(rng);
    std::vector<float> bias(static_cast<size_t>(sh.out), 0.5f);
    for (const testing_gptq::GptqCase& c : cases) {
      SCOPED_TRACE(c.name + " " + std::to_string(sh.out) + "x" + std::to_string(sh.in));
      GptqOptions o;
      o.quant = c.quant;
      o.block_size = c.block_size;
      o.actorder = c.order;
      auto cpu = QuantizeGptq(w, h, o, bias);
      ASSERT_TRUE(cpu.ok()) << cpu.status();
      GptqDeviceInfo info;
      const double g0 = ProcessGpuSeconds();
      auto gpu = QuantizeGptqOnDevice(w, h, o, cuda, bias, ThreadPool::Default(), &info);
      ASSERT_TRUE(gpu.ok()) << gpu.status();
      ASSERT_EQ(info.ran_on, DeviceKind::kCuda) << info.fallback;
      EXPECT_TRUE(info.fallback.empty());
      EXPECT_GT(info.gpu_seconds, 0.0);
      EXPECT_GE(info.gpu_call_seconds, info.gpu_seconds);
      EXPECT_DOUBLE_EQ(ProcessGpuSeconds() - g0, info.gpu_seconds);
      const Compared cmp = CompareLayers(*cpu->layer, *gpu->layer);
      EXPECT_EQ(cmp.codes_differing, 0) << "of " << cmp.codes;
      EXPECT_LE(cmp.max_scale_rel, 1e-6);
      EXPECT_EQ(cmp.zeros_differing, 0);
      EXPECT_EQ(std::vector<float>(gpu->layer->bias().begin(), gpu->layer->bias().end()), bias);
      EXPECT_NEAR(gpu->loss, cpu->loss, 1e-9 * std::max(1.0, cpu->loss));
      EXPECT_EQ(gpu->dead_columns, 1);
      EXPECT_NEAR(gpu->damp, cpu->damp, 1e-12 * cpu->damp);
    }
  }
}

// stories260K (dim 64, hidden 172, 5 layers), real calibration text: the
// runner with device cuda vs cpu.
TEST(EngineGptqGpu, Stories260KRunnerCudaEqualsCpu) {
  SQ_SKIP_WITHOUT_CUDA_DEVICE();
  const test_inputs::SharedStories s = test_inputs::Stories260K(SharedDir());
  if (!s.ok) GTEST_SKIP() << s.missing;
  const std::string calib = "num_calibration_samples: 16\nmax_seq_length: 128\n";
  const std::map<std::string, std::string> recipes = {
      {"w4a16", calib + "s:\n  q_modifiers:\n    GPTQModifier: {scheme: W4A16}\n"},
      {"w4_g32_asym_actorder_group",
       calib + "s:\n  q_modifiers:\n    GPTQModifier:\n      actorder: group\n      config_groups:\n        g: {targets: "
               "[Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 32}}\n"},
      {"w8_channel_none",
       calib + "s:\n  q_modifiers:\n    GPTQModifier:\n      actorder: null\n      config_groups:\n        g: {targets: "
               "[Linear], weights: {num_bits: 8, strategy: channel}}\n"},
  };
  for (const auto& [name, yaml] : recipes) {
    SCOPED_TRACE(name);
    std::map<std::string, RunResult> runs;
    for (DeviceRequest dev : {DeviceRequest::kCpu, DeviceRequest::kCuda}) {
      RunOptions o;
      o.model_path = s.model;
      o.output_dir = test_inputs::FreshTestDir("squeeze_engine_gptq_gpu_test_", name + "_" +
                                               std::string(DeviceRequestName(dev)));
      o.calib_text_path = s.train;
      o.report.latency = false;
      o.report.agreement = false;
      o.device = dev;
      auto r = test_inputs::RunYaml(yaml, o);
      ASSERT_TRUE(r.ok()) << r.status();
      runs[std::string(DeviceRequestName(dev))] = std::move(*r);
    }
    const json& rc = runs["cuda"].report;
    EXPECT_EQ(rc["device"]["selected"], "cuda");
    ASSERT_EQ(rc["stages"].size(), 1u);
    const json& st = rc["stages"][0];
    EXPECT_EQ(st["device"], "cuda");
    EXPECT_GT(st["gpu_s"].get<double>(), 0.0);
    EXPECT_EQ(st["cpu_fallbacks"], 0) << st["device_notes"].dump();
    EXPECT_GT(rc["scores"]["hulk"]["gpu_s"].get<double>(), 0.0);
    EXPECT_EQ(runs["cpu"].report["stages"][0]["device"], "cpu");

    auto mc = LoadCompressedModel(runs["cpu"].output_dir);
    auto mg = LoadCompressedModel(runs["cuda"].output_dir);
    ASSERT_TRUE(mc.ok()) << mc.status();
    ASSERT_TRUE(mg.ok()) << mg.status();
    std::vector<LinearSlot> lc = mc->AllLinears(), lg = mg->AllLinears();
    ASSERT_EQ(lc.size(), lg.size());
    int64_t packed = 0, codes = 0, differing = 0;
    double scale_rel = 0;
    for (size_t i = 0; i < lc.size(); ++i) {
      const auto* pc = dynamic_cast<const PackedIntLinear*>(lc[i].slot->get());
      const auto* pg = dynamic_cast<const PackedIntLinear*>(lg[i].slot->get());
      ASSERT_EQ(pc == nullptr, pg == nullptr) << lc[i].name;
      if (pc == nullptr) continue;
      SCOPED_TRACE(lc[i].name);
      const Compared cmp = CompareLayers(*pc, *pg);
      ++packed;
      codes += cmp.codes;
      differing += cmp.codes_differing;
      scale_rel = std::max(scale_rel, cmp.max_scale_rel);
      EXPECT_EQ(cmp.zeros_differing, 0);
    }
    EXPECT_EQ(st["gpu_modules"], packed);
    EXPECT_GE(packed, 35);  // 7 linears x 5 blocks
    EXPECT_EQ(differing, 0) << "of " << codes << " codes";
    EXPECT_LE(scale_rel, 1e-6);
    std::cout << name << ": " << packed << " modules on " << rc["device"]["description"].get<std::string>() << ", "
              << differing << " of " << codes << " codes differ, max scale rel diff " << scale_rel << ", gpu_s "
              << st["gpu_s"].get<double>() << ", stage wall cpu " << runs["cpu"].report["stages"][0]["wall_s"]
              << " s / cuda " << st["wall_s"] << " s\n";
  }
}

}  // namespace
}  // namespace squeeze
