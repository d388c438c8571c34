// Int8GemmNT (GPU, dp4a) is bit-identical to Int8GemmNTReference on random
// int8 data (-128 included) and odd shapes (k not a multiple of 4, tiles cut).
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "workers/kernels/cuda/tests/gpu_test_util.h"
#include "workers/kernels/cuda/w8a8_gemm.h"

namespace squeeze::gpu {
namespace {

using testing::ToDevice;
using testing::ToHost;

TEST(Int8Gemm, BitIdenticalToReference) {
  SQ_SKIP_WITHOUT_GPU();
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> byte(-128, 127);
  std::uniform_real_distribution<float> sc(1e-4f, 1e-2f);
  std::normal_distribution<float> bd(0.0f, 1.0f);
  struct Shape {
    int64_t m, n, k;
  };
  const Shape shapes[] = {{1, 1, 1},    {1, 63, 3},    {5, 64, 4},     {16, 100, 65},  {64, 64, 64},
                          {65, 130, 1000}, {3, 257, 4096}, {130, 17, 127}, {16, 4096, 4096}};
  for (const Shape& s : shapes) {
    for (bool with_bias : {false, true}) {
      SCOPED_TRACE(std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k) +
                   (with_bias ? " bias" : ""));
      std::vector<int8_t> a(static_cast<size_t>(s.m * s.k)), w(static_cast<size_t>(s.n * s.k));
      for (int8_t& v : a) v = static_cast<int8_t>(byte(rng));
      for (int8_t& v : w) v = static_cast<int8_t>(byte(rng));
      a[0] = -128;  // the value the CPU maddubs trick cannot take
      std::vector<float> as(static_cast<size_t>(s.m)), ws(static_cast<size_t>(s.n)), bias(static_cast<size_t>(s.n));
      for (float& v : as) v = sc(rng);
      for (float& v : ws) v = sc(rng);
      for (float& v : bias) v = bd(rng);
      GpuBuffer da = ToDevice(a), dw = ToDevice(w), das = ToDevice(as), dws = ToDevice(ws), db = ToDevice(bias), dy;
      SQ_ASSERT_GPU_OK(dy.Allocate(static_cast<size_t>(s.m * s.n) * sizeof(float)));
      SQ_ASSERT_GPU_OK(dy.Fill(0xff));  // NaN poison
      SQ_ASSERT_GPU_OK(Int8GemmNT(da.as<int8_t>(), s.m, s.k, das.as<float>(), dw.as<int8_t>(), s.n, dws.as<float>(),
                                  with_bias ? db.as<float>() : nullptr, dy.as<float>()));
      SQ_ASSERT_GPU_OK(GpuSynchronize());
      const std::vector<float> y = ToHost<float>(dy, static_cast<size_t>(s.m * s.n));
      std::vector<float> ref(y.size());
      Int8GemmNTReference(a.data(), s.m, s.k, as.data(), w.data(), s.n, ws.data(), with_bias ? bias.data() : nullptr,
                          ref.data());
      size_t first_bad = y.size();
      for (size_t i = 0; i < y.size(); ++i) {
        if (std::memcmp(&y[i], &ref[i], sizeof(float)) != 0) {
          first_bad = i;
          break;
        }
      }
      EXPECT_EQ(first_bad, y.size()) << "first differing output " << first_bad << ": "
                                     << (first_bad < y.size() ? y[first_bad] : 0.0f) << " vs "
                                     << (first_bad < y.size() ? ref[first_bad] : 0.0f);
    }
  }
}

TEST(Int8Gemm, RejectsBadShapes) {
  const GpuStatus s = Int8GemmNT(nullptr, 0, 4, nullptr, nullptr, 4, nullptr, nullptr, nullptr);
  EXPECT_NE(s.error.find("m, n, k"), std::string::npos) << s.error;
  const GpuStatus t = Int8GemmNT(nullptr, 1, (1 << 17) + 1, nullptr, nullptr, 1, nullptr, nullptr, nullptr);
  EXPECT_NE(t.error.find("2^17"), std::string::npos) << t.error;
}

}  // namespace
}  // namespace squeeze::gpu
