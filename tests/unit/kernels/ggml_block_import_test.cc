// Lossless GGUF import without dequantizing first (methods/quant/
// ggml_block_import.h, GgufImportOptions::keep_ggml_blocks in
// formats/gguf_model.h): on real stories260K exports in Q4_0, Q8_0 and a
// file mixing Q4_0 / Q8_0 / Q4_1 / F16 / F32 tensors, LoadGgufModelWithBlocks
// gives the same layers (kind, stored bytes) and bit-identical logits as the
// reference path (dequantize everything, then replace layers); the block
// tensors are never turned into fp32 (the checkpoint holds no ".weight" for
// them and unpermuted ones point into the file's mapping); damaged files
// (truncated block data, wrong shapes, rows that are not whole heads,
// non-finite scales) are refused naming the tensor and the reason.
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "tests/common/temp_dirs.h"
#include "workers/engine/formats/gguf.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/methods/quant/ggml_block_import.h"
#include "workers/methods/quant/ggml_block_linear.h"
#include "workers/methods/stored_linear.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kStories = std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K";
const std::vector<int> kIds = {1, 403, 407, 261, 378, 11, 300, 270, 32, 5, 296, 67, 400, 261, 262, 498};

MatrixRM Logits(const Model& m) {
  KVCache cache(m, static_cast<int>(kIds.size()));
  MatrixRM logits;
  EXPECT_TRUE(Forward(m, kIds, 0, cache, logits).ok());
  return logits;
}

bool SameView(const TensorView& a, const TensorView& b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.nbytes == b.nbytes &&
         (a.nbytes == 0 || std::memcmp(a.data, b.data, a.nbytes) == 0);
}

bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Every layer of `got` has the kind and stored bytes of `want`; embedding,
// norms bit-identical. Returns how many linears are ggml block layers.
int ExpectSameModel(Model& want, Model& got) {
  EXPECT_EQ(want.config.n_layers, got.config.n_layers);
  EXPECT_EQ(want.embedding.rows(), got.embedding.rows());
  EXPECT_EQ(std::memcmp(want.embedding.data(), got.embedding.data(), sizeof(float) * want.embedding.size()), 0);
  EXPECT_TRUE(SameFloats(want.final_norm, got.final_norm));
  for (size_t l = 0; l < want.blocks.size(); ++l) {
    EXPECT_TRUE(SameFloats(want.blocks[l].attn_norm, got.blocks[l].attn_norm)) << l;
    EXPECT_TRUE(SameFloats(want.blocks[l].ffn_norm, got.blocks[l].ffn_norm)) << l;
  }
  std::vector<LinearSlot> a = want.AllLinears(), b = got.AllLinears();
  EXPECT_EQ(a.size(), b.size());
  int blocks = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const LinearLayer& la = **a[i].slot;
    const LinearLayer& lb = **b[i].slot;
    EXPECT_EQ(la.kind(), lb.kind()) << a[i].name;
    blocks += absl::StartsWith(lb.kind(), kGgmlBlockKindPrefix);
    const auto sa = la.StoredTensors(), sb = lb.StoredTensors();
    EXPECT_EQ(sa.size(), sb.size()) << a[i].name;
    for (size_t k = 0; k < sa.size() && k < sb.size(); ++k) {
      EXPECT_EQ(sa[k].first, sb[k].first) << a[i].name;
      EXPECT_TRUE(SameView(sa[k].second, sb[k].second)) << a[i].name << "." << sa[k].first;
    }
  }
  return blocks;
}

// A GGUF file rebuilt from parsed ones: metadata of `base`, each tensor
// taken from the file `pick` names for it (nullptr = base), then `edit`.
using TensorEdit = std::function<void(std::vector<GgufTensorData>&)>;
absl::Status Rebuild(const GgufFile& base, const std::function<const GgufFile*(const std::string&)>& pick,
                     const TensorEdit& edit, const std::string& out) {
  std::vector<GgufTensorData> tensors;
  for (const GgufTensorInfo& t : base.tensors) {
    const GgufFile* from = pick ? pick(t.name) : nullptr;
    const GgufTensorInfo* src = from != nullptr ? from->FindTensor(t.name) : &t;
    if (src == nullptr) return absl::NotFoundError(t.name);
    tensors.push_back({src->name, src->ne, src->type,
                       std::string(reinterpret_cast<const char*>(src->data), src->nbytes)});
  }
  if (edit) edit(tensors);
  return WriteGguf(out, base.metadata, tensors);
}

