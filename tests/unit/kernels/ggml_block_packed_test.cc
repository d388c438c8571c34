// Q4_0 / Q8_0 GGUF layers on the packed-int kernels (ggml_block_linear.h,
// PackedIntGemmQ8Quantized in packed_int_gemm.h): the layer converts its
// blocks once (4-bit / 8-bit codes) and its Forward equals the ggml block reference
// (GgmlBlockGemmReference, q8_0_gemm.h) bit for bit under every kernel
// variant, for decode and prefill row counts, shapes with 16+ blocks per row
// and tails, adversarial codes and fp16 scales (subnormals, +-0, the largest
// finite); the kernel entry point equals its reference on both of its paths
// (row kernels, panels); the stored tensors give back the original block
// bytes; scales that cannot round-trip keep the layer on blocks.
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"
#include "workers/engine/core/half.h"
#include "workers/kernels/cpu/packed_int_gemm.h"
#include "workers/kernels/cpu/packed_int_panel.h"
#include "workers/kernels/cpu/q8_0_gemm.h"
#include "workers/methods/quant/ggml_block_linear.h"

namespace squeeze {
namespace {

using kernels::GgmlBlockKind;
using kernels::testing::AllVariants;
using kernels::testing::BitEqual;
using kernels::testing::RandomFloats;
using kernels::testing::Variant;
using kernels::testing::VariantScope;

// fp16 scales that stress the conversion and the fp32 chain: subnormals
// (0x0001 the smallest, 0x03ff the largest), +0 / -0, the largest finite
// (0x7bff = 65504) and its negative, 1.0, and ordinary random values.
constexpr uint16_t kAdversarialScales[] = {0x0001, 0x03ff, 0x8001, 0x0000, 0x8000,
                                           0x7bff, 0xfbff, 0x3c00, 0x0400};

// Blocks of `kind`: every code value; with `adversarial`, every 3rd block
// gets a scale from kAdversarialScales and every 5th only the extreme codes
// (nibbles 0 / 15, bytes -128 / 127).
std::vector<uint8_t> MakeBlocks(GgmlBlockKind kind, int64_t rows, int64_t cols, bool adversarial, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> mag(0.001f, 0.5f);
  std::uniform_int_distribution<int> byte(0, 255), coin(0, 1);
  const int64_t blocks = rows * cols / kernels::kGgmlBlockCols, bb = kernels::GgmlBlockBytes(kind);
  std::vector<uint8_t> out(static_cast<size_t>(blocks * bb));
  for (int64_t k = 0; k < blocks; ++k) {
    uint8_t* p = out.data() + k * bb;
    uint16_t h = FloatToF16(mag(rng) * (coin(rng) ? 1.0f : -1.0f));
    if (adversarial && k % 3 == 0) h = kAdversarialScales[(k / 3) % std::size(kAdversarialScales)];
    p[0] = static_cast<uint8_t>(h & 0xff);
    p[1] = static_cast<uint8_t>(h >> 8);
    for (int64_t i = 2; i < bb; ++i) {
      if (adversarial && k % 5 == 0) {
        p[i] = kind == GgmlBlockKind::kQ8_0 ? (coin(rng) ? 0x80 : 0x7f)
                                            : static_cast<uint8_t>((coin(rng) ? 0x0 : 0xf) | (coin(rng) ? 0x0 : 0xf0));
      } else {
        p[i] = static_cast<uint8_t>(byte(rng));
      }
    }
  }
  return out;
}

std::string KindName(GgmlBlockKind kind) { return kind == GgmlBlockKind::kQ4_0 ? "gguf_q4_0" : "gguf_q8_0"; }

constexpr GgmlBlockKind kKinds[] = {GgmlBlockKind::kQ4_0, GgmlBlockKind::kQ8_0};

// Activations: random, with an all-zero row 1 and a row 2 of +-amax only.
std::vector<float> MakeX(int64_t n, int64_t cols, uint64_t seed) {
  std::vector<float> x = RandomFloats(static_cast<size_t>(n * cols), seed, -3.0f, 3.0f);
  if (n > 1) std::fill(x.begin() + cols, x.begin() + 2 * cols, 0.0f);
  if (n > 2) {
    for (int64_t c = 0; c < cols; ++c) x[2 * cols + c] = (c % 3 == 0) ? -2.5f : 2.5f;
  }
  return x;
}

struct Shape {
  int64_t rows, cols;
};
// 1 and 3 blocks per row, 32 blocks, 33 (a tail past the 16-block kernel
// blocks and the 128-column chunks), 129 blocks (4096 + 32); 37 / 19 rows
// leave row tails of the 16-row items and panels and of the 4-row blocks.
constexpr Shape kShapes[] = {{37, 32}, {19, 96}, {37, 1024}, {19, 1056}, {21, 4128}};
constexpr int64_t kRowCounts[] = {1, 2, 5, 17, 64};

TEST(GgmlBlockPacked, LayerForwardEqualsTheBlockReferenceUnderEveryVariant) {
  ThreadPool pool1(1), pool3(3);
  uint64_t seed = 100;
  for (GgmlBlockKind kind : kKinds) {
    for (const Shape& s : kShapes) {
      for (bool adversarial : {false, true}) {
        const std::vector<uint8_t> blocks = MakeBlocks(kind, s.rows, s.cols, adversarial, ++seed);
        const std::vector<float> bias = RandomFloats(static_cast<size_t>(s.rows), ++seed);
        auto layer = GgmlBlockLinear::FromBlocks(kind, s.rows, s.cols, blocks.data(),
                                                 static_cast<int64_t>(blocks.size()),
                                                 adversarial ? bias : std::vector<float>{});
        ASSERT_TRUE(layer.ok()) << layer.status();
        ASSERT_TRUE((*layer)->packed()) << "the layer was not converted";
        const kernels::GgmlBlockWeights w{kind, s.rows, s.cols, blocks.data()};
        for (int64_t n : kRowCounts) {
          SCOPED_TRACE(testing::Message() << KindName(kind) << " " << s.rows << "x" << s.cols << " n=" << n
                                          << " adversarial=" << adversarial);
          const std::vector<float> x = MakeX(n, s.cols, ++seed);
          std::vector<float> want(static_cast<size_t>(n * s.rows));
          kernels::GgmlBlockGemmReference(w, x.data(), n, adversarial ? bias.data() : nullptr, want.data());
          for (const Variant& v : AllVariants()) {
            SCOPED_TRACE(v.Name());
            VariantScope scope(v);
            for (ThreadPool* pool : {&pool1, &pool3}) {
              std::vector<float> y(want.size(), -1.0f);
              (*layer)->Forward(x.data(), n, y.data(), *pool);
              ASSERT_TRUE(BitEqual(y, want));
            }
          }
        }
      }
    }
  }
}

// The entry point itself: QuantizeActivationsQ8_0's activations through the
// row kernels (panels off) and through the panels (from one row) equal
// PackedIntGemmQ8QuantizedReference, which equals the block reference: the
// two chains are the same arithmetic.
TEST(GgmlBlockPacked, QuantizedEntryPointBothPathsEqualItsReference) {
  ThreadPool pool(2);
  uint64_t seed = 500;
  for (GgmlBlockKind kind : kKinds) {
    for (const Shape& s : {Shape{21, 4128}, Shape{37, 1056}, Shape{19, 96}}) {
      const std::vector<uint8_t> blocks = MakeBlocks(kind, s.rows, s.cols, true, ++seed);
      auto layer = GgmlBlockLinear::FromBlocks(kind, s.rows, s.cols, blocks.data(),
                                               static_cast<int64_t>(blocks.size()));
      ASSERT_TRUE(layer.ok()) << layer.status();
      ASSERT_TRUE((*layer)->packed());
      const kernels::PackedIntWeights pw = (*layer)->PackedView();
      const kernels::GgmlBlockWeights w{kind, s.rows, s.cols, blocks.data()};
      for (int64_t n : {1, 3, 17}) {
        SCOPED_TRACE(testing::Message() << KindName(kind) << " " << s.rows << "x" << s.cols << " n=" << n);
        const std::vector<float> x = MakeX(n, s.cols, ++seed);
        kernels::Q8_0Activations a;
        kernels::QuantizeActivationsQ8_0(x.data(), n, s.cols, &a);
        std::vector<float> want(static_cast<size_t>(n * s.rows)), ref(want.size());
        kernels::GgmlBlockGemmReference(w, x.data(), n, nullptr, want.data());
        kernels::PackedIntGemmQ8QuantizedReference(pw, a.qa.data(), a.da.data(), n, nullptr, ref.data());
        ASSERT_TRUE(BitEqual(ref, want));
        for (const Variant& v : AllVariants()) {
          SCOPED_TRACE(v.Name());
          VariantScope scope(v);
          for (int64_t tile_rows : {int64_t{1}, int64_t{1} << 40}) {
            std::vector<float> y(want.size(), -1.0f);
            kernels::internal::PackedIntGemmQ8QuantizedWithTileRows(pw, a.qa.data(), a.da.data(), a.block_sums.data(),
                                                                    n, nullptr, y.data(), pool, tile_rows);
            ASSERT_TRUE(BitEqual(y, want)) << "tile_rows " << tile_rows;
          }
        }
      }
    }
  }
}

std::map<std::string, TensorView> Stored(const GgmlBlockLinear& layer) {
  std::map<std::string, TensorView> stored;
  for (auto& [name, view] : layer.StoredTensors()) stored[name] = view;
  return stored;
}

// The stored tensors are the original block bytes (converted back exactly),
// DenseWeight is the blocks' dequantization bit for bit, and a layer rebuilt
// from the stored tensors (copied or shared with an owner) is converted
// again and computes the same outputs.
TEST(GgmlBlockPacked, StoredBlocksAreTheOriginalBytes) {
  const int64_t rows = 19, cols = 1056;
  for (GgmlBlockKind kind : kKinds) {
    SCOPED_TRACE(KindName(kind));
    const std::vector<uint8_t> blocks = MakeBlocks(kind, rows, cols, true, 900);
    auto layer = GgmlBlockLinear::FromBlocks(kind, rows, cols, blocks.data(),
                                             static_cast<int64_t>(blocks.size()));
    ASSERT_TRUE(layer.ok()) << layer.status();
    ASSERT_TRUE((*layer)->packed());
    EXPECT_EQ((*layer)->kind(), KindName(kind));
    // Codes (0.5 or 1 byte per weight) + fp32 scales (4 / 32 bytes per weight).
    EXPECT_EQ((*layer)->StorageBytes(), rows * cols / (kind == GgmlBlockKind::kQ4_0 ? 2 : 1) + rows * cols / 32 * 4);
    std::map<std::string, TensorView> stored = Stored(**layer);
    const TensorView& t = stored.at("weight_blocks");
    ASSERT_EQ(t.nbytes, blocks.size());
    EXPECT_EQ(t.shape, (std::vector<int64_t>{rows, cols / 32 * kernels::GgmlBlockBytes(kind)}));
    EXPECT_EQ(std::memcmp(t.data, blocks.data(), blocks.size()), 0);
    const auto view = (*layer)->View();
    EXPECT_EQ(std::memcmp(view.data, blocks.data(), blocks.size()), 0);

    const kernels::GgmlBlockWeights w{kind, rows, cols, blocks.data()};
    MatrixRM want(rows, cols);
    kernels::GgmlBlockDequantizeRows(w, 0, rows, want.data());
    const MatrixRM got = (*layer)->DenseWeight();
    EXPECT_EQ(std::memcmp(got.data(), want.data(), sizeof(float) * want.size()), 0);

    auto shared = GgmlBlockLinear::FromStored(KindName(kind), stored);  // owner set: the shared path
    ASSERT_TRUE(shared.ok()) << shared.status();
    EXPECT_TRUE((*shared)->packed());
    const std::shared_ptr<const void> keep = stored["weight_blocks"].owner;  // keeps the bytes alive
    stored["weight_blocks"].owner = nullptr;  // no owner: the copied path
    auto copied = GgmlBlockLinear::FromStored(KindName(kind), stored);
    ASSERT_TRUE(copied.ok()) << copied.status();
    EXPECT_TRUE((*copied)->packed());
    const std::vector<float> x = MakeX(5, cols, 901);
    std::vector<float> y0(5 * rows), y1(5 * rows), y2(5 * rows);
    ThreadPool pool(2);
    (*layer)->Forward(x.data(), 5, y0.data(), pool);
    (*copied)->Forward(x.data(), 5, y1.data(), pool);
    (*shared)->Forward(x.data(), 5, y2.data(), pool);
    EXPECT_TRUE(BitEqual(y0, y1));
    EXPECT_TRUE(BitEqual(y0, y2));
    const std::map<std::string, TensorView> again = Stored(**copied);
    EXPECT_EQ(std::memcmp(again.at("weight_blocks").data, blocks.data(), blocks.size()), 0);
  }
}

// A scale whose fp16 -> fp32 -> fp16 round trip is not the identity (a NaN
// whose payload the conversion does not keep) keeps the layer on blocks, so
// its stored bytes stay the original ones; without such a NaN, every NaN
// scale converts and round-trips.
TEST(GgmlBlockPacked, LayersThatCannotConvertKeepTheirBlocks) {
  const int64_t rows = 3, cols = 64;
  for (GgmlBlockKind kind : kKinds) {
    SCOPED_TRACE(KindName(kind));
    std::vector<uint8_t> blocks = MakeBlocks(kind, rows, cols, false, 950);
    const int64_t bb = kernels::GgmlBlockBytes(kind);
    uint16_t odd_nan = 0;
    for (uint32_t h = 0x7c01; h <= 0x7fff && odd_nan == 0; ++h) {
      if (FloatToF16(F16ToFloat(static_cast<uint16_t>(h))) != h) odd_nan = static_cast<uint16_t>(h);
    }
    if (odd_nan != 0) {
      blocks[bb] = static_cast<uint8_t>(odd_nan & 0xff);  // block 1 of row 0
      blocks[bb + 1] = static_cast<uint8_t>(odd_nan >> 8);
      auto layer = GgmlBlockLinear::FromBlocks(kind, rows, cols, blocks.data(), static_cast<int64_t>(blocks.size()));
      ASSERT_TRUE(layer.ok()) << layer.status();
      EXPECT_FALSE((*layer)->packed());
      EXPECT_EQ((*layer)->StorageBytes(), static_cast<int64_t>(blocks.size()));
      EXPECT_EQ(std::memcmp(Stored(**layer).at("weight_blocks").data, blocks.data(), blocks.size()), 0);
    } else {
      for (uint16_t h : {uint16_t{0x7c01}, uint16_t{0x7fff}}) {
        blocks[0] = static_cast<uint8_t>(h & 0xff);
        blocks[1] = static_cast<uint8_t>(h >> 8);
        auto layer = GgmlBlockLinear::FromBlocks(kind, rows, cols, blocks.data(), static_cast<int64_t>(blocks.size()));
        ASSERT_TRUE(layer.ok()) << layer.status();
        EXPECT_TRUE((*layer)->packed());
        EXPECT_EQ(std::memcmp(Stored(**layer).at("weight_blocks").data, blocks.data(), blocks.size()), 0);
      }
    }
  }
}

}  // namespace
}  // namespace squeeze
