// The stage runner's device handling (RunOptions::device) and its measured
// report: device, per-stage device / gpu_s, the HULK gpu_s. CPU only; the GPU
// side is in engine_gptq_gpu_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/common/run_helpers.h"
#include "tests/common/synthetic_inputs.h"
#include "tests/common/temp_dirs.h"
#include "workers/engine/device/device.h"
#include "workers/runner/report_eval.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using nlohmann::json;

constexpr char kPrefix[] = "squeeze_runner_device_test_";

const std::string& ModelDir() {
  static const std::string dir = [] {
    auto d = test_inputs::WriteSyntheticModelDir(kPrefix, "model", test_inputs::SmallGqaConfig(64, 2, 259, 64, false), 7);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : std::string();
  }();
  return dir;
}

const std::string& CalibText() {
  static const std::string path = [] {
    auto p = test_inputs::WriteCalibrationText(kPrefix, 777);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : std::string();
  }();
  return path;
}

constexpr char kGptqRecipe[] =
    "num_calibration_samples: 4\nmax_seq_length: 32\n"
    "quant_stage:\n  quant_modifiers:\n    GPTQModifier: {scheme: W4A16, ignore: [lm_head]}\n";

RunOptions Options(const std::string& out, DeviceRequest device) {
  RunOptions o;
  o.model_path = ModelDir();
  o.output_dir = out;
  o.calib_text_path = CalibText();
  o.report.latency = false;
  o.report.agreement = false;
  o.device = device;
  return o;
}

TEST(RunnerDevice, CudaWithoutUsableDeviceFailsBeforeAnyWork) {
  if (ProbeDevices().cuda_devices > 0) GTEST_SKIP() << "a CUDA device is present";
  const std::string out = test_inputs::FreshTestDir(kPrefix, "cuda_refused");
  fs::remove_all(out);
  auto r = test_inputs::RunYaml(kGptqRecipe, Options(out, DeviceRequest::kCuda));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), StartsWith("device: cuda requested but "));
  EXPECT_FALSE(fs::exists(out)) << "nothing may be written";
  EXPECT_FALSE(fs::exists(out + ".work"));
}

TEST(RunnerDevice, CpuRunReportsTheDeviceAndNoGpuSeconds) {
  const std::string out = test_inputs::FreshTestDir(kPrefix, "cpu");
  auto r = test_inputs::RunYaml(kGptqRecipe, Options(out, DeviceRequest::kCpu));
  ASSERT_TRUE(r.ok()) << r.status();
  const json& rep = r->report;
  EXPECT_EQ(rep["device"]["requested"], "cpu");
  EXPECT_EQ(rep["device"]["selected"], "cpu");
  EXPECT_EQ(rep["device"]["reason"], "requested");
  ASSERT_EQ(rep["stages"].size(), 1u);
  EXPECT_EQ(rep["stages"][0]["device"], "cpu");
  EXPECT_EQ(rep["stages"][0]["gpu_s"].get<double>(), 0.0);
  EXPECT_FALSE(rep["stages"][0].contains("gpu_modules"));
  EXPECT_EQ(rep["scores"]["hulk"]["gpu_s"].get<double>(), 0.0);
  EXPECT_THAT(rep["scores"]["hulk"]["gpu"].get<std::string>(), HasSubstr("no GPU used: device cpu (requested)"));
  // The artifact's report.json holds no device (measured figures stay out).
  auto written = ReadFileToString(out + "/report.json");
  ASSERT_TRUE(written.ok());
  const json art = json::parse(*written);
  EXPECT_FALSE(art.contains("device"));
  EXPECT_FALSE(art["stages"][0].contains("gpu_s"));

  // auto: cuda only where a device is present; here the same bytes as cpu.
  const std::string out_auto = test_inputs::FreshTestDir(kPrefix, "auto");
  auto a = test_inputs::RunYaml(kGptqRecipe, Options(out_auto, DeviceRequest::kAuto));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->report["device"]["requested"], "auto");
  if (ProbeDevices().cuda_devices == 0) {
    EXPECT_EQ(a->report["device"]["selected"], "cpu");
    EXPECT_THAT(a->report["device"]["reason"].get<std::string>(), StartsWith("auto: "));
    EXPECT_EQ(test_inputs::DirContents(out), test_inputs::DirContents(out_auto));
  } else {
    EXPECT_EQ(a->report["device"]["selected"], "cuda");
  }
}

