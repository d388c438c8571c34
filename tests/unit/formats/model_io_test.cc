#include "workers/engine/formats/model_io.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_format.h"
#include "tests/unit/formats/test_util.h"
#include "workers/engine/core/half.h"
#include "workers/engine/formats/hf_checkpoint.h"
#include "workers/engine/formats/safetensors.h"
#include "workers/engine/model/dense_linear.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::FreshTestDir;
using testing_util::RandomFloats;

ModelConfig TinyConfig() {
  ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 40;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 32;
  c.max_seq_len = 64;
  c.norm_eps = 1e-5f;
  c.tie_word_embeddings = false;
  return c;
}

MatrixRM RandomMatrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::vector<float> v = RandomFloats(static_cast<size_t>(rows * cols), seed, 0.1f);
  return ConstMapMatrixRM(v.data(), rows, cols);
}

std::unique_ptr<LinearLayer> RandomLinear(int64_t out, int64_t in, uint32_t seed, bool bias = false) {
  return DenseLinear::FromMatrix(
      RandomMatrix(out, in, seed),
      bias ? RandomFloats(static_cast<size_t>(out), seed + 1000) : std::vector<float>{});
}

// A random model; `q_heads`, `kv_heads`, `hidden` override per-layer widths
// of the last layer (a structurally pruned model) when > 0.
Model RandomModel(const ModelConfig& c, uint32_t seed, int q_heads = 0, int kv_heads = 0, int hidden = 0) {
  Model m;
  m.config = c;
  m.embedding = RandomMatrix(c.vocab_size, c.dim, seed++);
  for (int l = 0; l < c.n_layers; ++l) {
    const bool pruned = l == c.n_layers - 1;
    const int64_t q = (pruned && q_heads ? q_heads : c.n_heads) * c.head_dim;
    const int64_t kv = (pruned && kv_heads ? kv_heads : c.n_kv_heads) * c.head_dim;
    const int64_t h = pruned && hidden ? hidden : c.hidden_dim;
    TransformerBlock b;
    b.attn_norm = RandomFloats(c.dim, seed++);
    b.ffn_norm = RandomFloats(c.dim, seed++);
    b.q_proj = RandomLinear(q, c.dim, seed++, c.attention_bias);
    b.k_proj = RandomLinear(kv, c.dim, seed++, c.attention_bias);
    b.v_proj = RandomLinear(kv, c.dim, seed++, c.attention_bias);
    b.o_proj = RandomLinear(c.dim, q, seed++);
    b.gate_proj = RandomLinear(h, c.dim, seed++);
    b.up_proj = RandomLinear(h, c.dim, seed++);
    b.down_proj = RandomLinear(c.dim, h, seed++);
    m.blocks.push_back(std::move(b));
  }
  m.final_norm = RandomFloats(c.dim, seed++);
  if (!c.tie_word_embeddings) m.lm_head = RandomLinear(c.vocab_size, c.dim, seed++);
  return m;
}

float Round(float x, DType d) {
  if (d == DType::kBF16) return Bf16ToFloat(FloatToBf16(x));
  if (d == DType::kF16) return F16ToFloat(FloatToF16(x));
  return x;
}

// Every value of `got` equals `want` rounded to `dtype` (exact for F32).
void ExpectModelsEqual(Model& want, Model& got, DType dtype = DType::kF32) {
  ASSERT_EQ(got.blocks.size(), want.blocks.size());
  ASSERT_EQ(got.embedding.rows(), want.embedding.rows());
  ASSERT_EQ(got.embedding.cols(), want.embedding.cols());
  for (int64_t i = 0; i < want.embedding.size(); ++i) {
    ASSERT_EQ(got.embedding.data()[i], Round(want.embedding.data()[i], dtype)) << "embedding " << i;
  }
  auto vec_eq = [&](const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(b[i], Round(a[i], dtype)) << what << " " << i;
  };
  for (size_t l = 0; l < want.blocks.size(); ++l) {
    vec_eq(want.blocks[l].attn_norm, got.blocks[l].attn_norm, "attn_norm");
    vec_eq(want.blocks[l].ffn_norm, got.blocks[l].ffn_norm, "ffn_norm");
  }
  vec_eq(want.final_norm, got.final_norm, "final_norm");
  auto wl = want.AllLinears(), gl = got.AllLinears();
  ASSERT_EQ(wl.size(), gl.size());
  std::string kind = "dense_" + std::string(DTypeName(dtype));
  for (char& ch : kind) ch = static_cast<char>(std::tolower(ch));
  for (size_t i = 0; i < wl.size(); ++i) {
    SCOPED_TRACE(wl[i].name);
    ASSERT_EQ(gl[i].name, wl[i].name);
    const LinearLayer& a = **wl[i].slot;
    const LinearLayer& b = **gl[i].slot;
    EXPECT_EQ(b.kind(), kind);
    const MatrixRM wa = a.DenseWeight(), wb = b.DenseWeight();
    ASSERT_EQ(wb.rows(), wa.rows());
    ASSERT_EQ(wb.cols(), wa.cols());
    for (int64_t k = 0; k < wa.size(); ++k) ASSERT_EQ(wb.data()[k], Round(wa.data()[k], dtype)) << k;
    std::vector<float> ba(a.bias().begin(), a.bias().end()), bb(b.bias().begin(), b.bias().end());
    vec_eq(ba, bb, "bias");
  }
}

