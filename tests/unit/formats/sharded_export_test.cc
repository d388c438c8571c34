// Sharded safetensors (model-0000k-of-0000N.safetensors +
// model.safetensors.index.json) for every safetensors export: shard sizes as
// transformers parses them, stories260K exported as HF dense,
// compressed-tensors, GPTQ and AWQ into several shards and reloaded
// identically, and hostile indexes (missing shard, a tensor in two shards,
// path traversal, bad metadata) refused with precise errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tests/unit/formats/test_util.h"
#include "workers/engine/formats/awq_format.h"
#include "workers/engine/formats/compressed_tensors_format.h"
#include "workers/engine/formats/gptq_format.h"
#include "workers/engine/formats/hf_dense_export.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/formats/safetensors.h"
#include "workers/engine/formats/sharded_safetensors.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/methods/prune/sparse_linear.h"
#include "workers/methods/quant/rtn.h"
#include "workers/methods/stored_linear.h"

namespace squeeze {
namespace {

using testing::AllOf;
using testing::HasSubstr;
using testing_util::FreshTestDir;
namespace fs = std::filesystem;

const std::string kStories = std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K/hf";

TEST(ShardSize, ParsesLikeTransformers) {
  EXPECT_EQ(*ParseShardSize("5GB"), 5'000'000'000LL);
  EXPECT_EQ(*ParseShardSize("100KB"), 100'000);
  EXPECT_EQ(*ParseShardSize("100kb"), 100'000 / 8);  // lower-case b: bits, as in transformers
  EXPECT_EQ(*ParseShardSize("5Gb"), 625'000'000);
  EXPECT_EQ(*ParseShardSize("2GiB"), int64_t{2} << 30);
  EXPECT_EQ(*ParseShardSize("10mib"), 10 << 20);
  EXPECT_EQ(*ParseShardSize("3KiB"), 3072);
  EXPECT_EQ(*ParseShardSize("200MB"), 200'000'000);
  EXPECT_EQ(*ParseShardSize("4096"), 4096);
  for (const char* bad : {"", "GB", "0", "0KB", "-5GB", "1.5GB", "5XB", "5 G B", "99999999999999GB", "abc"}) {
    auto r = ParseShardSize(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_THAT(r.status().message(), AllOf(HasSubstr(absl::StrCat("shard size \"", bad, "\"")), HasSubstr("e.g. 5GB")))
        << bad;
  }
  EXPECT_EQ(kDefaultMaxShardBytes, *ParseShardSize("5GB"));
}

std::string Bytes(const TensorView& v) { return std::string(static_cast<const char*>(v.data), v.nbytes); }

// Every linear of `b` has the kind and stored bytes of `a`'s, and the other
// weights are equal.
void ExpectSameModel(Model& a, Model& b) {
  EXPECT_EQ(a.embedding, b.embedding);
  EXPECT_EQ(a.final_norm, b.final_norm);
  ASSERT_EQ(a.blocks.size(), b.blocks.size());
  for (size_t l = 0; l < a.blocks.size(); ++l) {
    EXPECT_EQ(a.blocks[l].attn_norm, b.blocks[l].attn_norm);
    EXPECT_EQ(a.blocks[l].ffn_norm, b.blocks[l].ffn_norm);
  }
  auto la = a.AllLinears(), lb = b.AllLinears();
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) {
    ASSERT_EQ((*la[i].slot)->kind(), (*lb[i].slot)->kind()) << la[i].name;
    auto tx = (*la[i].slot)->StoredTensors(), ty = (*lb[i].slot)->StoredTensors();
    ASSERT_EQ(tx.size(), ty.size()) << la[i].name;
    for (size_t k = 0; k < tx.size(); ++k) {
      EXPECT_EQ(tx[k].first, ty[k].first);
      EXPECT_EQ(tx[k].second.shape, ty[k].second.shape) << la[i].name << "." << tx[k].first;
      EXPECT_TRUE(Bytes(tx[k].second) == Bytes(ty[k].second)) << la[i].name << "." << tx[k].first << " differs";
    }
  }
}

// Checks the sharded layout of `dir` against `max_bytes`; returns the shard count.
int CheckShards(const std::string& dir, int64_t max_bytes) {
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
  const auto index = nlohmann::json::parse(testing_util::ReadBytes(dir + "/model.safetensors.index.json"));
  std::map<std::string, std::set<std::string>> by_file;
  for (auto& [name, file] : index["weight_map"].items()) by_file[file.get<std::string>()].insert(name);
  const int n = static_cast<int>(by_file.size());
  int64_t total = 0;
  int k = 1;
  for (const auto& [file, names] : by_file) {
    EXPECT_EQ(file, absl::StrFormat("model-%05d-of-%05d.safetensors", k++, n));
    auto st = ReadSafetensors(dir + "/" + file);
    EXPECT_TRUE(st.ok()) << st.status();
    if (!st.ok()) return n;
    EXPECT_EQ(st->metadata.at("format"), "pt");  // transformers refuses shards without it
    int64_t bytes = 0;
    std::set<std::string> held;
    for (const auto& [name, v] : st->tensors) {
      bytes += static_cast<int64_t>(v.nbytes);
      held.insert(name);
    }
    EXPECT_EQ(held, names) << file;
    if (held.size() > 1) EXPECT_LE(bytes, max_bytes) << file;
    total += bytes;
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), total);
  // No shard of another count is left behind.
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (absl::EndsWith(name, ".safetensors")) EXPECT_TRUE(by_file.count(name)) << name;
  }
  return n;
}

TEST(ShardedExport, StoriesEveryFormatShardsAndReloadsIdentically) {
  if (!fs::exists(kStories + "/config.json")) GTEST_SKIP() << "needs " << kStories << " (../shared)";
  RegisterMethodLinearLoaders();
  auto quant = LoadModel(kStories);
  ASSERT_TRUE(quant.ok()) << quant.status();
  for (const LinearSlot& s : quant->AllLinears()) {
    WeightQuantArgs a;
    a.num_bits = 4, a.symmetric = false, a.strategy = QuantStrategy::kGroup, a.group_size = 32;
    auto q = QuantizeRtn((*s.slot)->DenseWeight(), a);
    ASSERT_TRUE(q.ok()) << q.status();
    *s.slot = std::move(q).value();
  }
  const std::string base = FreshTestDir();
  const int64_t limit = 40'000;  // stories260K: about 1 MB in F32, 0.2 MB packed W4
  using Exporter = std::function<absl::StatusOr<QuantizedExportResult>(const std::string&, int64_t)>;
  const std::vector<std::pair<std::string, Exporter>> exporters = {
      {"compressed-tensors",
       [&](const std::string& dir, int64_t max) {
         CompressedTensorsExportOptions o;
         o.max_shard_bytes = max;
         return ExportCompressedTensors(*quant, dir, o);
       }},
      {"gptq",
       [&](const std::string& dir, int64_t max) {
         GptqExportOptions o;
         o.max_shard_bytes = max;
         o.unfit_as_dense = true;  // 172 MLP channels: not a multiple of 8
         return ExportGptq(*quant, dir, o);
       }},
      {"awq",
       [&](const std::string& dir, int64_t max) {
         AwqExportOptions o;
         o.max_shard_bytes = max;
         o.unfit_as_dense = true;
         return ExportAwq(*quant, dir, o);
       }},
  };
  for (const auto& [name, exporter] : exporters) {
    SCOPED_TRACE(name);
    const std::string one = base + "/" + name + "_one", many = base + "/" + name + "_many";
    auto r1 = exporter(one, kDefaultMaxShardBytes);
    ASSERT_TRUE(r1.ok()) << r1.status();
    EXPECT_EQ(r1->shards, 1);
    EXPECT_TRUE(fs::exists(one + "/model.safetensors"));
    EXPECT_FALSE(fs::exists(one + "/model.safetensors.index.json"));
    auto rn = exporter(many, limit);
    ASSERT_TRUE(rn.ok()) << rn.status();
    EXPECT_EQ(rn->bytes, r1->bytes);
    const int n = CheckShards(many, limit);
    EXPECT_EQ(rn->shards, n);
    EXPECT_GE(n, 4);
    auto a = LoadModel(one);
    ASSERT_TRUE(a.ok()) << a.status();
    auto b = LoadModel(many);
    ASSERT_TRUE(b.ok()) << b.status();
    ExpectSameModel(*a, *b);
    // Exporting unsharded into the same directory removes the shards.
    ASSERT_TRUE(exporter(many, kDefaultMaxShardBytes).ok());
    EXPECT_FALSE(fs::exists(many + "/model.safetensors.index.json"));
    EXPECT_FALSE(fs::exists(many + absl::StrFormat("/model-00001-of-%05d.safetensors", n)));
  }

  // HF dense: a pruned (sparse) and quantized model is written as plain
  // dense weights in several shards and reloads to the same weights.
  auto mixed = LoadModel(kStories);
  ASSERT_TRUE(mixed.ok());
  auto linears = mixed->AllLinears();
  for (size_t i = 0; i < linears.size(); ++i) {
    if (i % 2 == 0) {
      *linears[i].slot = std::move(*quant->AllLinears()[i].slot);
    } else {
      MatrixRM w = (*linears[i].slot)->DenseWeight();
      for (int64_t k = 0; k < w.size(); k += 3) w.data()[k] = 0.0f;
      auto s = SparseLinear::FromDense(w, {}, SparseFormat::kBitmask);
      ASSERT_TRUE(s.ok());
      *linears[i].slot = std::move(s).value();
    }
  }
  std::vector<MatrixRM> weights;
  for (const LinearSlot& s : mixed->AllLinears()) weights.push_back((*s.slot)->DenseWeight());
  const std::string hf = base + "/hf";
  SaveOptions o;
  o.max_shard_bytes = limit;
  auto r = ExportDenseHf(*mixed, hf, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->layers[0].how, HasSubstr("expanded"));
  EXPECT_EQ(r->shards, CheckShards(hf, limit));
  auto back = LoadModel(hf);
  ASSERT_TRUE(back.ok()) << back.status();
  auto lb = back->AllLinears();
  ASSERT_EQ(lb.size(), weights.size());
  for (size_t i = 0; i < lb.size(); ++i) {
    EXPECT_EQ((*lb[i].slot)->kind(), "dense_f32") << lb[i].name;
    EXPECT_EQ((*lb[i].slot)->DenseWeight(), weights[i]) << lb[i].name;
  }
}

// ---- hostile indexes --------------------------------------------------------

ModelConfig TinyConfig() {
  ModelConfig c;
  c.dim = 16, c.hidden_dim = 32, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.head_dim = 8;
  c.vocab_size = 16, c.max_seq_len = 16;
  return c;
}

struct Sharded {
  std::string dir, index_path;
  nlohmann::json index;
  void Write() const { testing_util::WriteBytes(index_path, index.dump()); }
};

Sharded MakeSharded() {
  Sharded s;
  s.dir = FreshTestDir() + "/s";
  SaveOptions opts;
  opts.max_shard_bytes = 3000;
  EXPECT_TRUE(SaveModel(MakeRandomModel(TinyConfig(), 9), s.dir, opts).ok());
  s.index_path = s.dir + "/model.safetensors.index.json";
  s.index = nlohmann::json::parse(testing_util::ReadBytes(s.index_path));
  return s;
}

TEST(HostileIndex, MissingShardIsNamed) {
  Sharded s = MakeSharded();
  const std::string shard = s.index["weight_map"]["model.norm.weight"];
  fs::remove(s.dir + "/" + shard);
  auto m = LoadModel(s.dir);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              AllOf(HasSubstr(absl::StrCat(s.index_path, ": shard ", shard, " (")), HasSubstr(" tensors, e.g. model."),
                    HasSubstr(absl::StrCat(shard, ": cannot open"))));
}

TEST(HostileIndex, TensorInTwoShardsIsRefused) {
  Sharded s = MakeSharded();
  const std::string home = s.index["weight_map"]["model.norm.weight"];
  std::string other;
  for (auto& [name, file] : s.index["weight_map"].items()) {
    if (file != home) other = file;
  }
  ASSERT_FALSE(other.empty());
  // Copy model.norm.weight into the other shard as well.
  auto a = ReadSafetensors(s.dir + "/" + home);
  auto b = ReadSafetensors(s.dir + "/" + other);
  ASSERT_TRUE(a.ok() && b.ok());
  std::map<std::string, TensorView> t = b->tensors;
  t["model.norm.weight"] = a->tensors.at("model.norm.weight");
  ASSERT_TRUE(WriteSafetensorsMap(s.dir + "/" + other + ".tmp", t, b->metadata).ok());
  fs::rename(s.dir + "/" + other + ".tmp", s.dir + "/" + other);
  auto m = LoadModel(s.dir);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(),
              AllOf(HasSubstr(other + ": tensor model.norm.weight is also stored here"),
                    HasSubstr(absl::StrCat("assigns it to ", home)), HasSubstr("two shards")));
  // A tensor the index does not list at all is refused too.
  s.index["weight_map"].erase("model.norm.weight");
  s.Write();
  EXPECT_THAT(LoadModel(s.dir).status().message(),
              HasSubstr("tensor model.norm.weight is not in the weight_map of " + s.index_path));
}

TEST(HostileIndex, ShardNamesOutsideTheDirectoryAreRefused) {
  Sharded s = MakeSharded();
  for (const char* name : {"../evil.safetensors", "/etc/passwd.safetensors", "sub\\x.safetensors",
                           ".hidden.safetensors", "pytorch_model.bin", ""}) {
    s.index["weight_map"]["model.norm.weight"] = name;
    s.Write();
    auto m = LoadModel(s.dir);
    ASSERT_FALSE(m.ok()) << name;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(m.status().message(),
                AllOf(HasSubstr(s.index_path), HasSubstr("weight_map entry for model.norm.weight"),
                      HasSubstr(absl::StrCat("invalid shard file name \"", name, "\""))))
        << name;
  }
}

TEST(HostileIndex, BadMetadataIsRefused) {
  Sharded s = MakeSharded();
  s.index["metadata"]["total_size"] = -5;
  s.Write();
  EXPECT_THAT(LoadModel(s.dir).status().message(), HasSubstr("metadata.total_size -5 is not a non-negative integer"));
  s.index["metadata"]["total_size"] = "12";
  s.Write();
  EXPECT_THAT(LoadModel(s.dir).status().message(), HasSubstr("metadata.total_size \"12\""));
  s.index["metadata"] = 3;
  s.Write();
  EXPECT_THAT(LoadModel(s.dir).status().message(), HasSubstr("\"metadata\" is not an object"));
  s.index.erase("metadata");  // optional: transformers does not need it
  s.Write();
  EXPECT_TRUE(LoadModel(s.dir).ok());
}

}  // namespace
}  // namespace squeeze
