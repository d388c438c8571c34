// Shared helpers of the CUDA kernel tests.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "workers/kernels/cuda/gpu_status.h"

#define SQ_SKIP_WITHOUT_GPU()                                                                 \
  do {                                                                                        \
    if (::squeeze::gpu::GpuDeviceCount() == 0) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount)"; \
  } while (0)

#define SQ_ASSERT_GPU_OK(expr)                       \
  do {                                               \
    const ::squeeze::gpu::GpuStatus st_ = (expr);    \
    ASSERT_TRUE(st_.ok()) << #expr << ": " << st_.error; \
  } while (0)

namespace squeeze::gpu::testing {

template <class T>
GpuBuffer ToDevice(const std::vector<T>& v) {
  GpuBuffer b;
  const GpuStatus s = b.Upload(v.data(), v.size() * sizeof(T));
  EXPECT_TRUE(s.ok()) << s.error;
  return b;
}

template <class T>
std::vector<T> ToHost(const GpuBuffer& b, size_t count) {
  std::vector<T> v(count);
  const GpuStatus s = b.Download(v.data(), count * sizeof(T));
  EXPECT_TRUE(s.ok()) << s.error;
  return v;
}

}  // namespace squeeze::gpu::testing
