// Hostile checkpoints (issue 11, "hostile input"): absurd shapes, overflowing
// offsets, alignment that would put tensor data at unaligned addresses, and
// NaN / Inf weights each get a precise InvalidArgument naming the file, the
// field or tensor and the reason. Inputs found by the fuzz targets of
// tests/fuzz are pinned here once fixed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "tests/unit/formats/test_util.h"
#include "workers/engine/core/half.h"
#include "workers/engine/formats/gguf.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/formats/llama2c.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/formats/safetensors.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::FreshTestDir;
using testing_util::MakeSafetensors;
using testing_util::ReadBytes;
using testing_util::WriteBytes;

template <typename T>
void Put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void PutStr(std::string& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out += s;
}

absl::StatusOr<GgufFile> ParseBytes(const std::string& bytes) {
  auto owner = std::make_shared<std::string>(bytes);
  return ParseGguf("hostile.gguf", reinterpret_cast<const uint8_t*>(owner->data()), owner->size(), owner);
}

// A GGUF with one key general.alignment (uint32) = `alignment` and one F32
// tensor of 2 values at offset 0.
std::string GgufWithAlignment(uint32_t alignment) {
  std::string b = "GGUF";
  Put<uint32_t>(b, 3);
  Put<uint64_t>(b, 1);
  Put<uint64_t>(b, 1);
  PutStr(b, "general.alignment");
  Put<uint32_t>(b, 4);  // uint32
  Put<uint32_t>(b, alignment);
  PutStr(b, "w");
  Put<uint32_t>(b, 1);
  Put<uint64_t>(b, 2);
  Put<uint32_t>(b, 0);  // F32
  Put<uint64_t>(b, 0);
  const size_t a = alignment == 0 ? 1 : alignment;
  b.resize((b.size() + a - 1) / a * a, '\0');
  b += std::string(8, '\0');
  return b;
}

TEST(HostileGguf, AlignmentMustBeAPowerOfTwoOfAtLeastEight) {
  // 1, 2 and 4 are powers of two but would let fp32 / ggml block data start
  // at an unaligned address (the header before the data has any length).
  for (uint32_t a : {0u, 1u, 2u, 4u, 12u, 24u}) {
    auto f = ParseBytes(GgufWithAlignment(a));
    ASSERT_FALSE(f.ok()) << a;
    EXPECT_THAT(f.status().message(),
                AllOf(HasSubstr("hostile.gguf: GGUF metadata general.alignment"),
                      HasSubstr(absl::StrCat(a, " is not a power of two >= 8"))));
    EXPECT_THAT(SerializeGguf({{"general.alignment", GgufValue::U32(a)}}, {}).status().message(),
                HasSubstr("is not a power of two >= 8"));
  }
  for (uint32_t a : {8u, 16u, 4096u}) {
    auto f = ParseBytes(GgufWithAlignment(a));
    ASSERT_TRUE(f.ok()) << a << ": " << f.status();
    EXPECT_EQ(f->alignment, a);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f->tensors[0].data) % 8, 0u);
  }
}

// One tensor info with the given dims, type and offset, then 64 data bytes.
std::string GgufTensor(std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
  std::string b = "GGUF";
  Put<uint32_t>(b, 3);
  Put<uint64_t>(b, 1);
  Put<uint64_t>(b, 0);
  PutStr(b, "w");
  Put<uint32_t>(b, static_cast<uint32_t>(ne.size()));
  for (uint64_t d : ne) Put<uint64_t>(b, d);
  Put<uint32_t>(b, type);
  Put<uint64_t>(b, offset);
  b.resize((b.size() + 31) / 32 * 32, '\0');
  b += std::string(64, '\0');
  return b;
}

TEST(HostileGguf, OverflowingOffsetsAndSizesAreRefused) {
  // An aligned offset near 2^64: offset + size wraps around.
  auto f = ParseBytes(GgufTensor({8}, 0, ~uint64_t{31}));
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), AllOf(HasSubstr("hostile.gguf: GGUF tensor w"), HasSubstr("lie beyond")));
  // An element count that fits int64 but whose byte size (x4 for F32) does not.
  f = ParseBytes(GgufTensor({uint64_t{1} << 31, uint64_t{1} << 31}, 0, 0));
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), AllOf(HasSubstr("tensor w"), HasSubstr("byte size overflows")));
  // Dimensions whose product overflows int64.
  f = ParseBytes(GgufTensor({uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0));
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), AllOf(HasSubstr("tensor w"), HasSubstr("overflows the element count")));
  // A plausible size that exceeds the file: nothing is allocated for it.
  f = ParseBytes(GgufTensor({4096, 4096}, 8, 0));
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), AllOf(HasSubstr("tensor w"), HasSubstr("lie beyond its 64 bytes")));
}

