// PackedIntGemv (GPU) against PackedIntGemvReference on random and
// adversarial shapes: batch 1..33, odd rows / cols (padding slots in the last
// word), groups of 8..128 and one per row, zero points, bias, extreme codes.
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "workers/kernels/cuda/fp16.h"
#include "workers/kernels/cuda/packed_int_gemv.h"
#include "workers/kernels/cuda/tests/gpu_test_util.h"

namespace squeeze::gpu {
namespace {

using testing::ToDevice;
using testing::ToHost;

struct HostPacked {
  int bits = 4;
  int64_t rows = 0, cols = 0, wpr = 0, gpr = 0, gs = 0;
  std::vector<uint32_t> packed;
  std::vector<float> scales;
  std::vector<int32_t> zeros;  // empty = symmetric
  PackedIntGpuWeights View() const {
    PackedIntGpuWeights w;
    w.num_bits = bits;
    w.rows = rows;
    w.cols = cols;
    w.words_per_row = wpr;
    w.packed = packed.data();
    w.groups_per_row = gpr;
    w.group_size = gs;
    w.scales = scales.data();
    w.zero_points = zeros.empty() ? nullptr : zeros.data();
    return w;
  }
};

// Codes drawn uniformly (mode 0), all qmin (1), all qmax (2); padding slots 0
// as PackedIntLinear writes them.
HostPacked MakeWeights(int bits, int64_t rows, int64_t cols, int64_t group, bool asym, int mode, std::mt19937& rng) {
  HostPacked h;
  h.bits = bits;
  h.rows = rows;
  h.cols = cols;
  const int per_word = 32 / bits;
  h.wpr = (cols + per_word - 1) / per_word;
  h.gs = group <= 0 ? cols : group;
  h.gpr = (cols + h.gs - 1) / h.gs;
  const uint32_t levels = 1u << bits;
  std::uniform_int_distribution<uint32_t> code(0, levels - 1);
  h.packed.assign(static_cast<size_t>(rows * h.wpr), 0u);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t u = mode == 0 ? code(rng) : (mode == 1 ? 0u : levels - 1);
      h.packed[r * h.wpr + c / per_word] |= u << ((c % per_word) * bits);
    }
  }
  std::uniform_real_distribution<float> sc(0.001f, 0.05f);
  h.scales.resize(static_cast<size_t>(rows * h.gpr));
  for (float& s : h.scales) s = sc(rng);
  if (asym) {
    std::uniform_int_distribution<int32_t> z(-(1 << (bits - 1)), (1 << (bits - 1)) - 1);
    h.zeros.resize(h.scales.size());
    for (int32_t& v : h.zeros) v = z(rng);
  }
  return h;
}

std::vector<uint16_t> RandomHalves(int64_t count, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<uint16_t> v(static_cast<size_t>(count));
  for (uint16_t& x : v) x = FloatToHalf(d(rng));
  return v;
}

// Runs the GPU kernel and the reference; checks every output was written and
// lies within the documented bound. rows_per_warp 0 = default.
void CheckCase(const HostPacked& h, int64_t n, bool with_bias, int rows_per_warp, std::mt19937& rng,
               const std::string& name) {
  SCOPED_TRACE(name);
  const std::vector<uint16_t> x = RandomHalves(n * h.cols, rng);
  std::vector<float> bias;
  if (with_bias) {
    std::normal_distribution<float> d(0.0f, 0.5f);
    bias.resize(static_cast<size_t>(h.rows));
    for (float& b : bias) b = d(rng);
  }
  GpuBuffer dp = ToDevice(h.packed), ds = ToDevice(h.scales), dz = ToDevice(h.zeros), dx = ToDevice(x),
            db = ToDevice(bias), dy;
  SQ_ASSERT_GPU_OK(dy.Allocate(static_cast<size_t>(n * h.rows) * 2));
  SQ_ASSERT_GPU_OK(dy.Fill(0xff));  // fp16 NaN everywhere: unwritten outputs show
  PackedIntGpuWeights w = h.View();
  w.packed = dp.as<uint32_t>();
  w.scales = ds.as<float>();
  w.zero_points = h.zeros.empty() ? nullptr : dz.as<int32_t>();
  SQ_ASSERT_GPU_OK(PackedIntGemvVariant(w, dx.as<uint16_t>(), n, with_bias ? db.as<float>() : nullptr,
                                        dy.as<uint16_t>(), rows_per_warp));
  SQ_ASSERT_GPU_OK(GpuSynchronize());
  const std::vector<uint16_t> y = ToHost<uint16_t>(dy, static_cast<size_t>(n * h.rows));
  std::vector<float> ref(static_cast<size_t>(n * h.rows));
  std::vector<double> abs_sum(ref.size());
  PackedIntGemvReference(h.View(), x.data(), n, with_bias ? bias.data() : nullptr, ref.data(), abs_sum.data());
  int bad = 0;
  for (size_t i = 0; i < ref.size() && bad < 5; ++i) {
    const float got = HalfToFloat(y[i]);
    const double tol = std::ldexp(std::fabs(ref[i]), -11) + 1e-5 * abs_sum[i] + std::ldexp(1.0, -24);
    if (!(std::fabs(got - ref[i]) <= tol)) {
      ++bad;
      ADD_FAILURE() << "y[" << i / h.rows << ", " << i % h.rows << "] = " << got << ", reference " << ref[i]
                    << " (tolerance " << tol << ")";
    }
  }
}

