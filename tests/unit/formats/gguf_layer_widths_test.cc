// GGUF export / import of structurally pruned models (blocks of different
// widths): llama.cpp's "deci" architecture with int32 per-block arrays for
// head_count, head_count_kv and feed_forward_length, read back into
// ModelConfig::layer_*; uniformly pruned models stay "llama" with scalars;
// malformed arrays are refused naming the key. (tests llama.cpp itself runs
// such a file: gguf_llamacpp_test.cc.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "tests/common/synthetic_inputs.h"
#include "tests/unit/formats/test_util.h"
#include "workers/engine/formats/gguf.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/methods/prune/structured.h"

namespace squeeze {
namespace {

using testing::HasSubstr;

ModelConfig Config() {
  ModelConfig c;
  c.dim = 32, c.hidden_dim = 48, c.n_layers = 3, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 8;
  c.vocab_size = 259, c.max_seq_len = 32;
  c.tie_word_embeddings = false;
  return c;
}

MatrixRM Logits(const Model& m, const std::vector<int>& ids) {
  KVCache cache(m, static_cast<int>(ids.size()));
  MatrixRM logits;
  EXPECT_TRUE(Forward(m, ids, 0, cache, logits).ok());
  return logits;
}

GgufValue* FindMutable(GgufFile& f, const std::string& key) {
  for (GgufKV& kv : f.metadata) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

struct Exported {
  std::string path;
  Model model;
};

// Layer 0 loses one of its 2 head groups, layer 1 16 of its 48 channels,
// layer 2 is untouched.
Exported ExportPruned(const std::string& dir) {
  Model m = MakeRandomModel(Config(), 31);
  EXPECT_TRUE(RemoveHeadGroups(m.blocks[0], 8, {1}).ok());
  std::vector<int> channels;
  for (int i = 0; i < 16; ++i) channels.push_back(3 * i);
  EXPECT_TRUE(RemoveChannels(m.blocks[1], channels).ok());
  const std::string tok = dir + "/tokenizer.bin";
  testing_util::WriteBytes(tok, test_inputs::ByteTokenizerBin());
  const std::string path = dir + "/pruned.gguf";
  auto r = ExportGguf(m, tok, path, {GgmlType::kF32, false, "pruned"});
  EXPECT_TRUE(r.ok()) << r.status();
  return {path, std::move(m)};
}

TEST(GgufLayerWidths, PrunedModelIsDeciWithPerBlockArraysAndReadsBack) {
  const std::string dir = testing_util::FreshTestDir();
  Exported e = ExportPruned(dir);
  auto f = ReadGguf(e.path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f->GetString("general.architecture"), "deci");
  EXPECT_EQ(f->Find("llama.attention.head_count"), nullptr);
  const struct {
    const char* key;
    std::vector<int64_t> want;
  } arrays[] = {{"deci.attention.head_count", {2, 4, 4}},
                {"deci.attention.head_count_kv", {1, 2, 2}},
                {"deci.feed_forward_length", {48, 32, 48}}};
  for (const auto& a : arrays) {
    const GgufValue* v = f->Find(a.key);
    ASSERT_NE(v, nullptr) << a.key;
    ASSERT_TRUE(v->is_array()) << a.key;
    EXPECT_EQ(v->elem_type, GgufType::kInt32) << a.key;  // what gguf-py's add_array writes for ints
    EXPECT_EQ(v->ints, a.want) << a.key;
  }
  EXPECT_EQ(*f->GetInt("deci.block_count"), 3);
  EXPECT_EQ(*f->GetInt("deci.attention.key_length"), 8);
  // blk.0's q rows are 2 heads of 8.
  EXPECT_EQ(f->FindTensor("blk.0.attn_q.weight")->shape(), (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(f->FindTensor("blk.1.ffn_gate.weight")->shape(), (std::vector<int64_t>{32, 32}));

  auto back = LoadGgufModel(e.path);
  ASSERT_TRUE(back.ok()) << back.status();
  const ModelConfig& c = back->model.config;
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.hidden_dim, 48);
  EXPECT_EQ(c.layer_n_heads, (std::vector<int>{2, 4, 4}));
  EXPECT_EQ(c.layer_n_kv_heads, (std::vector<int>{1, 2, 2}));
  EXPECT_EQ(c.layer_hidden_dim, (std::vector<int>{48, 32, 48}));
  // F32 weights and the q/k permutation round trip exactly.
  const std::vector<int> ids = {1, 70, 101, 33, 200, 9, 45};
  EXPECT_EQ((Logits(e.model, ids) - Logits(back->model, ids)).cwiseAbs().maxCoeff(), 0.0f);
}

TEST(GgufLayerWidths, UniformlyPrunedModelStaysLlama) {
  const std::string dir = testing_util::FreshTestDir();
  Model m = MakeRandomModel(Config(), 32);
  for (TransformerBlock& b : m.blocks) {
    ASSERT_TRUE(RemoveHeadGroups(b, 8, {0}).ok());
    ASSERT_TRUE(RemoveChannels(b, {0, 1, 2, 3}).ok());
  }
  const std::string tok = dir + "/tokenizer.bin";
  testing_util::WriteBytes(tok, test_inputs::ByteTokenizerBin());
  ASSERT_TRUE(ExportGguf(m, tok, dir + "/u.gguf", {GgmlType::kF32, false, "u"}).ok());
  auto f = ReadGguf(dir + "/u.gguf");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->GetString("general.architecture"), "llama");
  EXPECT_EQ(*f->GetInt("llama.attention.head_count"), 2);
  EXPECT_EQ(*f->GetInt("llama.attention.head_count_kv"), 1);
  EXPECT_EQ(*f->GetInt("llama.feed_forward_length"), 44);
  auto back = LoadGgufModel(dir + "/u.gguf");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->model.config.layer_n_heads.empty());
  const std::vector<int> ids = {1, 5, 250, 17};
  EXPECT_EQ((Logits(m, ids) - Logits(back->model, ids)).cwiseAbs().maxCoeff(), 0.0f);
}

TEST(GgufLayerWidths, MalformedArraysAreRefused) {
  const std::string dir = testing_util::FreshTestDir();
  Exported e = ExportPruned(dir);
  auto f = ReadGguf(e.path);
  ASSERT_TRUE(f.ok());
  GgufValue* heads = FindMutable(*f, "deci.attention.head_count");
  ASSERT_NE(heads, nullptr);
  const GgufValue good = *heads;

  *heads = GgufValue::IntArray(GgufType::kInt32, {2, 4});
  EXPECT_THAT(GgufToCheckpoint(*f).status().message(),
              HasSubstr("metadata deci.attention.head_count: 2 entries, expected block_count = 3"));
  *heads = GgufValue::IntArray(GgufType::kInt32, {2, 0, 4});
  auto zero = GgufToCheckpoint(*f);
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(zero.status().message(), HasSubstr("deci.attention.head_count[1] = 0 (a block without attention"));
  *heads = GgufValue::IntArray(GgufType::kInt32, {2, -4, 4});
  EXPECT_THAT(GgufToCheckpoint(*f).status().message(), HasSubstr("deci.attention.head_count[1] = -4 is out of range"));
  *heads = GgufValue::F32Array({2, 4, 4});
  EXPECT_THAT(GgufToCheckpoint(*f).status().message(),
              HasSubstr("deci.attention.head_count: an array of float32, expected int32 or uint32"));
  // Widths that do not match the tensors are caught by BuildModel.
  *heads = GgufValue::IntArray(GgufType::kUint32, {4, 4, 4});
  auto ck = GgufToCheckpoint(*f);
  ASSERT_TRUE(ck.ok()) << ck.status();
  EXPECT_THAT(BuildModel(std::move(ck).value()).status().message(), HasSubstr("q_proj"));
  *heads = good;
  EXPECT_TRUE(GgufToCheckpoint(*f).ok());
}

}  // namespace
}  // namespace squeeze
