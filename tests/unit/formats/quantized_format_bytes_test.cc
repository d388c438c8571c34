// Byte-level conformance of the compressed-tensors, GPTQ and AWQ writers and
// readers: packing order, dtypes, shapes and config keys, checked against
// words computed by hand from the formats' specifications (the sources named
// in compressed_tensors_format.h, gptq_format.h, awq_format.h).
//
// The fixture layer (model.layers.0.self_attn.q_proj, [64, 64], int4
// asymmetric, group 32) has
//   code q[r][c]  = (r + c) % 16 - 8        -> unsigned u = (r + c) % 16
//   scale s[r][g] = 0.5 + 0.25 g + r / 64   (exact in fp16)
//   zero z[r][g]  = (r + 3g) % 15 - 7       -> unsigned uz = (r + 3g) % 15 + 1
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "tests/unit/formats/test_util.h"
#include "workers/engine/formats/awq_format.h"
#include "workers/engine/formats/compressed_tensors_format.h"
#include "workers/engine/formats/gptq_format.h"
#include "workers/engine/formats/int_weight.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/formats/safetensors.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/stored_linear.h"

namespace squeeze {
namespace {

using testing::HasSubstr;
using testing_util::FreshTestDir;
namespace fs = std::filesystem;

ModelConfig TinyConfig() { return testing_util::QuantExportTinyConfig(); }

std::unique_ptr<PackedIntLinear> FixtureLayer(bool zero_point_zero = false) {
  WeightQuantArgs a;
  a.num_bits = 4;
  a.symmetric = false;
  a.strategy = QuantStrategy::kGroup;
  a.group_size = 32;
  const int64_t out = 64, in = 64, ng = 2;
  std::vector<int32_t> q(out * in), z(out * ng);
  std::vector<float> s(out * ng);
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) q[r * in + c] = static_cast<int32_t>((r + c) % 16) - 8;
    for (int64_t g = 0; g < ng; ++g) {
      s[r * ng + g] = 0.5f + 0.25f * g + r / 64.0f;
      z[r * ng + g] = static_cast<int32_t>((r + 3 * g) % 15) - 7;
    }
  }
  if (zero_point_zero) z[0] = -8;  // unsigned zero point 0
  auto layer = PackedIntLinear::FromCodes(a, out, in, q, s, z);
  EXPECT_TRUE(layer.ok()) << layer.status();
  return std::move(layer).value();
}

Model FixtureModel(bool zero_point_zero = false) {
  Model m = MakeRandomModel(TinyConfig(), 7);
  m.blocks[0].q_proj = FixtureLayer(zero_point_zero);
  return m;
}

uint32_t Word(const TensorView& v, int64_t i) {
  uint32_t w;
  std::memcpy(&w, static_cast<const uint8_t*>(v.data) + 4 * i, 4);
  return w;
}
uint16_t Half(const TensorView& v, int64_t i) {
  uint16_t h;
  std::memcpy(&h, static_cast<const uint8_t*>(v.data) + 2 * i, 2);
  return h;
}

nlohmann::json ReadJson(const std::string& path) { return nlohmann::json::parse(testing_util::ReadBytes(path)); }

void ExpectLoadsExactly(const Model& src, const std::string& dir, const std::string& kind) {
  RegisterMethodLinearLoaders();
  auto back = LoadModel(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->blocks[0].q_proj->kind(), kind);
  const MatrixRM a = src.blocks[0].q_proj->DenseWeight();
  const MatrixRM b = back->blocks[0].q_proj->DenseWeight();
  EXPECT_EQ((a - b).cwiseAbs().maxCoeff(), 0.0f);
}