TEST(ModelIoTest, SaveLoadF32IsExact) {
  const std::string base = FreshTestDir();
  const std::string dir = base + "/model";
  Model m = RandomModel(TinyConfig(), 1);
  ASSERT_TRUE(SaveModel(m, dir).ok());
  EXPECT_TRUE(fs::exists(dir + "/config.json"));
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
  auto loaded = LoadModel(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->config.dim, 16);
  EXPECT_EQ(loaded->config.n_kv_heads, 2);
  EXPECT_FALSE(loaded->config.tie_word_embeddings);
  ExpectModelsEqual(m, *loaded);

  // Metadata: HF's {"format": "pt"} plus squeeze's own record.
  auto st = ReadSafetensors(dir + "/model.safetensors");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->metadata.at("format"), "pt");
  auto squeeze_meta = nlohmann::json::parse(st->metadata.at("squeeze"));
  EXPECT_EQ(squeeze_meta["linear_kinds"]["model.layers.1.mlp.down_proj"], "dense_f32");
  EXPECT_EQ(squeeze_meta["linear_kinds"]["lm_head"], "dense_f32");
  EXPECT_TRUE(st->tensors.count("lm_head.weight"));
  EXPECT_TRUE(st->tensors.count("model.layers.0.input_layernorm.weight"));
  EXPECT_TRUE(st->tensors.count("model.layers.0.post_attention_layernorm.weight"));

  // Saving again gives identical bytes (deterministic writer).
  const std::string dir2 = base + "/again";
  ASSERT_TRUE(SaveModel(*loaded, dir2).ok());
  EXPECT_EQ(testing_util::ReadBytes(dir + "/model.safetensors"),
            testing_util::ReadBytes(dir2 + "/model.safetensors"));
  EXPECT_EQ(testing_util::ReadBytes(dir + "/config.json"), testing_util::ReadBytes(dir2 + "/config.json"));
}

TEST(ModelIoTest, SaveLoadHalfTypesRoundOnce) {
  Model m = RandomModel(TinyConfig(), 2);
  const std::string base = FreshTestDir();
  for (DType d : {DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(std::string(DTypeName(d)));
    const std::string dir = absl::StrCat(base, "/", DTypeName(d));
    SaveOptions opts;
    opts.dtype = d;
    ASSERT_TRUE(SaveModel(m, dir, opts).ok());
    auto loaded = LoadModel(dir);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    // Linear weights stay in the stored dtype (kind dense_bf16 / dense_f16).
    ExpectModelsEqual(m, *loaded, d);
    auto st = ReadSafetensors(dir + "/model.safetensors");
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->tensors.at("model.norm.weight").dtype, d);
    EXPECT_THAT(testing_util::ReadBytes(dir + "/config.json"),
                HasSubstr(d == DType::kBF16 ? "\"bfloat16\"" : "\"float16\""));

    // Re-saving a half model as F32 is exact (widening loses nothing).
    const std::string dir32 = dir + "_f32";
    ASSERT_TRUE(SaveModel(*loaded, dir32).ok());
    auto widened = LoadModel(dir32);
    ASSERT_TRUE(widened.ok());
    ExpectModelsEqual(*loaded, *widened);
  }
}

TEST(ModelIoTest, ShardedSaveLoad) {
  const std::string dir = FreshTestDir() + "/sharded";
  Model m = RandomModel(TinyConfig(), 3);
  SaveOptions opts;
  opts.max_shard_bytes = 3000;  // the embedding / lm_head (2 KiB each) fit; many shards
  ASSERT_TRUE(SaveModel(m, dir, opts).ok());
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
  ASSERT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
  auto index = nlohmann::json::parse(testing_util::ReadBytes(dir + "/model.safetensors.index.json"));
  std::set<std::string> shard_files;
  int64_t total = 0;
  for (auto& [name, file] : index["weight_map"].items()) shard_files.insert(file.get<std::string>());
  ASSERT_GT(shard_files.size(), 2u);
  const int n = static_cast<int>(shard_files.size());
  for (const std::string& f : shard_files) {
    EXPECT_THAT(f, HasSubstr(absl::StrFormat("-of-%05d.safetensors", n)));
    auto st = ReadSafetensors(dir + "/" + f);
    ASSERT_TRUE(st.ok()) << st.status();
    int64_t bytes = 0;
    for (auto& [name, v] : st->tensors) bytes += static_cast<int64_t>(v.nbytes);
    EXPECT_LE(bytes, 3000) << f;
    total += bytes;
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), total);
  EXPECT_EQ(index["weight_map"].size(), 2u + 2 * (2 + 7) + 1);  // embed, lm_head, norms, linears

  auto loaded = LoadModel(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectModelsEqual(m, *loaded);

  // Saving unsharded into the same directory removes the stale shards + index.
  ASSERT_TRUE(SaveModel(m, dir).ok());
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(name == "config.json" || name == "model.safetensors") << name;
  }
  auto again = LoadModel(dir);
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectModelsEqual(m, *again);
}

