// Round trips through the compressed-tensors, GPTQ and AWQ exporters and
// LoadModel's importers: on the real stories260K model (an RTN artifact
// exported, imported, dequantized and compared with the fake-quant
// reference, perplexities compared), on act-order GPTQ layers (g_idx), W8A8
// layers (int-quantized), sparse-bitmask checkpoints, and the refusals.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/unit/formats/test_util.h"
#include "workers/engine/eval/perplexity.h"
#include "workers/engine/formats/awq_format.h"
#include "workers/engine/formats/compressed_tensors_format.h"
#include "workers/engine/formats/gptq_format.h"
#include "workers/engine/formats/int_weight.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/formats/quantized_checkpoint.h"
#include "workers/engine/formats/safetensors.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/engine/tokenizer/tokenizer.h"
#include "workers/methods/quant/gptq.h"
#include "workers/methods/quant/rtn.h"
#include "workers/methods/quant/w8a8_linear.h"
#include "workers/methods/stored_linear.h"

namespace squeeze {
namespace {

using testing::HasSubstr;
using testing_util::FreshTestDir;
namespace fs = std::filesystem;

const std::string kShared = SQUEEZE_SHARED_DIR;
const std::string kStories = kShared + "/models/stories260K";

ModelConfig TinyConfig() { return testing_util::QuantExportTinyConfig(); }

WeightQuantArgs Args(int bits, bool sym, int group) {
  WeightQuantArgs a;
  a.num_bits = bits;
  a.symmetric = sym;
  a.strategy = group > 0 ? QuantStrategy::kGroup : QuantStrategy::kChannel;
  a.group_size = group > 0 ? group : 128;
  return a;
}

double MaxAbsDiff(const MatrixRM& a, const MatrixRM& b) { return (a - b).cwiseAbs().maxCoeff(); }

MatrixRM Logits(const Model& m, const std::vector<int>& ids) {
  KVCache cache(m, static_cast<int>(ids.size()));
  MatrixRM logits;
  EXPECT_TRUE(Forward(m, ids, 0, cache, logits).ok());
  return logits;
}

// The stories260K RTN artifact (W4 asymmetric group 32 on every linear),
// saved and re-read the way a job's artifact is, and the text it is scored on.
struct StoriesFixture {
  Model dense;
  std::string artifact;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string text;
};

std::unique_ptr<StoriesFixture> MakeStories(const std::string& dir) {
  auto f = std::make_unique<StoriesFixture>();
  auto dense = LoadModel(kStories + "/hf");
  EXPECT_TRUE(dense.ok()) << dense.status();
  auto quant = LoadModel(kStories + "/hf");
  EXPECT_TRUE(quant.ok());
  for (const LinearSlot& s : quant->AllLinears()) {
    auto q = QuantizeRtn((*s.slot)->DenseWeight(), Args(4, false, 32));
    EXPECT_TRUE(q.ok()) << q.status();
    *s.slot = std::move(q).value();
  }
  f->dense = std::move(dense).value();
  f->artifact = dir + "/artifact";
  EXPECT_TRUE(SaveModel(*quant, f->artifact).ok());
  auto tok = LoadTokenizer(kStories + "/tok512.bin");
  EXPECT_TRUE(tok.ok()) << tok.status();
  f->tokenizer = std::move(tok).value();
  f->text = testing_util::ReadBytes(kShared + "/data/tinystories/valid.txt").substr(0, 3000);
  return f;
}

double Ppl(const Model& m, const StoriesFixture& f) {
  PerplexityOptions o;
  o.seq_len = 256;
  auto r = EvaluatePerplexity(m, *f.tokenizer, {f.text}, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->perplexity : NAN;
}

// Every quantized linear of the imported model equals the fake-quant RTN
// reference of the dense weight exactly; the perplexity is the artifact's.
TEST(QuantizedFormatRoundTrip, StoriesCompressedTensorsIsLossless) {
  if (!fs::exists(kStories + "/hf")) GTEST_SKIP() << kStories << " is absent (../shared)";
  RegisterMethodLinearLoaders();
  const std::string dir = FreshTestDir();
  auto f = MakeStories(dir);
  auto artifact = LoadModel(f->artifact);
  ASSERT_TRUE(artifact.ok()) << artifact.status();
  auto r = ExportCompressedTensors(*artifact, dir + "/ct");
  ASSERT_TRUE(r.ok()) << r.status();
  for (const QuantizedLayerReport& l : r->layers) {
    EXPECT_EQ(l.rel_error, 0.0) << l.module;
    EXPECT_THAT(l.how, HasSubstr("exact")) << l.module;
  }
  ASSERT_EQ(*QuantizedCheckpointFormat(dir + "/ct"), "compressed-tensors");
  auto back = LoadModel(dir + "/ct");
  ASSERT_TRUE(back.ok()) << back.status();
  auto dense_slots = f->dense.AllLinears();
  auto back_slots = back->AllLinears();
  ASSERT_EQ(dense_slots.size(), back_slots.size());
  for (size_t i = 0; i < back_slots.size(); ++i) {
    EXPECT_EQ((*back_slots[i].slot)->kind(), "packed_int_w4_asym_g32") << back_slots[i].name;
    const MatrixRM ref = FakeQuantRtnReference((*dense_slots[i].slot)->DenseWeight(), Args(4, false, 32));
    EXPECT_EQ(MaxAbsDiff((*back_slots[i].slot)->DenseWeight(), ref), 0.0) << back_slots[i].name;
  }
  const double p_src = Ppl(*artifact, *f), p_back = Ppl(*back, *f);
  EXPECT_EQ(p_src, p_back);  // same codes, scales and kernels: bit-identical
  std::cout << "[stories260K RTN w4 asym g32] compressed-tensors ppl source " << p_src << " imported " << p_back
            << "\n";
}

// GPTQ and AWQ: the attention layers fit (in 64, out 64/32); the MLP layers
// (172 wide) do not, are refused by default and written dense with
// unfit_as_dense. With F32 tensors the round trip keeps every value; the
// perplexity differs only by summation order (PackedIntLinear vs
// DenseLinear on the same fp32 values): relative tolerance 1e-5. With the
// formats' usual F16 scales / embeddings the rounding adds up to 2^-11
// relative per value: tolerance 1% of the perplexity.
TEST(QuantizedFormatRoundTrip, StoriesGptqAndAwq) {
  if (!fs::exists(kStories + "/hf")) GTEST_SKIP() << kStories << " is absent (../shared)";
  RegisterMethodLinearLoaders();
  const std::string dir = FreshTestDir();
  auto f = MakeStories(dir);
  auto artifact = LoadModel(f->artifact);
  ASSERT_TRUE(artifact.ok()) << artifact.status();
  const double p_src = Ppl(*artifact, *f);

  auto refused = ExportGptq(*artifact, dir + "/refused");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(),
              HasSubstr("model.layers.0.mlp.gate_proj (packed_int_w4_asym_g32): out_features 172 is not a multiple of 8"));
  EXPECT_FALSE(fs::exists(dir + "/refused"));
  auto awq_refused = ExportAwq(*artifact, dir + "/refused");
  ASSERT_FALSE(awq_refused.ok());
  EXPECT_THAT(awq_refused.status().message(), HasSubstr("out_features 172 is not a multiple of 8"));

  for (const char* fmt : {"gptq", "awq"}) {
    for (DType dt : {DType::kF32, DType::kF16}) {
      const std::string out = absl::StrCat(dir, "/", fmt, "_", DTypeName(dt));
      absl::StatusOr<QuantizedExportResult> r;
      if (std::string(fmt) == "gptq") {
        GptqExportOptions o;
        o.dense_dtype = o.scale_dtype = dt;
        o.unfit_as_dense = true;
        r = ExportGptq(*artifact, out, o);
      } else {
        AwqExportOptions o;
        o.dense_dtype = o.scale_dtype = dt;
        o.unfit_as_dense = true;
        r = ExportAwq(*artifact, out, o);
      }
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(*QuantizedCheckpointFormat(out), fmt);
      auto back = LoadModel(out);
      ASSERT_TRUE(back.ok()) << back.status();
      auto src_slots = artifact->AllLinears();
      auto back_slots = back->AllLinears();
      int packed = 0;
      for (size_t i = 0; i < back_slots.size(); ++i) {
        const bool mlp = absl::StrContains(back_slots[i].name, "mlp");
        const std::string dense_kind = dt == DType::kF32 ? "dense_f32" : "dense_f16";
        EXPECT_EQ((*back_slots[i].slot)->kind(), mlp ? dense_kind : "packed_int_w4_asym_g32")
            << fmt << " " << back_slots[i].name;
        packed += mlp ? 0 : 1;
        const double d = MaxAbsDiff((*back_slots[i].slot)->DenseWeight(), (*src_slots[i].slot)->DenseWeight());
        if (dt == DType::kF32) {
          EXPECT_EQ(d, 0.0) << fmt << " " << back_slots[i].name;
        }
      }
      EXPECT_EQ(packed, 4 * artifact->config.n_layers);
      const double p_back = Ppl(*back, *f);
      const double rel = std::abs(p_back - p_src) / p_src;
      EXPECT_LT(rel, dt == DType::kF32 ? 1e-5 : 1e-2) << fmt << " " << DTypeName(dt);
      std::cout << "[stories260K RTN w4 asym g32] " << fmt << " " << DTypeName(dt) << " ppl source " << p_src
                << " imported " << p_back << " (relative difference " << rel << ")\n";
    }
  }
}

// GPTQ with act-order groups: g_idx survives compressed-tensors (actorder
// "group", weight_g_idx) and GPTQ (desc_act, g_idx) exactly.
TEST(QuantizedFormatRoundTrip, ActOrderGroupIndex) {
  RegisterMethodLinearLoaders();
  const std::string dir = FreshTestDir();
  Model m = MakeRandomModel(TinyConfig(), 3);
  std::mt19937 rng(5);
  std::normal_distribution<double> nd;
  Eigen::MatrixXd x(256, 64);
  for (int i = 0; i < x.rows(); ++i) {
    for (int j = 0; j < x.cols(); ++j) x(i, j) = nd(rng) * (1.0 + (j % 7));
  }
  const Eigen::MatrixXd h = 2.0 * x.transpose() * x / x.rows();
  GptqOptions o;
  o.quant = Args(4, true, 16);
  o.actorder = ActOrder::kGroup;
  auto g = QuantizeGptq(m.blocks[0].q_proj->DenseWeight(), h, o);
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_FALSE(g->layer->g_idx().empty());
  m.blocks[0].q_proj = std::move(g->layer);
  const MatrixRM want = m.blocks[0].q_proj->DenseWeight();

  ASSERT_TRUE(ExportCompressedTensors(m, dir + "/ct").ok());
  auto st = ReadSafetensors(dir + "/ct/model.safetensors");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->tensors.at("model.layers.0.self_attn.q_proj.weight_g_idx").shape, (std::vector<int64_t>{64}));
  const auto qc = nlohmann::json::parse(testing_util::ReadBytes(dir + "/ct/config.json"))["quantization_config"];
  EXPECT_EQ(qc["config_groups"]["group_0"]["weights"]["actorder"], "group");