// compressed-tensors' own example (pack_to_int32 docstring): 8-bit [1, 2]
// -> unsigned [129, 130] -> 33409; and int4 codes 0..7.
TEST(QuantizedFormatBytes, PackBitsMatchesPackToInt32) {
  const uint32_t v8[] = {1 + 128, 2 + 128};
  uint32_t w = 0;
  PackBits(v8, 2, 8, &w);
  EXPECT_EQ(w, 33409u);
  const uint32_t v4[] = {8, 9, 10, 11, 12, 13, 14, 15, 3};
  uint32_t w4[2];
  PackBits(v4, 9, 4, w4);
  EXPECT_EQ(w4[0], 0xFEDCBA98u);
  EXPECT_EQ(w4[1], 3u);  // padding slots are zero
  uint32_t back[9];
  UnpackBits(w4, 9, 4, back);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(back[i], v4[i]);
}

TEST(QuantizedFormatBytes, CompressedTensorsPackQuantized) {
  const std::string dir = FreshTestDir() + "/ct";
  const Model m = FixtureModel();
  CompressedTensorsExportOptions o;
  o.recipe_yaml = "quant_stage:\n  quant_modifiers: {}\n";
  auto r = ExportCompressedTensors(m, dir, o);
  ASSERT_TRUE(r.ok()) << r.status();
  auto st = ReadSafetensors(dir + "/model.safetensors");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->metadata.at("format"), "pt");
  const std::string p = "model.layers.0.self_attn.q_proj.";
  const TensorView& packed = st->tensors.at(p + "weight_packed");
  EXPECT_EQ(packed.dtype, DType::kI32);
  EXPECT_EQ(packed.shape, (std::vector<int64_t>{64, 8}));
  EXPECT_EQ(Word(packed, 0), 0x76543210u);      // row 0, inputs 0..7: u = 0..7, value i at bit 4i
  EXPECT_EQ(Word(packed, 8), 0x87654321u);      // row 1
  EXPECT_EQ(Word(packed, 8 * 9), 0x0FEDCBA9u);  // row 9: u = 9..15, then 16 % 16 = 0
  const TensorView& scale = st->tensors.at(p + "weight_scale");
  EXPECT_EQ(scale.dtype, DType::kF32);
  EXPECT_EQ(scale.shape, (std::vector<int64_t>{64, 2}));
  const TensorView& shape = st->tensors.at(p + "weight_shape");
  EXPECT_EQ(shape.dtype, DType::kI64);
  EXPECT_EQ(shape.shape, (std::vector<int64_t>{2}));
  int64_t dims[2];
  std::memcpy(dims, shape.data, 16);
  EXPECT_EQ(dims[0], 64);
  EXPECT_EQ(dims[1], 64);
  // Zero points packed along the output dim: [ceil(64 / 8), 2].
  const TensorView& zp = st->tensors.at(p + "weight_zero_point");
  EXPECT_EQ(zp.dtype, DType::kI32);
  EXPECT_EQ(zp.shape, (std::vector<int64_t>{8, 2}));
  EXPECT_EQ(Word(zp, 0), 0x87654321u);  // group 0, rows 0..7: uz = 1..8
  EXPECT_EQ(Word(zp, 1), 0xBA987654u);  // group 1, rows 0..7: uz = 4..11
  EXPECT_EQ(st->tensors.count(p + "weight_g_idx"), 0u);
  // Dense layers keep "weight".
  EXPECT_EQ(st->tensors.at("model.layers.0.self_attn.k_proj.weight").dtype, DType::kF32);

  const nlohmann::json qc = ReadJson(dir + "/config.json").at("quantization_config");
  EXPECT_EQ(qc.at("quant_method"), "compressed-tensors");
  EXPECT_EQ(qc.at("format"), "pack-quantized");
  EXPECT_EQ(qc.at("quantization_status"), "compressed");
  EXPECT_TRUE(qc.at("sparsity_config").is_object());
  const nlohmann::json& g = qc.at("config_groups").at("group_0");
  EXPECT_EQ(g.at("targets"), nlohmann::json::array({"model.layers.0.self_attn.q_proj"}));
  const nlohmann::json& w = g.at("weights");
  EXPECT_EQ(w.at("num_bits"), 4);
  EXPECT_EQ(w.at("type"), "int");
  EXPECT_EQ(w.at("symmetric"), false);
  EXPECT_EQ(w.at("strategy"), "group");
  EXPECT_EQ(w.at("group_size"), 32);
  EXPECT_TRUE(w.at("actorder").is_null());
  EXPECT_TRUE(g.at("input_activations").is_null());
  EXPECT_THAT(qc.at("ignore").get<std::vector<std::string>>(),
              testing::Contains("lm_head"));
  EXPECT_EQ(testing_util::ReadBytes(dir + "/recipe.yaml"), o.recipe_yaml);
  ExpectLoadsExactly(m, dir, "packed_int_w4_asym_g32");
}