GgufTensorData* Tensor(std::vector<GgufTensorData>& ts, const std::string& name) {
  for (GgufTensorData& t : ts) {
    if (t.name == name) return &t;
  }
  ADD_FAILURE() << "no tensor " << name;
  return &ts.front();
}

class GgmlBlockImport : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kStories + "/stories260K.bin")) GTEST_SKIP() << kStories << " is absent (../shared)";
    RegisterMethodLinearLoaders();
    auto src = LoadModel(kStories + "/stories260K.bin");
    ASSERT_TRUE(src.ok()) << src.status();
    n_layers_ = src->config.n_layers;
    ASSERT_GE(n_layers_, 5);  // the mixed file below uses blocks 0..4
    dir_ = test_inputs::EmptyPerTestDir("ggml_import_");
    for (GgmlType type : {GgmlType::kQ4_0, GgmlType::kQ8_0, GgmlType::kQ4_1, GgmlType::kF32}) {
      const std::string path = Path(std::string(GgmlTypeName(type)) + ".gguf");
      auto r = ExportGguf(*src, kStories + "/tok512.bin", path, {type, true, "stories260K"});
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Both loaders on `path`: equal layers and bit-identical logits; returns
  // the number of block layers.
  int ExpectBothPathsEqual(const std::string& path) {
    auto ref = LoadGgufModelWithBlocksReference(path);
    EXPECT_TRUE(ref.ok()) << ref.status();
    auto direct = LoadGgufModelWithBlocks(path);
    EXPECT_TRUE(direct.ok()) << direct.status();
    if (!ref.ok() || !direct.ok()) return -1;
    const int blocks = ExpectSameModel(ref->model, direct->model);
    const MatrixRM lr = Logits(ref->model), ld = Logits(direct->model);
    EXPECT_EQ(lr.rows(), ld.rows());
    EXPECT_EQ(lr.cols(), ld.cols());
    if (lr.size() == ld.size()) {
      EXPECT_EQ(std::memcmp(lr.data(), ld.data(), sizeof(float) * lr.size()), 0);
    }
    return blocks;
  }

  fs::path dir_;
  int n_layers_ = 0;
};

TEST_F(GgmlBlockImport, Q4_0AndQ8_0LoadDirectlyWithTheReferenceLayersAndLogits) {
  for (const char* t : {"Q4_0", "Q8_0"}) {
    SCOPED_TRACE(t);
    // dim 64: q/k/v/o/gate/up (in = 64) are blocks; down_proj (in = 172) was
    // written as F16 by the exporter's fallback and stays dense.
    EXPECT_EQ(ExpectBothPathsEqual(Path(std::string(t) + ".gguf")), 6 * n_layers_);
  }
}