  GptqExportOptions go;
  go.scale_dtype = DType::kF32;
  ASSERT_TRUE(ExportGptq(m, dir + "/gptq", go).ok());
  const auto gc = nlohmann::json::parse(testing_util::ReadBytes(dir + "/gptq/quantize_config.json"));
  EXPECT_EQ(gc["desc_act"], true);
  EXPECT_EQ(gc["sym"], true);
  // AWQ has no g_idx: refused, nothing written.
  auto awq = ExportAwq(m, dir + "/awq");
  ASSERT_FALSE(awq.ok());
  EXPECT_THAT(awq.status().message(), HasSubstr("act-order g_idx"));
  EXPECT_FALSE(fs::exists(dir + "/awq"));

  for (const char* sub : {"/ct", "/gptq"}) {
    auto back = LoadModel(dir + sub);
    ASSERT_TRUE(back.ok()) << sub << ": " << back.status();
    EXPECT_EQ(back->blocks[0].q_proj->kind(), "packed_int_w4_sym_g16") << sub;
    EXPECT_EQ(MaxAbsDiff(back->blocks[0].q_proj->DenseWeight(), want), 0.0) << sub;
  }
}

// W8A8 layers are compressed-tensors' int-quantized scheme with per-token
// dynamic input activations; mixed with a pack-quantized layer the global
// format is mixed-precision. Both come back as the same kinds and logits.
TEST(QuantizedFormatRoundTrip, W8A8IsIntQuantized) {
  RegisterMethodLinearLoaders();
  const std::string dir = FreshTestDir();
  Model m = MakeRandomModel(TinyConfig(), 4);
  auto w8 = W8A8Linear::FromDense(m.blocks[0].o_proj->DenseWeight());
  ASSERT_TRUE(w8.ok());
  m.blocks[0].o_proj = std::move(w8).value();
  auto q4 = QuantizeRtn(m.blocks[0].up_proj->DenseWeight(), Args(4, true, 32));
  ASSERT_TRUE(q4.ok());
  m.blocks[0].up_proj = std::move(q4).value();
  ASSERT_TRUE(ExportCompressedTensors(m, dir + "/ct").ok());
  const auto qc = nlohmann::json::parse(testing_util::ReadBytes(dir + "/ct/config.json"))["quantization_config"];
  EXPECT_EQ(qc["format"], "mixed-precision");
  bool saw_int = false;
  for (const auto& [name, g] : qc["config_groups"].items()) {
    if (g["format"] != "int-quantized") continue;
    saw_int = true;
    EXPECT_EQ(g["weights"]["strategy"], "channel");
    EXPECT_EQ(g["input_activations"]["strategy"], "token");
    EXPECT_EQ(g["input_activations"]["dynamic"], true);
  }
  EXPECT_TRUE(saw_int);
  auto st = ReadSafetensors(dir + "/ct/model.safetensors");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->tensors.at("model.layers.0.self_attn.o_proj.weight").dtype, DType::kI8);
  EXPECT_EQ(st->tensors.at("model.layers.0.self_attn.o_proj.weight_scale").shape, (std::vector<int64_t>{64, 1}));
  auto back = LoadModel(dir + "/ct");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->blocks[0].o_proj->kind(), "w8a8_int8_channel_token");
  EXPECT_EQ(back->blocks[0].up_proj->kind(), "packed_int_w4_sym_g32");
  const std::vector<int> ids = {1, 5, 9, 2, 40, 7};
  EXPECT_EQ(MaxAbsDiff(Logits(m, ids), Logits(*back, ids)), 0.0);
}