TEST(QuantizedFormatBytes, GptqClassicFormat) {
  const std::string dir = FreshTestDir() + "/gptq";
  const Model m = FixtureModel();
  auto r = ExportGptq(m, dir);  // defaults: F16 scales and dense tensors
  ASSERT_TRUE(r.ok()) << r.status();
  auto st = ReadSafetensors(dir + "/model.safetensors");
  ASSERT_TRUE(st.ok()) << st.status();
  const std::string p = "model.layers.0.self_attn.q_proj.";
  const TensorView& qweight = st->tensors.at(p + "qweight");
  EXPECT_EQ(qweight.dtype, DType::kI32);
  EXPECT_EQ(qweight.shape, (std::vector<int64_t>{8, 64}));  // [in / 8, out]: packed along the input dim
  EXPECT_EQ(Word(qweight, 0), 0x76543210u);  // (k 0, output 0): inputs 0..7, u = 0..7
  EXPECT_EQ(Word(qweight, 1), 0x87654321u);  // (k 0, output 1)
  EXPECT_EQ(Word(qweight, 64), 0xFEDCBA98u); // (k 1, output 0): inputs 8..15
  const TensorView& qzeros = st->tensors.at(p + "qzeros");
  EXPECT_EQ(qzeros.dtype, DType::kI32);
  EXPECT_EQ(qzeros.shape, (std::vector<int64_t>{2, 8}));  // [groups, out / 8]: packed along the output dim
  EXPECT_EQ(Word(qzeros, 0), 0x76543210u);  // group 0, outputs 0..7: uz - 1 = 0..7
  EXPECT_EQ(Word(qzeros, 8), 0xA9876543u);  // group 1: uz - 1 = 3..10
  const TensorView& scales = st->tensors.at(p + "scales");
  EXPECT_EQ(scales.dtype, DType::kF16);
  EXPECT_EQ(scales.shape, (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(Half(scales, 0), 0x3800);   // group 0, output 0: 0.5
  EXPECT_EQ(Half(scales, 1), 0x3820);   // group 0, output 1: 0.515625
  EXPECT_EQ(Half(scales, 64), 0x3A00);  // group 1, output 0: 0.75
  const TensorView& g_idx = st->tensors.at(p + "g_idx");
  EXPECT_EQ(g_idx.dtype, DType::kI32);
  EXPECT_EQ(g_idx.shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(Word(g_idx, 31), 0u);
  EXPECT_EQ(Word(g_idx, 32), 1u);
  EXPECT_EQ(st->tensors.at("model.layers.0.self_attn.k_proj.weight").dtype, DType::kF16);

  const nlohmann::json qc = ReadJson(dir + "/quantize_config.json");
  EXPECT_EQ(qc.at("bits"), 4);
  EXPECT_EQ(qc.at("group_size"), 32);
  EXPECT_EQ(qc.at("desc_act"), false);
  EXPECT_EQ(qc.at("sym"), false);
  EXPECT_EQ(qc.at("quant_method"), "gptq");
  EXPECT_EQ(qc.at("checkpoint_format"), "gptq");
  EXPECT_TRUE(qc.at("dynamic").contains("-:^model\\.layers\\.0\\.self_attn\\.k_proj$"));
  EXPECT_EQ(ReadJson(dir + "/config.json").at("quantization_config").at("quant_method"), "gptq");
  // Scales are exact in fp16 here, so the quantized layer is too.
  ExpectLoadsExactly(m, dir, "packed_int_w4_asym_g32");
}

TEST(QuantizedFormatBytes, GptqZeroPointZeroNeedsV2) {
  const std::string dir = FreshTestDir();
  const Model m = FixtureModel(/*zero_point_zero=*/true);
  auto refused = ExportGptq(m, dir + "/v1");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("unsigned zero point 0"));
  EXPECT_FALSE(fs::exists(dir + "/v1/model.safetensors"));
  GptqExportOptions o;
  o.v2 = true;
  ASSERT_TRUE(ExportGptq(m, dir + "/v2", o).ok());
  auto st = ReadSafetensors(dir + "/v2/model.safetensors");
  ASSERT_TRUE(st.ok());
  // gptq_v2 stores uz itself: outputs 0..7 of group 0 are 0, 2, 3, ..., 8.
  EXPECT_EQ(Word(st->tensors.at("model.layers.0.self_attn.q_proj.qzeros"), 0), 0x87654320u);
  EXPECT_EQ(ReadJson(dir + "/v2/quantize_config.json").at("checkpoint_format"), "gptq_v2");
  ExpectLoadsExactly(m, dir + "/v2", "packed_int_w4_asym_g32");
}

TEST(QuantizedFormatBytes, AwqGemmInterleavedOrder) {
  const std::string dir = FreshTestDir() + "/awq";
  const Model m = FixtureModel();
  auto r = ExportAwq(m, dir);
  ASSERT_TRUE(r.ok()) << r.status();
  auto st = ReadSafetensors(dir + "/model.safetensors");
  ASSERT_TRUE(st.ok()) << st.status();
  const std::string p = "model.layers.0.self_attn.q_proj.";
  const TensorView& qweight = st->tensors.at(p + "qweight");
  EXPECT_EQ(qweight.dtype, DType::kI32);
  EXPECT_EQ(qweight.shape, (std::vector<int64_t>{64, 8}));  // [in, out / 8]: packed along the output dim
  // Input 0, outputs 0..7 (u = 0..7), nibble i holds output {0,2,4,6,1,3,5,7}[i].
  EXPECT_EQ(Word(qweight, 0), 0x75316420u);
  EXPECT_EQ(Word(qweight, 8), 0x86427531u);  // input 1: u = 1..8
  const TensorView& qzeros = st->tensors.at(p + "qzeros");
  EXPECT_EQ(qzeros.shape, (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(Word(qzeros, 0), 0x86427531u);  // group 0: uz = 1..8, no minus one
  const TensorView& scales = st->tensors.at(p + "scales");
  EXPECT_EQ(scales.dtype, DType::kF16);
  EXPECT_EQ(scales.shape, (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(Half(scales, 64), 0x3A00);
  EXPECT_EQ(st->tensors.count(p + "g_idx"), 0u);
  const nlohmann::json qc = ReadJson(dir + "/config.json").at("quantization_config");
  EXPECT_EQ(qc.at("quant_method"), "awq");
  EXPECT_EQ(qc.at("bits"), 4);
  EXPECT_EQ(qc.at("group_size"), 32);
  EXPECT_EQ(qc.at("zero_point"), true);
  EXPECT_EQ(qc.at("version"), "gemm");
  EXPECT_THAT(qc.at("modules_to_not_convert").get<std::vector<std::string>>(),
              testing::Contains("model.layers.0.mlp.down_proj"));
  ExpectLoadsExactly(m, dir, "packed_int_w4_asym_g32");
}

}  // namespace
}  // namespace squeeze