TEST_F(GgmlBlockImport, MixedFileLoadsDirectlyWithTheReferenceLayersAndLogits) {
  auto q4 = ReadGguf(Path("Q4_0.gguf")), q8 = ReadGguf(Path("Q8_0.gguf")), q41 = ReadGguf(Path("Q4_1.gguf")),
       f32 = ReadGguf(Path("F32.gguf"));
  ASSERT_TRUE(q4.ok() && q8.ok() && q41.ok() && f32.ok());
  // Block 0 Q4_0, block 1 Q8_0, block 2's gate Q4_1 (dequantized), block
  // 3's q / k F32, the rest Q4_0 or Q8_0 alternating per tensor.
  int alternate = 0;
  const std::string mixed = Path("mixed.gguf");
  ASSERT_TRUE(Rebuild(
                  *q4,
                  [&](const std::string& name) -> const GgufFile* {
                    if (absl::StartsWith(name, "blk.0.")) return &*q4;
                    if (absl::StartsWith(name, "blk.1.")) return &*q8;
                    if (name == "blk.2.ffn_gate.weight") return &*q41;
                    if (name == "blk.3.attn_q.weight" || name == "blk.3.attn_k.weight") return &*f32;
                    return (alternate++ % 2) ? &*q8 : &*q4;
                  },
                  nullptr, mixed)
                  .ok());
  auto file = ReadGguf(mixed);
  ASSERT_TRUE(file.ok()) << file.status();
  int n_q4 = 0, n_q8 = 0, n_other = 0;
  for (const GgufTensorInfo& t : file->tensors) {
    if (t.ne.size() != 2 || t.name == "token_embd.weight") continue;
    n_q4 += t.type == GgmlType::kQ4_0;
    n_q8 += t.type == GgmlType::kQ8_0;
    n_other += t.type != GgmlType::kQ4_0 && t.type != GgmlType::kQ8_0;
  }
  ASSERT_GT(n_q4, 0);
  ASSERT_GT(n_q8, 0);
  EXPECT_EQ(n_other, n_layers_ + 1 + 2);  // down_proj F16 in every block, one Q4_1, two F32
  EXPECT_EQ(ExpectBothPathsEqual(mixed), n_q4 + n_q8);
  auto direct = LoadGgufModelWithBlocks(mixed);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(direct->model.blocks[0].q_proj->kind(), "gguf_q4_0");
  EXPECT_EQ(direct->model.blocks[1].q_proj->kind(), "gguf_q8_0");
  EXPECT_EQ(direct->model.blocks[2].gate_proj->kind().rfind("dense_", 0), 0u);
  EXPECT_EQ(direct->model.blocks[3].k_proj->kind().rfind("dense_", 0), 0u);
}

TEST_F(GgmlBlockImport, CheckpointHoldsBlocksNotAnFp32Copy) {
  auto file = ReadGguf(Path("Q4_0.gguf"));
  ASSERT_TRUE(file.ok());
  GgufImportOptions keep;
  keep.keep_ggml_blocks = true;
  auto ck = GgufToCheckpoint(*file, keep);
  ASSERT_TRUE(ck.ok()) << ck.status();
  const std::string v = "model.layers.2.self_attn.v_proj", q = "model.layers.2.self_attn.q_proj";
  EXPECT_EQ(ck->tensors.count(v + ".weight"), 0u);
  EXPECT_EQ(ck->linear_kinds.at(v), kGgufQ4_0LinearKind);
  const TensorView& vb = ck->tensors.at(v + ".weight_blocks").view;
  EXPECT_EQ(vb.dtype, DType::kU8);
  // [4 kv heads x head_dim 8, 2 Q4_0 blocks of 18 bytes]
  EXPECT_EQ(vb.shape, (std::vector<int64_t>{32, 2 * 18}));
  // v is not permuted: a view into the file's mapping, no copy.
  EXPECT_EQ(vb.data, file->FindTensor("blk.2.attn_v.weight")->data);
  // q rows are permuted (a copy of the blocks, never fp32).
  EXPECT_EQ(ck->tensors.count(q + ".weight"), 0u);
  EXPECT_NE(ck->tensors.at(q + ".weight_blocks").view.data, file->FindTensor("blk.2.attn_q.weight")->data);
  // down_proj (F16 fallback) takes the fp32 path; the embedding stays the
  // file's rows (a view into the mapping) until BuildModel dequantizes it.
  EXPECT_EQ(ck->tensors.at("model.layers.2.mlp.down_proj.weight").view.dtype, DType::kF32);
  EXPECT_EQ(ck->tensors.count("model.embed_tokens.weight"), 0u);
  EXPECT_EQ(ck->tensors.at(kEmbeddingGgmlRows).view.dtype, DType::kU8);
  EXPECT_EQ(ck->tensors.at(kEmbeddingGgmlRows).view.data, file->FindTensor("token_embd.weight")->data);
  // Without the option nothing changes.
  auto plain = GgufToCheckpoint(*file);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->linear_kinds.empty());
  EXPECT_EQ(plain->tensors.at(v + ".weight").view.dtype, DType::kF32);
}

