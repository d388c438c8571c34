// compressed-tensors sparse export (sparse-bitmask / sparse-24-bitmask):
// byte-level conformance against hand-computed bitmasks (numpy packbits,
// bitorder "little"), the config keys, and bit-identical round trips of
// pruned stories260K models (unstructured, 2:4, and mixed with packed-int
// layers) through ExportCompressedTensors and LoadModel.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "tests/unit/formats/test_util.h"
#include "workers/engine/formats/compressed_tensors_format.h"
#include "workers/engine/formats/compressed_tensors_sparse.h"
#include "workers/engine/formats/int_weight.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/formats/safetensors.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/methods/prune/sparse_linear.h"
#include "workers/methods/quant/rtn.h"
#include "workers/methods/stored_linear.h"

namespace squeeze {
namespace {

using testing::HasSubstr;
using testing_util::FreshTestDir;
namespace fs = std::filesystem;

const std::string kStories = std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K/hf";

bool HaveStories() { return fs::exists(kStories + "/config.json"); }

std::string Bytes(const TensorView& v) { return std::string(static_cast<const char*>(v.data), v.nbytes); }

// Entry views by name; the view's dtype is set to the dtype it is stored as.
std::map<std::string, TensorView> ByName(const std::vector<SafetensorsEntry>& entries) {
  std::map<std::string, TensorView> out;
  for (const SafetensorsEntry& e : entries) {
    out[e.name] = e.view;
    out[e.name].dtype = e.dtype;
  }
  return out;
}

template <typename T>
std::vector<T> Values(const TensorView& v) {
  std::vector<T> out(v.nbytes / sizeof(T));
  std::memcpy(out.data(), v.data, v.nbytes);
  return out;
}

// Magnitude pruning of one row-major weight: per row, the `drop` smallest |w|
// of every run of `span` inputs are set to 0 (span = in: unstructured).
MatrixRM Prune(MatrixRM w, int64_t span, int64_t drop) {
  for (int64_t r = 0; r < w.rows(); ++r) {
    for (int64_t g = 0; g < w.cols(); g += span) {
      std::vector<int64_t> idx;
      for (int64_t c = g; c < std::min<int64_t>(g + span, w.cols()); ++c) idx.push_back(c);
      std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
        return std::abs(w(r, a)) < std::abs(w(r, b)) || (std::abs(w(r, a)) == std::abs(w(r, b)) && a < b);
      });
      for (int64_t k = 0; k < drop && k < static_cast<int64_t>(idx.size()); ++k) w(r, idx[k]) = 0.0f;
    }
  }
  return w;
}

std::vector<float> BiasOf(const LinearLayer& l) { return std::vector<float>(l.bias().begin(), l.bias().end()); }

void MakeSparse(std::unique_ptr<LinearLayer>* slot, SparseFormat format) {
  const MatrixRM w = (*slot)->DenseWeight();
  const bool nm = format == SparseFormat::kNM;
  auto s = SparseLinear::FromDense(nm ? Prune(w, 4, 2) : Prune(w, w.cols(), w.cols() / 2), BiasOf(**slot), format,
                                   nm ? 2 : 0, nm ? 4 : 0);
  ASSERT_TRUE(s.ok()) << s.status();
  *slot = std::move(s).value();
}

MatrixRM Logits(const Model& m, const std::vector<int>& ids) {
  KVCache cache(m, static_cast<int>(ids.size()));
  MatrixRM logits;
  EXPECT_TRUE(Forward(m, ids, 0, cache, logits).ok());
  return logits;
}

// Every linear of `b` has the kind and the stored bytes of `a`'s.
void ExpectSameLayers(Model& a, Model& b) {
  auto la = a.AllLinears(), lb = b.AllLinears();
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) {
    const LinearLayer& x = **la[i].slot;
    const LinearLayer& y = **lb[i].slot;
    ASSERT_EQ(x.kind(), y.kind()) << la[i].name;
    auto tx = x.StoredTensors(), ty = y.StoredTensors();
    ASSERT_EQ(tx.size(), ty.size()) << la[i].name;
    for (size_t k = 0; k < tx.size(); ++k) {
      EXPECT_EQ(tx[k].first, ty[k].first) << la[i].name;
      EXPECT_EQ(tx[k].second.dtype, ty[k].second.dtype) << la[i].name << "." << tx[k].first;
      EXPECT_EQ(tx[k].second.shape, ty[k].second.shape) << la[i].name << "." << tx[k].first;
      EXPECT_TRUE(Bytes(tx[k].second) == Bytes(ty[k].second)) << la[i].name << "." << tx[k].first << " differs";
    }
  }
}