// A sparse-bitmask checkpoint (numpy packbits, little bit order) written by
// hand decompresses to the dense weight it encodes.
TEST(QuantizedFormatRoundTrip, SparseBitmaskImport) {
  RegisterMethodLinearLoaders();
  const std::string dir = FreshTestDir();
  Model m = MakeRandomModel(TinyConfig(), 6);
  MatrixRM w = m.blocks[0].down_proj->DenseWeight();  // [64, 96]
  for (int64_t r = 0; r < w.rows(); ++r) {
    for (int64_t c = 0; c < w.cols(); ++c) {
      if ((r + c) % 3 != 0) w(r, c) = 0.0f;
    }
  }
  ASSERT_TRUE(SaveModel(m, dir + "/plain").ok());
  auto st = ReadSafetensors(dir + "/plain/model.safetensors");
  ASSERT_TRUE(st.ok());
  std::map<std::string, TensorView> t = st->tensors;
  const std::string p = "model.layers.0.mlp.down_proj.";
  t.erase(p + "weight");
  std::vector<float> values;
  std::string mask(static_cast<size_t>(w.rows() * 12), '\0');
  std::vector<int64_t> offsets;
  for (int64_t r = 0; r < w.rows(); ++r) {
    offsets.push_back(static_cast<int64_t>(values.size()));
    for (int64_t c = 0; c < w.cols(); ++c) {
      if (w(r, c) == 0.0f) continue;
      values.push_back(w(r, c));
      mask[r * 12 + c / 8] = static_cast<char>(mask[r * 12 + c / 8] | (1 << (c % 8)));
    }
  }
  const int64_t nnz = static_cast<int64_t>(values.size());
  t[p + "compressed"] = OwnedF32(values, {nnz});
  t[p + "bitmask"] = OwnedBytes(DType::kU8, mask, {w.rows(), 12});
  t[p + "row_offsets"] = OwnedI64(offsets, {w.rows()});
  t[p + "shape"] = OwnedI64({w.rows(), w.cols()}, {2});
  fs::create_directories(dir + "/sparse");
  ASSERT_TRUE(WriteSafetensorsMap(dir + "/sparse/model.safetensors", t, {{"format", "pt"}}).ok());
  auto config = nlohmann::json::parse(testing_util::ReadBytes(dir + "/plain/config.json"));
  config["quantization_config"] = {{"quant_method", "compressed-tensors"},
                                   {"format", "dense"},
                                   {"config_groups", nlohmann::json::object()},
                                   {"sparsity_config",
                                    {{"format", "sparse-bitmask"}, {"global_sparsity", 0.6}, {"sparsity_structure", "unstructured"}}}};
  testing_util::WriteBytes(dir + "/sparse/config.json", config.dump());
  auto back = LoadModel(dir + "/sparse");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(MaxAbsDiff(back->blocks[0].down_proj->DenseWeight(), w), 0.0);
  // A bitmask promising more values than stored is refused, naming the tensor.
  t[p + "compressed"] = OwnedF32(std::vector<float>(values.begin(), values.end() - 1), {nnz - 1});
  ASSERT_TRUE(WriteSafetensorsMap(dir + "/sparse/model.safetensors", t, {{"format", "pt"}}).ok());
  auto bad = LoadModel(dir + "/sparse");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("down_proj.compressed"));
}

