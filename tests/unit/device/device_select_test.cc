// Device selection (workers/engine/device/device.h): parsing, the pure
// selection logic on given inventories, this process's probe, and the
// process-wide GPU-seconds counter. CPU only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <string>

#include "workers/engine/device/device.h"

namespace squeeze {
namespace {

using ::testing::HasSubstr;

TEST(DeviceSelect, ParsesTheThreeNames) {
  EXPECT_EQ(*ParseDeviceRequest("auto"), DeviceRequest::kAuto);
  EXPECT_EQ(*ParseDeviceRequest("cpu"), DeviceRequest::kCpu);
  EXPECT_EQ(*ParseDeviceRequest("cuda"), DeviceRequest::kCuda);
  for (const char* bad : {"", "gpu", "CUDA", "cuda:0", " cpu"}) {
    auto r = ParseDeviceRequest(bad, "--device");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("--device: unknown device"));
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("expected auto, cpu or cuda"));
  }
  for (DeviceRequest r : {DeviceRequest::kAuto, DeviceRequest::kCpu, DeviceRequest::kCuda}) {
    EXPECT_EQ(*ParseDeviceRequest(DeviceRequestName(r)), r);
  }
}

TEST(DeviceSelect, BuildWithoutCuda) {
  DeviceInventory inv;  // built_with_cuda false
  auto a = SelectDevice(DeviceRequest::kAuto, inv);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, DeviceKind::kCpu);
  EXPECT_THAT(a->reason, HasSubstr("auto: this build has no CUDA support"));
  auto c = SelectDevice(DeviceRequest::kCuda, inv, "device");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("device: cuda requested but this build has no CUDA support"));
  auto p = SelectDevice(DeviceRequest::kCpu, inv);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kind, DeviceKind::kCpu);
  EXPECT_EQ(p->reason, "requested");
}

TEST(DeviceSelect, CudaBuildWithoutDevice) {
  DeviceInventory inv;
  inv.built_with_cuda = true;
  inv.cuda_devices = 0;
  auto a = SelectDevice(DeviceRequest::kAuto, inv);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, DeviceKind::kCpu);
  EXPECT_EQ(a->description, "cpu");
  EXPECT_THAT(a->reason, HasSubstr("auto: no CUDA device is present"));
  auto c = SelectDevice(DeviceRequest::kCuda, inv, "--device");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("--device: cuda requested but no CUDA device is present"));
}

TEST(DeviceSelect, CudaBuildWithDevice) {
  DeviceInventory inv;
  inv.built_with_cuda = true;
  inv.cuda_devices = 2;
  inv.cuda_description = "NVIDIA Test GPU (sm_90)";
  auto a = SelectDevice(DeviceRequest::kAuto, inv);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->is_cuda());
  EXPECT_EQ(a->index, 0);
  EXPECT_EQ(a->description, "NVIDIA Test GPU (sm_90)");
  EXPECT_EQ(a->reason, "auto: a CUDA device is present");
  auto c = SelectDevice(DeviceRequest::kCuda, inv);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->is_cuda());
  EXPECT_EQ(c->reason, "requested");
  // cpu stays cpu even with a device present.
  auto p = SelectDevice(DeviceRequest::kCpu, inv);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->is_cuda());
}

TEST(DeviceSelect, ThisProcessIsConsistent) {
  const DeviceInventory& inv = ProbeDevices();
  EXPECT_EQ(&inv, &ProbeDevices());  // probed once
  EXPECT_EQ(inv.built_with_cuda, BuiltWithCuda());
  if (!inv.built_with_cuda) {
    EXPECT_EQ(inv.cuda_devices, 0);
  }
  EXPECT_EQ(inv.cuda_devices > 0, !inv.cuda_description.empty());
  auto a = SelectDevice(DeviceRequest::kAuto);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->is_cuda(), inv.built_with_cuda && inv.cuda_devices > 0);
  auto c = SelectDevice(DeviceRequest::kCuda);
  EXPECT_EQ(c.ok(), a->is_cuda());
  std::cout << "this process: built_with_cuda " << inv.built_with_cuda << ", " << inv.cuda_devices
            << " CUDA device(s); auto selects " << DeviceKindName(a->kind) << " (" << a->reason << ")\n";
}

TEST(DeviceSelect, GpuSecondsCounterAddsOnlyPositiveFiniteValues) {
  const double g0 = ProcessGpuSeconds();
  AddProcessGpuSeconds(0.25);
  AddProcessGpuSeconds(-1.0);
  AddProcessGpuSeconds(std::numeric_limits<double>::quiet_NaN());
  AddProcessGpuSeconds(std::numeric_limits<double>::infinity());
  AddProcessGpuSeconds(0.5);
  EXPECT_DOUBLE_EQ(ProcessGpuSeconds() - g0, 0.75);
}

}  // namespace
}  // namespace squeeze