// AddMeasured's accounting from given figures: a stage is "cuda" only when
// modules really ran there; fallbacks are listed; HULK sums the GPU stages.
TEST(RunnerDevice, MeasuredReportAccountsGpuStages) {
  ReportOptions ro;
  ro.latency = false;
  ro.agreement = false;
  ReportEvaluator ev(ro, ThreadPool::Default());
  json report = {{"stages", json::array({{{"name", "a"}}, {{"name", "b"}}, {{"name", "c"}}})}};
  const std::map<std::string, std::pair<double, double>> seconds = {
      {"stage:a", {3.0, 2.0}}, {"stage:b", {1.0, 1.0}}, {"stage:c", {0.5, 0.5}}};
  MeasuredDevice d;
  d.requested = "auto";
  d.selected = "cuda";
  d.description = "NVIDIA Test GPU";
  d.reason = "auto: a CUDA device is present";
  d.stages["stage:a"].gpu_s = 1.5;
  for (int i = 0; i < 7; ++i) d.stages["stage:a"].usage.RecordGpu();
  d.stages["stage:b"].gpu_s = 0.25;  // no module ran there: not counted
  d.stages["stage:b"].usage.RecordFallback("layers.0.mlp.down_proj", "layer [4096, 11008] needs about 9999 MiB");
  d.stages["stage:b"].usage.RecordFallback("layers.1.mlp.down_proj", "same");
  ev.AddMeasured(&report, seconds, 10.0, 8.0, d);
  const json& a = report["stages"][0];
  const json& b = report["stages"][1];
  const json& c = report["stages"][2];
  EXPECT_EQ(a["device"], "cuda");
  EXPECT_EQ(a["gpu_s"].get<double>(), 1.5);
  EXPECT_EQ(a["gpu_modules"], 7);
  EXPECT_EQ(a["cpu_fallbacks"], 0);
  EXPECT_EQ(b["device"], "cpu");
  EXPECT_EQ(b["gpu_s"].get<double>(), 0.0);
  EXPECT_EQ(b["cpu_fallbacks"], 2);
  ASSERT_EQ(b["device_notes"].size(), 2u);
  EXPECT_THAT(b["device_notes"][0].get<std::string>(), HasSubstr("layers.0.mlp.down_proj: layer [4096, 11008]"));
  EXPECT_EQ(c["device"], "cpu");
  EXPECT_EQ(c["gpu_s"].get<double>(), 0.0);
  EXPECT_EQ(report["device"]["selected"], "cuda");
  EXPECT_EQ(report["device"]["description"], "NVIDIA Test GPU");
  EXPECT_EQ(report["scores"]["hulk"]["gpu_s"].get<double>(), 1.5);
  EXPECT_THAT(report["scores"]["hulk"]["gpu"].get<std::string>(), HasSubstr("NVIDIA Test GPU: 7 module(s) ran on the GPU"));
  EXPECT_EQ(report["scores"]["hulk"]["compression_wall_s"].get<double>(), 4.5);

  // Fallback notes are capped.
  StageDeviceUsage u;
  for (int i = 0; i < 40; ++i) u.RecordFallback("m" + std::to_string(i), "r");
  EXPECT_EQ(u.cpu_fallbacks, 40);
  EXPECT_EQ(u.fallback_notes.size(), StageDeviceUsage::kMaxNotes);

  // The old overload: every stage on the CPU.
  json old = {{"stages", json::array({{{"name", "a"}}})}};
  ev.AddMeasured(&old, seconds, 1.0, 1.0);
  EXPECT_EQ(old["stages"][0]["device"], "cpu");
  EXPECT_EQ(old["stages"][0]["gpu_s"].get<double>(), 0.0);
  EXPECT_EQ(old["scores"]["hulk"]["gpu_s"].get<double>(), 0.0);
}

}  // namespace
}  // namespace squeeze