TEST(QuantizedFormatRoundTrip, RefusesWhatTheTargetCannotRun) {
  RegisterMethodLinearLoaders();
  const std::string dir = FreshTestDir();
  Model m = MakeRandomModel(TinyConfig(), 8);
  // No quantized layer at all.
  EXPECT_THAT(ExportGptq(m, dir + "/a").status().message(), HasSubstr("no packed-int layer"));
  EXPECT_THAT(ExportCompressedTensors(m, dir + "/a").status().message(), HasSubstr("no quantized layer"));
  // 3-bit: not in vLLM's pack-quantized, not packable as GPTQ / AWQ.
  auto q3 = QuantizeRtn(m.blocks[0].q_proj->DenseWeight(), Args(3, true, 32));
  ASSERT_TRUE(q3.ok());
  m.blocks[0].q_proj = std::move(q3).value();
  EXPECT_THAT(ExportCompressedTensors(m, dir + "/a").status().message(), HasSubstr("3-bit"));
  EXPECT_THAT(ExportGptq(m, dir + "/a").status().message(), HasSubstr("3-bit"));
  EXPECT_THAT(ExportAwq(m, dir + "/a").status().message(), HasSubstr("4-bit only"));
  // Per-channel scales: AWQ stores one group size.
  auto ch = QuantizeRtn(m.blocks[0].q_proj->DenseWeight(), Args(4, true, 0));
  ASSERT_TRUE(ch.ok());
  m.blocks[0].q_proj = std::move(ch).value();
  EXPECT_THAT(ExportAwq(m, dir + "/a").status().message(), HasSubstr("per-channel"));
  // Two group sizes cannot share one quantize_config.json.
  auto g16 = QuantizeRtn(m.blocks[0].k_proj->DenseWeight(), Args(4, true, 16));
  ASSERT_TRUE(g16.ok());
  m.blocks[0].k_proj = std::move(g16).value();
  EXPECT_THAT(ExportGptq(m, dir + "/a").status().message(), HasSubstr("one quantize_config.json"));
  EXPECT_FALSE(fs::exists(dir + "/a"));
  // Unsupported quantization methods are named on load.
  ASSERT_TRUE(SaveModel(m, dir + "/b").ok());
  auto config = nlohmann::json::parse(testing_util::ReadBytes(dir + "/b/config.json"));
  config["quantization_config"] = {{"quant_method", "bitsandbytes"}};
  testing_util::WriteBytes(dir + "/b/config.json", config.dump());
  auto bad = LoadModel(dir + "/b");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("quant_method \"bitsandbytes\" is not supported"));
}

}  // namespace
}  // namespace squeeze