TEST(HostileSafetensors, OffsetsNearUint64MaxAreRefused) {
  const std::string dir = FreshTestDir();
  WriteBytes(dir + "/m.safetensors",
             MakeSafetensors(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": )"
                             R"([18446744073709551615, 18446744073709551615]}})",
                             ""));
  auto st = ReadSafetensors(dir + "/m.safetensors");
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.status().message(), AllOf(HasSubstr("m.safetensors: tensor w"), HasSubstr("run past the end")));
}

// llama.* metadata of a 1-layer model with one token_embd tensor [4, 32],
// with `key` replaced by `value`.
absl::StatusOr<GgufFile> LlamaGguf(const std::string& key, GgufValue value) {
  std::vector<GgufKV> meta = {{"general.architecture", GgufValue::Str("llama")},
                              {"llama.embedding_length", GgufValue::U32(32)},
                              {"llama.block_count", GgufValue::U32(1)},
                              {"llama.feed_forward_length", GgufValue::U32(64)},
                              {"llama.attention.head_count", GgufValue::U32(4)},
                              {"llama.context_length", GgufValue::U32(16)}};
  bool replaced = false;
  for (GgufKV& kv : meta) {
    if (kv.key == key) kv.value = value, replaced = true;
  }
  if (!replaced) meta.push_back({key, std::move(value)});
  std::vector<GgufTensorData> tensors = {{"token_embd.weight", {32, 4}, GgmlType::kF32, std::string(512, '\0')}};
  absl::StatusOr<std::string> bytes = SerializeGguf(meta, tensors);
  if (!bytes.ok()) return bytes.status();
  return ParseBytes(*bytes);
}

TEST(HostileGguf, ImplausibleModelMetadataIsRefusedBeforeUse) {
  // block_count sizes the table of expected tensor names: 10^9 blocks in a
  // file of one tensor is refused before anything is built for them.
  auto f = LlamaGguf("llama.block_count", GgufValue::U32(1000000000));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_THAT(GgufToCheckpoint(*f).status().message(),
              AllOf(HasSubstr("hostile.gguf: GGUF metadata llama.block_count = 1000000000"),
                    HasSubstr("only 1 tensors")));
  // Float metadata outside float's range (narrowing it would be undefined).
  f = LlamaGguf("llama.rope.freq_base", GgufValue::F64(1e300));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_THAT(GgufToCheckpoint(*f).status().message(),
              AllOf(HasSubstr("llama.rope.freq_base"), HasSubstr("out of range")));
  f = LlamaGguf("llama.attention.layer_norm_rms_epsilon", GgufValue::F32(std::numeric_limits<float>::quiet_NaN()));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_THAT(GgufToCheckpoint(*f).status().message(),
              AllOf(HasSubstr("llama.attention.layer_norm_rms_epsilon = nan"), HasSubstr("out of range")));
}

TEST(HostileConfig, HugeLayerCountOrOutOfRangeFloatsAreRefused) {
  const std::string dir = FreshTestDir() + "/m";
  ModelConfig c;
  c.dim = 16, c.hidden_dim = 32, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.head_dim = 8;
  c.vocab_size = 16, c.max_seq_len = 16;
  ASSERT_TRUE(SaveModel(MakeRandomModel(c, 3), dir).ok());
  auto config = nlohmann::json::parse(ReadBytes(dir + "/config.json"));
  config["num_hidden_layers"] = 1000000000;  // BuildModel would size 10^9 blocks
  WriteBytes(dir + "/config.json", config.dump());
  EXPECT_THAT(LoadModel(dir).status().message(),
              AllOf(HasSubstr("config n_layers = 1000000000"), HasSubstr("has only 12 tensors")));
  config["num_hidden_layers"] = 1;
  config["rope_theta"] = 1e300;
  WriteBytes(dir + "/config.json", config.dump());
  EXPECT_THAT(LoadModel(dir).status().message(), AllOf(HasSubstr("rope_theta"), HasSubstr("out of range")));
}

