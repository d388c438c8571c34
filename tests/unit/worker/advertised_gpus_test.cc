// A worker advertises nvidia-smi's GPUs only when its stages run on CUDA.
#include <gtest/gtest.h>

#include "workers/engine/device/device.h"
#include "workers/worker/capabilities.h"

namespace squeeze::worker {
namespace {

HostCapabilities TwoGpus() {
  HostCapabilities caps;
  caps.gpus = {{"NVIDIA H100 80GB HBM3", int64_t{81559} << 20}, {"NVIDIA H100 80GB HBM3", int64_t{81559} << 20}};
  return caps;
}

DeviceInventory Inventory(bool built_with_cuda, int devices) {
  DeviceInventory inv;
  inv.built_with_cuda = built_with_cuda;
  inv.cuda_devices = devices;
  inv.cuda_description = devices > 0 ? "NVIDIA H100 80GB HBM3 (sm_90)" : "";
  return inv;
}

TEST(AdvertisedGpus, CudaDeviceKeepsEveryListedGpu) {
  HostCapabilities caps = TwoGpus();
  absl::StatusOr<Device> d = SelectDevice(DeviceRequest::kAuto, Inventory(true, 2));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(KeepGpusOnlyForCuda(*d, &caps), "");
  ASSERT_EQ(caps.gpus.size(), 2u);
  EXPECT_EQ(caps.gpus[0].name, "NVIDIA H100 80GB HBM3");
}

TEST(AdvertisedGpus, BuildWithoutCudaAdvertisesNoneAndSaysWhy) {
  HostCapabilities caps = TwoGpus();
  absl::StatusOr<Device> d = SelectDevice(DeviceRequest::kAuto, Inventory(false, 0));
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string why = KeepGpusOnlyForCuda(*d, &caps);
  EXPECT_TRUE(caps.gpus.empty());
  EXPECT_NE(why.find("2 GPU(s)"), std::string::npos) << why;
  EXPECT_NE(why.find("no CUDA support"), std::string::npos) << why;
}

TEST(AdvertisedGpus, DeviceCpuRequestAdvertisesNone) {
  HostCapabilities caps = TwoGpus();
  absl::StatusOr<Device> d = SelectDevice(DeviceRequest::kCpu, Inventory(true, 2));
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string why = KeepGpusOnlyForCuda(*d, &caps);
  EXPECT_TRUE(caps.gpus.empty());
  EXPECT_NE(why.find("requested"), std::string::npos) << why;
}

TEST(AdvertisedGpus, NoDeviceVisibleToTheRuntimeAdvertisesNone) {
  HostCapabilities caps = TwoGpus();  // nvidia-smi lists them, cudaGetDeviceCount does not
  absl::StatusOr<Device> d = SelectDevice(DeviceRequest::kAuto, Inventory(true, 0));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_NE(KeepGpusOnlyForCuda(*d, &caps).find("no CUDA device"), std::string::npos);
  EXPECT_TRUE(caps.gpus.empty());
}

TEST(AdvertisedGpus, NothingListedNothingToSay) {
  HostCapabilities caps;
  EXPECT_EQ(KeepGpusOnlyForCuda(CpuDevice(), &caps), "");
  EXPECT_TRUE(caps.gpus.empty());
}

}  // namespace
}  // namespace squeeze::worker