TEST(PackedIntGemv, RandomAndOddShapesMatchReference) {
  SQ_SKIP_WITHOUT_GPU();
  std::mt19937 rng(7);
  struct Shape {
    int bits;
    int64_t rows, cols, group;
    bool asym;
  };
  const Shape shapes[] = {
      {4, 1, 8, 8, false},       {4, 3, 13, 0, false},     {4, 37, 100, 0, true},   {4, 64, 256, 32, false},
      {4, 129, 1000, 8, true},   {4, 256, 4096, 128, false}, {4, 17, 2056, 128, true}, {8, 5, 7, 0, false},
      {8, 61, 300, 4, true},     {8, 128, 1024, 128, false}, {8, 33, 2052, 64, true},
  };
  const int64_t batches[] = {1, 2, 3, 5, 8, 13, 16, 17, 33};
  for (const Shape& s : shapes) {
    const HostPacked h = MakeWeights(s.bits, s.rows, s.cols, s.group, s.asym, 0, rng);
    for (int64_t n : batches) {
      const std::string name = "int" + std::to_string(s.bits) + " " + std::to_string(s.rows) + "x" +
                               std::to_string(s.cols) + " g" + std::to_string(s.group) + (s.asym ? " asym" : "") +
                               " n=" + std::to_string(n);
      CheckCase(h, n, n % 2 == 1, 0, rng, name);
    }
  }
}

TEST(PackedIntGemv, EveryRowsPerWarpVariantMatches) {
  SQ_SKIP_WITHOUT_GPU();
  std::mt19937 rng(11);
  for (int bits : {4, 8}) {
    const HostPacked h = MakeWeights(bits, 75, 520, 40, true, 0, rng);
    for (int rw : {1, 2, 4}) {
      for (int64_t n : {1, 4, 9, 16}) {
        CheckCase(h, n, true, rw, rng, "bits " + std::to_string(bits) + " rw " + std::to_string(rw) + " n " +
                                           std::to_string(n));
      }
    }
  }
}

