// The lossless GGUF layer kind (methods/quant/ggml_block_linear.h,
// ggml_block_import.h): on a real stories260K export in Q8_0 and Q4_0, the
// block layers keep the file's exact weights (DenseWeight bit-identical to
// the reader's dequantized DenseLinear) and their logits equal the
// dequantized fp32 path within the stated tolerance of the int8 activation
// rounding; SaveModel / LoadModel keep the blocks (same logits bit for bit);
// the layer round-trips through its stored tensors and refuses bad input
// naming the field.
#include "workers/methods/quant/ggml_block_linear.h"

#include <cmath>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "tests/common/temp_dirs.h"
#include "tests/unit/kernels/kernel_test_util.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/methods/quant/ggml_block_import.h"
#include "workers/methods/stored_linear.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
const std::string kStories = std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K";

MatrixRM Logits(const Model& m, const std::vector<int>& ids) {
  KVCache cache(m, static_cast<int>(ids.size()));
  MatrixRM logits;
  EXPECT_TRUE(Forward(m, ids, 0, cache, logits).ok());
  return logits;
}

TEST(GgmlBlockLinear, Stories260KBlockLayersEqualTheDequantizedPath) {
  if (!fs::exists(kStories + "/stories260K.bin")) GTEST_SKIP() << kStories << " is absent (../shared)";
  auto src = LoadModel(kStories + "/stories260K.bin");
  ASSERT_TRUE(src.ok()) << src.status();
  const fs::path dir = test_inputs::EmptyPerTestDir("ggml_block_");
  const std::vector<int> ids = {1, 403, 407, 261, 378, 11, 300, 270, 32, 5, 296, 67, 400, 261, 262, 498};
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0}) {
    SCOPED_TRACE(std::string(GgmlTypeName(type)));
    const std::string path = (dir / "m.gguf").string();
    ASSERT_TRUE(ExportGguf(*src, kStories + "/tok512.bin", path, {type, true, "stories260K"}).ok());
    auto dense = LoadGgufModel(path);
    ASSERT_TRUE(dense.ok()) << dense.status();
    auto blocks = LoadGgufModel(path);
    ASSERT_TRUE(blocks.ok()) << blocks.status();
    auto file = ReadGguf(path);
    ASSERT_TRUE(file.ok()) << file.status();
    auto replaced = UseGgufBlockLayers(*file, blocks->model);
    ASSERT_TRUE(replaced.ok()) << replaced.status();
    // dim 64 -> q/k/v/o/gate/up keep blocks (in = 64); down_proj (in = 172)
    // was written as F16 by the exporter's fallback and stays dense.
    EXPECT_EQ(*replaced, 6 * blocks->model.config.n_layers);
    const std::string want_kind = type == GgmlType::kQ8_0 ? "gguf_q8_0" : "gguf_q4_0";
    std::vector<LinearSlot> d = dense->model.AllLinears(), b = blocks->model.AllLinears();
    ASSERT_EQ(d.size(), b.size());
    int block_layers = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      if ((*b[i].slot)->kind() != want_kind) continue;
      ++block_layers;
      const MatrixRM wd = (*d[i].slot)->DenseWeight(), wb = (*b[i].slot)->DenseWeight();
      ASSERT_EQ(wd.rows(), wb.rows());
      ASSERT_EQ(wd.cols(), wb.cols());
      EXPECT_EQ(std::memcmp(wd.data(), wb.data(), sizeof(float) * wd.size()), 0) << d[i].name;
    }
    EXPECT_EQ(block_layers, *replaced);
    // Logits: the int8 activation rounding (<= half a step of max|x|/127 per
    // 32 values) changes each linear's output by well under 1% of its
    // magnitude; through the 5 layers the logits stay within 2% of their
    // range (measured: 0.57% for Q8_0, 0.48% for Q4_0), and the greedy token
    // agrees at almost every position.
    const MatrixRM ld = Logits(dense->model, ids), lb = Logits(blocks->model, ids);
    double max_diff = 0.0, range = 0.0;
    int agree = 0;
    for (int64_t t = 0; t < ld.rows(); ++t) {
      Eigen::Index ad, ab;
      ld.row(t).maxCoeff(&ad);
      lb.row(t).maxCoeff(&ab);
      agree += ad == ab;
      range = std::max(range, double{ld.row(t).maxCoeff() - ld.row(t).minCoeff()});
      max_diff = std::max(max_diff, double{(ld.row(t) - lb.row(t)).cwiseAbs().maxCoeff()});
    }
    RecordProperty(std::string(GgmlTypeName(type)) + "_rel_logit_diff", std::to_string(max_diff / range));
    EXPECT_GT(max_diff, 0.0);  // the activations really are quantized
    EXPECT_LE(max_diff, 0.02 * range);
    EXPECT_GE(agree, static_cast<int>(ids.size()) - 2);
    // Our own format keeps the blocks: SaveModel + LoadModel give the same logits bit for bit.
    RegisterMethodLinearLoaders();
    const std::string saved = (dir / ("saved_" + want_kind)).string();
    ASSERT_TRUE(SaveModel(blocks->model, saved).ok());
    auto reloaded = LoadModel(saved);
    ASSERT_TRUE(reloaded.ok()) << reloaded.status();
    EXPECT_EQ(reloaded->blocks[0].q_proj->kind(), want_kind);
    const MatrixRM lr = Logits(*reloaded, ids);
    EXPECT_EQ(std::memcmp(lr.data(), lb.data(), sizeof(float) * lb.size()), 0);
  }
}