TEST_F(GgmlBlockImport, DamagedFilesAreRefusedNamingTensorAndReason) {
  auto q4 = ReadGguf(Path("Q4_0.gguf"));
  ASSERT_TRUE(q4.ok());
  auto both_fail = [&](const std::string& path, const std::vector<std::string>& want) {
    auto direct = LoadGgufModelWithBlocks(path);
    ASSERT_FALSE(direct.ok()) << path;
    for (const std::string& w : want) EXPECT_THAT(std::string(direct.status().message()), HasSubstr(w)) << path;
    // The reference path refuses the same file too.
    EXPECT_FALSE(LoadGgufModelWithBlocksReference(path).ok()) << path;
  };

  // Truncated block data: the last tensor's bytes run past the end.
  {
    const std::string p = Path("truncated.gguf");
    fs::copy_file(Path("Q4_0.gguf"), p);
    const GgufTensorInfo* last = &q4->tensors.front();
    for (const GgufTensorInfo& t : q4->tensors) {
      if (t.offset > last->offset) last = &t;
    }
    fs::resize_file(p, fs::file_size(p) - last->nbytes / 2);
    both_fail(p, {last->name, "truncated file"});
  }
  // A block tensor one row short of the model's layer (bytes consistent
  // with its own shape): refused by the module's shape check.
  {
    const std::string p = Path("short_rows.gguf");
    ASSERT_TRUE(Rebuild(*q4, nullptr,
                        [](std::vector<GgufTensorData>& ts) {
                          GgufTensorData* t = Tensor(ts, "blk.1.ffn_up.weight");
                          ASSERT_EQ(t->type, GgmlType::kQ4_0);
                          const int64_t row_bytes = t->ne[0] / 32 * 18;
                          t->ne[1] -= 1;
                          t->bytes.resize(t->bytes.size() - row_bytes);
                        },
                        p)
                    .ok());
    both_fail(p, {"model.layers.1.mlp.up_proj", "gguf_q4_0", "shape [171, 64]", "expected"});
  }
  // A block tensor with a different row length (in) than the model's.
  {
    const std::string p = Path("short_cols.gguf");
    ASSERT_TRUE(Rebuild(*q4, nullptr,
                        [](std::vector<GgufTensorData>& ts) {
                          GgufTensorData* t = Tensor(ts, "blk.0.attn_v.weight");
                          t->ne[0] = 32;  // one block per row instead of two
                          t->bytes.resize(static_cast<size_t>(t->ne[1] * 18));
                        },
                        p)
                    .ok());
    both_fail(p, {"model.layers.0.self_attn.v_proj", "shape [", "expected"});
  }
  // k rows that are not whole heads (head_dim 8): refused before permuting.
  {
    const std::string p = Path("bad_heads.gguf");
    ASSERT_TRUE(Rebuild(*q4, nullptr,
                        [](std::vector<GgufTensorData>& ts) {
                          GgufTensorData* t = Tensor(ts, "blk.0.attn_k.weight");
                          t->ne[1] -= 3;
                          t->bytes.resize(static_cast<size_t>(t->ne[1] * 2 * 18));
                        },
                        p)
                    .ok());
    both_fail(p, {"blk.0.attn_k.weight", "rows are not whole heads"});
  }
  // A non-finite fp16 scale (Inf) in row 3, block 1.
  {
    const std::string p = Path("inf_scale.gguf");
    ASSERT_TRUE(Rebuild(*q4, nullptr,
                        [](std::vector<GgufTensorData>& ts) {
                          GgufTensorData* t = Tensor(ts, "blk.4.ffn_gate.weight");
                          const size_t at = (3 * 2 + 1) * 18;
                          t->bytes[at] = 0x00;
                          t->bytes[at + 1] = 0x7c;
                        },
                        p)
                    .ok());
    both_fail(p, {"blk.4.ffn_gate.weight", "row 3 block 1", "non-finite scale", "0x7c00"});
  }
}

}  // namespace
}  // namespace squeeze