nlohmann::json QuantizationConfig(const std::string& dir) {
  return nlohmann::json::parse(testing_util::ReadBytes(dir + "/config.json"))["quantization_config"];
}

// ---- byte level -------------------------------------------------------------

TEST(CtSparseBytes, BitmaskMatchesHandComputedPackbits) {
  // Row 0 keeps inputs 0, 3, 8, 9; row 1 keeps input 7; row 2 nothing.
  MatrixRM w = MatrixRM::Zero(3, 10);
  w(0, 0) = 1.0f, w(0, 3) = -2.5f, w(0, 8) = 0.25f, w(0, 9) = 4.0f;
  w(1, 7) = -0.5f;
  w(2, 4) = -0.0f;  // torch: -0.0 != 0 is false, so not stored
  auto t = ByName(CtBitmaskEntries("m", w, DType::kF32));
  ASSERT_EQ(t.size(), 4u);
  // numpy.packbits(bitorder="little"): bit i of a byte is input 8 k + i.
  // row 0: inputs 0, 3 -> 0b00001001; inputs 8, 9 -> 0b00000011.
  EXPECT_EQ(t["m.bitmask"].dtype, DType::kU8);
  EXPECT_EQ(t["m.bitmask"].shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(Bytes(t["m.bitmask"]), std::string("\x09\x03\x80\x00\x00\x00", 6));
  EXPECT_EQ(t["m.compressed"].dtype, DType::kF32);
  EXPECT_EQ(Values<float>(t["m.compressed"]), (std::vector<float>{1.0f, -2.5f, 0.25f, 4.0f, -0.5f}));
  EXPECT_EQ(t["m.row_offsets"].dtype, DType::kI64);
  EXPECT_EQ(Values<int64_t>(t["m.row_offsets"]), (std::vector<int64_t>{0, 4, 5}));
  EXPECT_EQ(t["m.shape"].dtype, DType::kI64);
  EXPECT_EQ(t["m.shape"].shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(Values<int64_t>(t["m.shape"]), (std::vector<int64_t>{3, 10}));
  // F16 values are stored as F16 (the model dtype).
  auto h = ByName(CtBitmaskEntries("m", w, DType::kF16));
  EXPECT_EQ(h["m.compressed"].dtype, DType::kF16);
}

TEST(CtSparseBytes, TwoFourMatchesHandComputedBitmask) {
  // Groups of 4: {0, 1.5, 0, -2} keeps 1, 3; {3, 0, 0, 0} keeps 4 and pads
  // with the lowest free position 5; {0, 0, 0, 0} pads with 8, 9.
  MatrixRM w = MatrixRM::Zero(1, 12);
  w(0, 1) = 1.5f, w(0, 3) = -2.0f, w(0, 4) = 3.0f;
  auto entries = CtSparse24Entries("m", w, DType::kF32);
  ASSERT_TRUE(entries.ok()) << entries.status();
  auto t = ByName(*entries);
  ASSERT_EQ(t.size(), 3u);  // no row_offsets in this format
  // bits 1, 3, 4, 5 -> 0b00111010; bits 8, 9 -> 0b00000011.
  EXPECT_EQ(Bytes(t["m.bitmask"]), std::string("\x3a\x03", 2));
  EXPECT_EQ(t["m.compressed"].shape, (std::vector<int64_t>{1, 6}));
  EXPECT_EQ(Values<float>(t["m.compressed"]), (std::vector<float>{1.5f, -2.0f, 3.0f, 0.0f, 0.0f, 0.0f}));
  // Sparse24BitMaskTensor.dict: torch.tensor(shape).reshape(-1, 1).
  EXPECT_EQ(t["m.shape"].shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(Values<int64_t>(t["m.shape"]), (std::vector<int64_t>{1, 12}));

  w(0, 10) = 1.0f, w(0, 11) = 2.0f, w(0, 9) = 3.0f;  // three non-zeros in inputs 8..11
  EXPECT_THAT(CtSparse24Entries("m", w, DType::kF32).status().message(),
              HasSubstr("m: not 2:4 sparse (row 0, inputs 8..11 hold 3 non-zeros)"));
  EXPECT_THAT(CtSparse24Entries("m", MatrixRM::Zero(2, 6), DType::kF32).status().message(),
              HasSubstr("in_features divisible by 4, got 6"));
}

TEST(CtSparseBytes, ExportWritesSparsityConfigAndTensors) {
  RegisterMethodLinearLoaders();
  ModelConfig c;
  c.dim = 16, c.hidden_dim = 32, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.head_dim = 8;
  c.vocab_size = 16, c.max_seq_len = 16;
  Model m = MakeRandomModel(c, 4);
  MakeSparse(&m.blocks[0].down_proj, SparseFormat::kBitmask);  // [16, 32], half of every row zero
  const std::string dir = FreshTestDir() + "/ct";
  auto r = ExportCompressedTensors(m, dir);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto qc = QuantizationConfig(dir);
  // Sparse only: ModelCompressor.update_config's keys, no config_groups.
  EXPECT_EQ(qc["quant_method"], "compressed-tensors");
  EXPECT_FALSE(qc.contains("config_groups"));
  const auto& sc = qc["sparsity_config"];
  EXPECT_EQ(sc["format"], "sparse-bitmask");
  EXPECT_EQ(sc["targets"], nlohmann::json::array({"model.layers.0.mlp.down_proj"}));
  EXPECT_EQ(sc["ignore"], nlohmann::json::array());
  EXPECT_EQ(sc["sparsity_structure"], "unstructured");
  // 256 zeros among all parameters: embedding 256, norms 16 * 3, q 256, k 128,
  // v 128, o 256, gate / up / down 512 each, lm_head 256.
  const double total = 256 + 48 + 256 + 128 + 128 + 256 + 3 * 512 + 256;
  EXPECT_NEAR(sc["global_sparsity"].get<double>(), 100.0 * 256 / total, 1e-9);
  auto st = ReadSafetensors(dir + "/model.safetensors");
  ASSERT_TRUE(st.ok()) << st.status();
  const std::string p = "model.layers.0.mlp.down_proj.";
  EXPECT_FALSE(st->tensors.count(p + "weight"));
  EXPECT_EQ(st->tensors.at(p + "compressed").shape, (std::vector<int64_t>{256}));
  EXPECT_EQ(st->tensors.at(p + "bitmask").shape, (std::vector<int64_t>{16, 4}));
  EXPECT_EQ(st->tensors.at(p + "row_offsets").shape, (std::vector<int64_t>{16}));
  ASSERT_EQ(r->layers.size(), 8u);
  EXPECT_THAT(r->layers[6].how, HasSubstr("sparse-bitmask (256 of 512 weights non-zero)"));
  EXPECT_EQ(r->layers[6].rel_error, 0.0);
  // The bitmask bytes are those of the weight: bit c % 8 of byte c / 8.
  const MatrixRM w = m.blocks[0].down_proj->DenseWeight();
  const uint8_t* mask = static_cast<const uint8_t*>(st->tensors.at(p + "bitmask").data);
  for (int64_t row = 0; row < 16; ++row) {
    for (int64_t col = 0; col < 32; ++col) {
      EXPECT_EQ((mask[row * 4 + col / 8] >> (col % 8)) & 1, w(row, col) != 0.0f ? 1 : 0) << row << "," << col;
    }
  }
  // Reloaded as the engine's sparse layer, bit for bit.
  auto back = LoadModel(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameLayers(m, *back);
}

// ---- refusals and imports of foreign files -----------------------------------

TEST(CtSparseBytes, RefusalsWriteNothing) {
  RegisterMethodLinearLoaders();
  ModelConfig c;
  c.dim = 16, c.hidden_dim = 32, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.head_dim = 8;
  c.vocab_size = 16, c.max_seq_len = 16;
  Model m = MakeRandomModel(c, 5);
  MakeSparse(&m.blocks[0].up_proj, SparseFormat::kBitmask);
  const std::string dir = FreshTestDir() + "/x";
  CompressedTensorsExportOptions o;
  o.sparse_format = "sparse-24-bitmask";
  auto r = ExportCompressedTensors(m, dir, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("compressed-tensors: model.layers.0.mlp.up_proj: not 2:4 sparse (row 0"));
  EXPECT_THAT(r.status().message(), HasSubstr("nothing was written"));
  o.sparse_format = "sparse-12-bitmask";
  EXPECT_THAT(ExportCompressedTensors(m, dir, o).status().message(),
              HasSubstr("sparse format \"sparse-12-bitmask\": must be auto, sparse-bitmask, sparse-24-bitmask or dense"));
  o.sparse_format = "dense";  // then nothing is compressed at all
  EXPECT_THAT(ExportCompressedTensors(m, dir, o).status().message(), HasSubstr("no quantized layer"));
  EXPECT_FALSE(fs::exists(dir));
}

// A sparse-24-bitmask file whose kept pairs are not the engine's choice
// (compressed-tensors picks by topk |w|, so zeros may sit anywhere) loads
// as sparse_2of4 with those positions; one whose group holds 3 bits loads as
// sparse_bitmask; inconsistent tensors are refused naming the tensor.
TEST(CtSparseBytes, ImportsForeignTwoFourFiles) {
  RegisterMethodLinearLoaders();
  ModelConfig c;
  c.dim = 16, c.hidden_dim = 32, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.head_dim = 8;
  c.vocab_size = 16, c.max_seq_len = 16;
  Model m = MakeRandomModel(c, 6);
  m.blocks[0].q_proj = DenseLinear::FromMatrix(MatrixRM::Zero(16, 16));
  const std::string dir = FreshTestDir();
  ASSERT_TRUE(SaveModel(m, dir + "/plain").ok());
  auto st = ReadSafetensors(dir + "/plain/model.safetensors");
  ASSERT_TRUE(st.ok());
  std::map<std::string, TensorView> t = st->tensors;
  const std::string p = "model.layers.0.self_attn.q_proj.";
  t.erase(p + "weight");
  // Every row: group 0 keeps positions 2, 3 (values 0 and 5), the other
  // groups keep 0, 1 holding zeros: W[r, 3] = 5, everything else 0.
  // Per row: bits 2, 3 | 4, 5 (byte 0 = 0b00111100) and 8, 9 | 12, 13
  // (byte 1 = 0b00110011).
  auto rows_of = [](const std::string& row, int n) {
    std::string out;
    for (int r = 0; r < n; ++r) out += row;
    return out;
  };
  auto values_of = [](const std::vector<float>& row, int n) {
    std::vector<float> out;
    for (int r = 0; r < n; ++r) out.insert(out.end(), row.begin(), row.end());
    return out;
  };
  t[p + "shape"] = OwnedI64({16, 16}, {2, 1});
  t[p + "compressed"] = OwnedF32(values_of({0, 5, 0, 0, 0, 0, 0, 0}, 16), {16, 8});
  t[p + "bitmask"] = OwnedBytes(DType::kU8, rows_of(std::string("\x3c\x33", 2), 16), {16, 2});
  fs::create_directories(dir + "/s24");
  auto write = [&]() {
    ASSERT_TRUE(WriteSafetensorsMap(dir + "/s24/model.safetensors", t, {{"format", "pt"}}).ok());
  };
  write();
  auto config = nlohmann::json::parse(testing_util::ReadBytes(dir + "/plain/config.json"));
  config["quantization_config"] = {{"quant_method", "compressed-tensors"},
                                   {"sparsity_config",
                                    {{"format", "sparse-24-bitmask"}, {"targets", {"Linear"}}, {"sparsity_structure", "2:4"}}}};
  testing_util::WriteBytes(dir + "/s24/config.json", config.dump());
  auto back = LoadModel(dir + "/s24");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->blocks[0].q_proj->kind(), "sparse_2of4");
  MatrixRM want = MatrixRM::Zero(16, 16);
  want.col(3).setConstant(5.0f);
  EXPECT_EQ((back->blocks[0].q_proj->DenseWeight() - want).cwiseAbs().maxCoeff(), 0.0f);

  // Group 0 with three bits (1, 2, 3) and group 1 with one (4): not 2:4, read
  // as a bitmask layer of its non-zeros W[r, 1] = 7, W[r, 3] = 5.
  t[p + "bitmask"] = OwnedBytes(DType::kU8, rows_of(std::string("\x1e\x33", 2), 16), {16, 2});
  t[p + "compressed"] = OwnedF32(values_of({7, 0, 5, 0, 0, 0, 0, 0}, 16), {16, 8});
  write();
  back = LoadModel(dir + "/s24");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->blocks[0].q_proj->kind(), "sparse_bitmask");
  want.col(1).setConstant(7.0f);
  EXPECT_EQ((back->blocks[0].q_proj->DenseWeight() - want).cwiseAbs().maxCoeff(), 0.0f);
  EXPECT_EQ(back->blocks[0].q_proj->NonZeroWeights(), 32);

  // Inconsistent files are refused, naming the tensor.
  t[p + "compressed"] = OwnedF32(values_of({7, 0, 5, 0, 0, 0, 0}, 16), {16, 7});
  write();
  EXPECT_THAT(LoadModel(dir + "/s24").status().message(),
              HasSubstr("q_proj.compressed: shape [16, 7], expected [16, 8]"));
  t[p + "bitmask"] = OwnedBytes(DType::kU8, rows_of(std::string("\x3e\x33", 2), 16), {16, 2});
  t[p + "compressed"] = OwnedF32(values_of({7, 0, 5, 0, 0, 0, 0, 0}, 16), {16, 8});
  write();
  EXPECT_THAT(LoadModel(dir + "/s24").status().message(),
              HasSubstr("128 values but model.layers.0.self_attn.q_proj.bitmask sets 144 bits"));
  t[p + "bitmask"] = OwnedBytes(DType::kI8, rows_of(std::string("\x3c\x33", 2), 16), {16, 2});
  write();
  EXPECT_THAT(LoadModel(dir + "/s24").status().message(), HasSubstr("q_proj.bitmask: dtype I8, expected U8"));
}

// ---- stories260K round trips -----------------------------------------------

struct RoundTrip {
  std::string name;
  std::function<void(Model&)> prune;
  std::string expect_format;
};

TEST(CtSparseRoundTrip, StoriesPrunedModelsAreBitIdentical) {
  if (!HaveStories()) GTEST_SKIP() << "needs " << kStories << " (../shared)";
  RegisterMethodLinearLoaders();
  const std::vector<RoundTrip> cases = {
      {"unstructured",
       [](Model& m) {
         for (const LinearSlot& s : m.AllLinears()) MakeSparse(s.slot, SparseFormat::kBitmask);
       },
       "sparse-bitmask"},
      {"two_four",
       [](Model& m) {
         for (const LinearSlot& s : m.AllLinears()) MakeSparse(s.slot, SparseFormat::kNM);
       },
       "sparse-24-bitmask"},
      {"mixed_with_w4",  // attention 2:4, MLP W4 g32 asymmetric (RTN)
       [](Model& m) {
         for (const LinearSlot& s : m.AllLinears()) {
           if (absl::StrContains(s.name, "self_attn")) {
             MakeSparse(s.slot, SparseFormat::kNM);
           } else {
             WeightQuantArgs a;
             a.num_bits = 4, a.symmetric = false, a.strategy = QuantStrategy::kGroup, a.group_size = 32;
             auto q = QuantizeRtn((*s.slot)->DenseWeight(), a);
             ASSERT_TRUE(q.ok()) << q.status();
             *s.slot = std::move(q).value();
           }
         }
       },
       "sparse-24-bitmask"},
  };
  const std::vector<int> ids = {1, 403, 261, 30, 7, 2, 99, 480};
  for (const RoundTrip& rt : cases) {
    SCOPED_TRACE(rt.name);
    auto m = LoadModel(kStories);
    ASSERT_TRUE(m.ok()) << m.status();
    rt.prune(*m);
    const std::string dir = FreshTestDir() + "/" + rt.name;
    auto r = ExportCompressedTensors(*m, dir);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const QuantizedLayerReport& l : r->layers) EXPECT_EQ(l.rel_error, 0.0) << l.module;
    const auto qc = QuantizationConfig(dir);
    EXPECT_EQ(qc["sparsity_config"]["format"], rt.expect_format);
    EXPECT_EQ(qc.contains("config_groups"), rt.name == "mixed_with_w4");
    auto back = LoadModel(dir);
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectSameLayers(*m, *back);
    EXPECT_EQ((Logits(*m, ids) - Logits(*back, ids)).cwiseAbs().maxCoeff(), 0.0f);
  }
}

}  // namespace
}  // namespace squeeze