TEST(GgmlBlockLinear, StoredTensorsRoundTripAndBadInputIsNamed) {
  const int64_t out = 5, in = 64;
  std::vector<uint8_t> bytes(static_cast<size_t>(out * 2 * kernels::kQ4_0BlockBytes));
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>((i * 37 + 11) % 251);
  for (int64_t blk = 0; blk < out * 2; ++blk) {  // finite fp16 scales (0x2c00 .. 0x2cff: ~0.06)
    bytes[blk * kernels::kQ4_0BlockBytes + 1] = 0x2c;
  }
  auto layer = GgmlBlockLinear::FromBlocks(kernels::GgmlBlockKind::kQ4_0, out, in, bytes.data(),
                                           static_cast<int64_t>(bytes.size()), {1, 2, 3, 4, 5});
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ((*layer)->kind(), "gguf_q4_0");
  std::map<std::string, TensorView> stored;
  for (auto& [name, view] : (*layer)->StoredTensors()) stored[name] = view;
  auto back = GgmlBlockLinear::FromStored("gguf_q4_0", stored);
  ASSERT_TRUE(back.ok()) << back.status();
  const std::vector<float> x = kernels::testing::RandomFloats(3 * in, 4);
  std::vector<float> y1(3 * out), y2(3 * out), yr(3 * out);
  ThreadPool pool(2);
  (*layer)->Forward(x.data(), 3, y1.data(), pool);
  (*back)->Forward(x.data(), 3, y2.data(), pool);
  kernels::GgmlBlockGemmReference((*layer)->View(), x.data(), 3, (*layer)->bias().data(), yr.data());
  EXPECT_TRUE(kernels::testing::BitEqual(y1, y2));
  EXPECT_TRUE(kernels::testing::BitEqual(y1, yr));

  auto bad_in = GgmlBlockLinear::FromBlocks(kernels::GgmlBlockKind::kQ4_0, out, 48, bytes.data(), 10);
  ASSERT_FALSE(bad_in.ok());
  EXPECT_NE(bad_in.status().message().find("in_features 48"), std::string::npos) << bad_in.status();
  auto bad_bytes = GgmlBlockLinear::FromBlocks(kernels::GgmlBlockKind::kQ8_0, out, in, bytes.data(),
                                               static_cast<int64_t>(bytes.size()));
  ASSERT_FALSE(bad_bytes.ok());
  EXPECT_NE(bad_bytes.status().message().find("weight_blocks"), std::string::npos) << bad_bytes.status();
  stored.erase("weight_blocks");
  auto missing = GgmlBlockLinear::FromStored("gguf_q4_0", stored);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("weight_blocks"), std::string::npos) << missing.status();
}

}  // namespace
}  // namespace squeeze