TEST(ModelIoTest, TensorsLargerThanAShardGetTheirOwn) {
  const std::string dir = FreshTestDir() + "/one_each";
  ModelConfig c = TinyConfig();
  c.n_layers = 1;
  Model m = RandomModel(c, 10);
  SaveOptions opts;
  opts.max_shard_bytes = 1;
  ASSERT_TRUE(SaveModel(m, dir, opts).ok());
  auto index = nlohmann::json::parse(testing_util::ReadBytes(dir + "/model.safetensors.index.json"));
  std::set<std::string> files;
  for (auto& [name, file] : index["weight_map"].items()) files.insert(file.get<std::string>());
  EXPECT_EQ(files.size(), index["weight_map"].size());  // one tensor per shard
  EXPECT_EQ(files.size(), 2u + 2 + 7 + 1);
  EXPECT_TRUE(files.count("model-00001-of-00012.safetensors"));
  auto loaded = LoadModel(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectModelsEqual(m, *loaded);
}

TEST(ModelIoTest, Qwen2BiasesAndTiedEmbeddings) {
  ModelConfig c = TinyConfig();
  c.architecture = "Qwen2ForCausalLM";
  c.model_type = "qwen2";
  c.attention_bias = true;
  c.tie_word_embeddings = true;
  c.rope_theta = 1e6f;
  const std::string dir = FreshTestDir() + "/qwen";
  Model m = RandomModel(c, 4);
  ASSERT_TRUE(SaveModel(m, dir).ok());
  auto st = ReadSafetensors(dir + "/model.safetensors");
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->tensors.count("lm_head.weight"));
  EXPECT_EQ(st->tensors.at("model.layers.1.self_attn.k_proj.bias").shape, (std::vector<int64_t>{8}));
  auto loaded = LoadModel(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->config.model_type, "qwen2");
  EXPECT_TRUE(loaded->config.attention_bias);
  EXPECT_TRUE(loaded->config.tie_word_embeddings);
  EXPECT_EQ(loaded->config.rope_theta, 1e6f);
  EXPECT_EQ(loaded->lm_head, nullptr);
  EXPECT_EQ(loaded->blocks[0].q_proj->bias().size(), 16u);
  ExpectModelsEqual(m, *loaded);
}

TEST(ModelIoTest, PrunedLayerWidthsRoundTrip) {
  const std::string dir = FreshTestDir() + "/pruned";
  // Last layer keeps 2 of 4 query heads, 1 of 2 kv heads and 24 of 40 channels.
  Model m = RandomModel(TinyConfig(), 5, 2, 1, 24);
  ASSERT_TRUE(SaveModel(m, dir).ok());
  auto loaded = LoadModel(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->blocks[1].q_proj->out_features(), 8);
  EXPECT_EQ(loaded->blocks[1].o_proj->in_features(), 8);
  EXPECT_EQ(loaded->blocks[1].down_proj->in_features(), 24);
  ExpectModelsEqual(m, *loaded);
}

// Rewrites dir/model.safetensors after `edit` changes its tensor map.
void EditCheckpoint(const std::string& dir,
                    const std::function<void(std::map<std::string, TensorView>&)>& edit) {
  auto st = ReadSafetensors(dir + "/model.safetensors");
  ASSERT_TRUE(st.ok());
  std::map<std::string, TensorView> t = st->tensors;
  edit(t);
  ASSERT_TRUE(WriteSafetensorsMap(dir + "/model.safetensors", t).ok());
}