TEST(PackedIntGemv, TensorCoreKernelMatchesReference) {
  SQ_SKIP_WITHOUT_GPU();
  std::mt19937 rng(13);
  struct Shape {
    int bits;
    int64_t rows, cols, group;
    bool asym;
  };
  const Shape shapes[] = {{4, 1, 128, 128, false},  {4, 16, 384, 128, true},   {4, 37, 1024, 256, false},
                          {4, 300, 512, 0, true},   {4, 33, 4096, 128, true},  {4, 129, 11008, 128, false},
                          {8, 1, 64, 64, false},    {8, 23, 320, 64, true},    {8, 70, 4096, 0, false},
                          {8, 17, 2112, 128, true}};
  for (const Shape& s : shapes) {
    const HostPacked h = MakeWeights(s.bits, s.rows, s.cols, s.group, s.asym, 0, rng);
    for (int64_t n : {1, 3, 8, 9, 16, 17}) {
      CheckCase(h, n, n % 2 == 0, kGemvTensorCores, rng,
                "mma int" + std::to_string(s.bits) + " " + std::to_string(s.rows) + "x" + std::to_string(s.cols) + " g" + std::to_string(s.group) +
                    (s.asym ? " asym" : "") + " n=" + std::to_string(n));
    }
    CheckCase(h, 9, true, kGemvTensorCoresPipe8, rng, "mma pipe8, rows " + std::to_string(s.rows));
    CheckCase(h, 3, false, kGemvTensorCoresPipe16, rng, "mma pipe16, rows " + std::to_string(s.rows));
  }
  // Not applicable: a clear error, not a wrong result.
  const HostPacked odd = MakeWeights(4, 8, 200, 8, false, 0, rng);
  GpuBuffer dp = ToDevice(odd.packed), ds = ToDevice(odd.scales), dx, dy;
  SQ_ASSERT_GPU_OK(dx.Allocate(200 * 2));
  SQ_ASSERT_GPU_OK(dy.Allocate(8 * 2));
  PackedIntGpuWeights w = odd.View();
  w.packed = dp.as<uint32_t>();
  w.scales = ds.as<float>();
  const GpuStatus st = PackedIntGemvVariant(w, dx.as<uint16_t>(), 1, nullptr, dy.as<uint16_t>(), kGemvTensorCores);
  EXPECT_NE(st.error.find("tensor-core"), std::string::npos) << st.error;
}

TEST(PackedIntGemv, ExtremeCodesMatchReference) {
  SQ_SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  for (int bits : {4, 8}) {
    for (int mode : {1, 2}) {
      const HostPacked h = MakeWeights(bits, 40, 777, 0, mode == 2, mode, rng);
      CheckCase(h, 4, false, 0, rng, "bits " + std::to_string(bits) + " mode " + std::to_string(mode));
    }
  }
}

TEST(PackedIntGemv, LongRowsUseSeveralSharedMemoryChunks) {
  SQ_SKIP_WITHOUT_GPU();
  std::mt19937 rng(5);
  // 16 rows of x x 11008 columns exceed one 48 KB chunk: several chunks.
  const HostPacked h = MakeWeights(4, 40, 11008, 128, false, 0, rng);
  for (int variant : {0, 1, 2, 4}) {
    CheckCase(h, 16, true, variant, rng, "int4 40x11008 n=16 variant " + std::to_string(variant));
    CheckCase(h, 1, false, variant, rng, "int4 40x11008 n=1 variant " + std::to_string(variant));
  }
}

TEST(PackedIntGemv, RejectsUnsupportedLayoutsNamingTheField) {
  // Validation needs no device.
  std::mt19937 rng(1);
  HostPacked h = MakeWeights(4, 4, 64, 12, false, 0, rng);  // group 12: not a multiple of 8
  GpuStatus s = ValidatePackedIntGpuWeights(h.View());
  EXPECT_NE(s.error.find("group_size"), std::string::npos) << s.error;
  PackedIntGpuWeights w = MakeWeights(4, 4, 64, 16, false, 0, rng).View();
  w.words_per_row = 9;
  s = ValidatePackedIntGpuWeights(w);
  EXPECT_NE(s.error.find("words_per_row"), std::string::npos) << s.error;
  w = MakeWeights(4, 4, 64, 16, false, 0, rng).View();
  w.num_bits = 3;
  s = ValidatePackedIntGpuWeights(w);
  EXPECT_NE(s.error.find("num_bits"), std::string::npos) << s.error;
  w = MakeWeights(4, 4, 64, 16, false, 0, rng).View();
  w.groups_per_row = 3;
  s = ValidatePackedIntGpuWeights(w);
  EXPECT_NE(s.error.find("groups_per_row"), std::string::npos) << s.error;
  EXPECT_TRUE(ValidatePackedIntGpuWeights(MakeWeights(8, 4, 64, 16, true, 0, rng).View()).ok());
  EXPECT_EQ(PackedIntWeightBytes(MakeWeights(4, 2, 64, 32, true, 0, rng).View()), 2 * 8 * 4 + 2 * 2 * 4 * 2);
}

}  // namespace
}  // namespace squeeze::gpu