// ---- NaN / Inf weights ----------------------------------------------------

ModelConfig TinyConfig() {
  ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 32;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 8;
  c.vocab_size = 16;
  c.max_seq_len = 16;
  return c;
}

// Overwrites element `index` of tensor `name` in an unsharded safetensors
// file with the `size` bytes at `value`.
void Poke(const std::string& path, const std::string& name, int64_t index, const void* value, size_t size) {
  std::string bytes = ReadBytes(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, header_len));
  const uint64_t begin = header.at(name).at("data_offsets")[0].get<uint64_t>();
  std::memcpy(&bytes[8 + header_len + begin + index * size], value, size);
  WriteBytes(path, bytes);
}

TEST(HostileWeights, NanAndInfAreRefusedNamingTensorAndElement) {
  const Model model = MakeRandomModel(TinyConfig(), 7);
  {
    const std::string dir = FreshTestDir() + "/f32";
    ASSERT_TRUE(SaveModel(model, dir).ok());
    ASSERT_TRUE(LoadModel(dir).ok());
    const float nan = std::numeric_limits<float>::quiet_NaN();
    Poke(dir + "/model.safetensors", "model.layers.0.post_attention_layernorm.weight", 3, &nan, 4);
    auto m = LoadModel(dir);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(m.status().message(),
                AllOf(HasSubstr("model.safetensors: tensor model.layers.0.post_attention_layernorm.weight"),
                      HasSubstr("element 3 of [16] is nan"), HasSubstr("non-finite")));
  }
  {
    const std::string dir = FreshTestDir() + "/f16";
    SaveOptions options;
    options.dtype = DType::kF16;
    ASSERT_TRUE(SaveModel(model, dir, options).ok());
    const uint16_t inf = 0x7c00;
    Poke(dir + "/model.safetensors", "model.layers.0.self_attn.q_proj.weight", 21, &inf, 2);
    EXPECT_THAT(LoadModel(dir).status().message(),
                AllOf(HasSubstr("tensor model.layers.0.self_attn.q_proj.weight"),
                      HasSubstr("element 21 of [16, 16] is inf")));
  }
  {
    const std::string dir = FreshTestDir() + "/bf16";
    SaveOptions options;
    options.dtype = DType::kBF16;
    ASSERT_TRUE(SaveModel(model, dir, options).ok());
    const uint16_t minus_inf = 0xff80;
    Poke(dir + "/model.safetensors", "lm_head.weight", 255, &minus_inf, 2);
    EXPECT_THAT(LoadModel(dir).status().message(),
                AllOf(HasSubstr("tensor lm_head.weight"), HasSubstr("element 255 of [16, 16] is -inf")));
  }
}

TEST(HostileWeights, NanInALlama2cCheckpointIsRefused) {
  // run.c layout, dim 8, hidden 16, 1 layer, 2 heads, 1 kv head, vocab 8, seq 4.
  const int32_t hdr[7] = {8, 16, 1, 2, 1, 8, 4};
  std::string bytes(reinterpret_cast<const char*>(hdr), sizeof(hdr));
  const int64_t floats = 8 * 8 + (2 * 8 + 2 * 64 + 2 * 4 * 8 + 3 * 16 * 8) + 8 + 4 * 4;
  for (int64_t i = 0; i < floats; ++i) Put<float>(bytes, 0.01f * static_cast<float>(i % 7));
  const std::string path = FreshTestDir() + "/nan.bin";
  WriteBytes(path, bytes);
  auto ck = ReadLlama2c(path);
  ASSERT_TRUE(ck.ok()) << ck.status();
  ASSERT_TRUE(BuildModel(*std::move(ck)).ok());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(&bytes[sizeof(hdr) + 4 * (8 * 8 + 5)], &nan, 4);  // rms_att[0][5]
  WriteBytes(path, bytes);
  ck = ReadLlama2c(path);
  ASSERT_TRUE(ck.ok()) << ck.status();
  EXPECT_THAT(BuildModel(*std::move(ck)).status().message(),
              AllOf(HasSubstr("nan.bin: tensor model.layers.0.input_layernorm.weight"),
                    HasSubstr("element 5 of [8] is nan")));
}

}  // namespace
}  // namespace squeeze