TEST(ModelIoTest, BadCheckpointsNameFileAndTensor) {
  const std::string base = FreshTestDir();
  Model m = RandomModel(TinyConfig(), 6);
  const std::string dir = base + "/m";
  ASSERT_TRUE(SaveModel(m, dir).ok());
  const std::string file = dir + "/model.safetensors";

  EditCheckpoint(dir, [](auto& t) { t.erase("model.layers.1.mlp.up_proj.weight"); });
  auto s = LoadModel(dir).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("model.safetensors"),
                                 HasSubstr("tensor model.layers.1.mlp.up_proj.weight: missing")));

  ASSERT_TRUE(SaveModel(m, dir).ok());
  EditCheckpoint(dir, [](auto& t) {
    TensorView& v = t["model.layers.1.mlp.up_proj.weight"];
    v.shape = {20, 32};  // same bytes, wrong shape
  });
  s = LoadModel(dir).status();
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr(file), HasSubstr("tensor model.layers.1.mlp.up_proj.weight: shape [20, 32], "
                                               "expected [40, 16]")));

  ASSERT_TRUE(SaveModel(m, dir).ok());
  EditCheckpoint(dir, [](auto& t) { t["model.layers.0.self_attn.q_proj.weight"].shape = {8, 32}; });
  EXPECT_THAT(
      LoadModel(dir).status().message(),
      AllOf(HasSubstr("tensor model.layers.0.self_attn.q_proj.weight: shape [8, 32], expected [16, 16]")));

  ASSERT_TRUE(SaveModel(m, dir).ok());
  EditCheckpoint(dir, [](auto& t) { t["model.layers.0.mlp.extra.weight"] = OwnedF32({1}, {1}); });
  EXPECT_THAT(LoadModel(dir).status().message(),
              AllOf(HasSubstr("tensor model.layers.0.mlp.extra.weight: unexpected tensor")));

  ASSERT_TRUE(SaveModel(m, dir).ok());
  EditCheckpoint(dir, [](auto& t) {
    TensorView& v = t["model.norm.weight"];
    v.dtype = DType::kI32;
  });
  EXPECT_THAT(LoadModel(dir).status().message(),
              AllOf(HasSubstr("tensor model.norm.weight: dtype I32, expected F32, F16 or BF16")));

  // Qwen2 without its q/k/v biases.
  ModelConfig qc = TinyConfig();
  qc.architecture = "Qwen2ForCausalLM";
  qc.model_type = "qwen2";
  Model no_bias = RandomModel(qc, 7);  // attention_bias false: no biases saved
  const std::string qdir = base + "/q";
  ASSERT_TRUE(SaveModel(no_bias, qdir).ok());
  EXPECT_THAT(LoadModel(qdir).status().message(),
              HasSubstr("tensor model.layers.0.self_attn.q_proj.bias: missing"));

  // Truncated shard.
  ASSERT_TRUE(SaveModel(m, dir).ok());
  std::string bytes = testing_util::ReadBytes(file);
  testing_util::WriteBytes(file, bytes.substr(0, bytes.size() - 100));
  EXPECT_THAT(LoadModel(dir).status().message(), AllOf(HasSubstr(file), HasSubstr("file truncated?")));

  // No weights at all / no such path.
  fs::remove(file);
  EXPECT_EQ(LoadModel(dir).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadModel(base + "/nothing_here").status().code(), absl::StatusCode::kNotFound);
}

TEST(ModelIoTest, ShardIndexErrors) {
  const std::string dir = FreshTestDir() + "/s";
  Model m = RandomModel(TinyConfig(), 8);
  SaveOptions opts;
  opts.max_shard_bytes = 3000;
  ASSERT_TRUE(SaveModel(m, dir, opts).ok());
  const std::string index_path = dir + "/model.safetensors.index.json";
  auto index = nlohmann::json::parse(testing_util::ReadBytes(index_path));
  const std::string real = index["weight_map"]["model.norm.weight"];
  std::string other;
  for (auto& [name, file] : index["weight_map"].items()) {
    if (file != real) other = file;
  }
  index["weight_map"]["model.norm.weight"] = other;  // points at the wrong shard
  testing_util::WriteBytes(index_path, index.dump());
  EXPECT_THAT(LoadModel(dir).status().message(),
              AllOf(HasSubstr(other), HasSubstr("tensor model.norm.weight: listed in"),
                    HasSubstr("missing from this shard")));
  index["weight_map"]["model.norm.weight"] = "../evil.safetensors";
  testing_util::WriteBytes(index_path, index.dump());
  EXPECT_THAT(LoadModel(dir).status().message(), HasSubstr("invalid shard file name"));
}

TEST(ModelIoTest, SaveRejectsBadOptions) {
  Model m = RandomModel(TinyConfig(), 9);
  SaveOptions opts;
  opts.dtype = DType::kI8;
  const std::string base = FreshTestDir();
  EXPECT_THAT(SaveModel(m, base + "/x", opts).message(), HasSubstr("dtype I8"));
  m.final_norm.pop_back();
  EXPECT_THAT(SaveModel(m, base + "/y").message(), HasSubstr("does not match its config"));
}

}  // namespace
}  // namespace squeeze
