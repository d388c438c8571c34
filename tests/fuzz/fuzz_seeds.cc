// fuzz_seeds OUT_DIR: writes the generated seed corpora of the fuzz targets,
// one directory per target (OUT_DIR/<target>/), from the real writers on tiny
// random models: WriteSafetensors (the tensors SaveModel writes, F32/F16/BF16,
// and every other dtype), WriteGguf + QuantizeMatrix (llama.cpp's llama
// layout in F32/Q8_0/Q4_0/Q4_1, k-quant blocks), HfConfigJson, a llama2.c
// .bin in run.c's layout (shared and unshared classifier), tokenizer.json in
// the SentencePiece / byte-level / Llama-3 forms, and the byte tokenizer.bin.
// It links only the readers' sources (no model code), like the tier-1 targets.
// scripts/stress-fuzz.sh adds the real files (stories260K, deploy/examples).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/fuzz/fuzz_seed_model.h"
#include "workers/engine/formats/ggml_blocks.h"
#include "workers/engine/formats/gguf.h"
#include "workers/engine/formats/safetensors.h"
#include "workers/engine/tokenizer/byte_level.h"
#include "workers/engine/tokenizer/llama2c_byte_vocab.h"

namespace squeeze::fuzz {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

void Die(const std::string& what) {
  std::fprintf(stderr, "fuzz_seeds: %s\n", what.c_str());
  std::exit(1);
}
void Check(const absl::Status& s, const std::string& what) {
  if (!s.ok()) Die(absl::StrCat(what, ": ", s.ToString()));
}
void Write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) Die("cannot write " + path.string());
}
std::vector<float> Random(int64_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

// HF tensor names and [out, in] shapes of `c` (untied head, no biases).
std::vector<std::pair<std::string, std::vector<int64_t>>> HfTensors(const ModelConfig& c) {
  const int64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  std::vector<std::pair<std::string, std::vector<int64_t>>> out = {
      {"model.embed_tokens.weight", {c.vocab_size, c.dim}}, {"model.norm.weight", {c.dim}}};
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, c.dim}});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    out.push_back({p + "input_layernorm.weight", {c.dim}});
    out.push_back({p + "post_attention_layernorm.weight", {c.dim}});
    out.push_back({p + "self_attn.q_proj.weight", {q, c.dim}});
    out.push_back({p + "self_attn.k_proj.weight", {kv, c.dim}});
    out.push_back({p + "self_attn.v_proj.weight", {kv, c.dim}});
    out.push_back({p + "self_attn.o_proj.weight", {c.dim, q}});
    out.push_back({p + "mlp.gate_proj.weight", {c.hidden_dim, c.dim}});
    out.push_back({p + "mlp.up_proj.weight", {c.hidden_dim, c.dim}});
    out.push_back({p + "mlp.down_proj.weight", {c.dim, c.hidden_dim}});
  }
  return out;
}

// The tiny model of SeedConfig() as model.safetensors (what SaveModel writes
// for a dense model), in F32 / F16 / BF16, plus one file of every other dtype.
void SafetensorsSeeds(const fs::path& out) {
  uint32_t seed = 1;
  std::vector<TensorView> keep;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    std::vector<SafetensorsEntry> entries;
    for (const auto& [name, shape] : HfTensors(SeedConfig())) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      TensorView v = OwnedF32(Random(n, seed++, 0.3f), shape);
      entries.push_back(StoredAs(name, v, dtype));
      keep.push_back(std::move(v));
    }
    Check(WriteSafetensors((out / absl::StrCat("model_", DTypeName(dtype), ".safetensors")).string(), entries,
                           {{"format", "pt"}}),
          "WriteSafetensors");
  }
  std::map<std::string, TensorView> others;
  const std::string bytes(64, '\x01');
  auto raw = std::make_shared<std::string>(bytes);
  for (DType d : {DType::kF64, DType::kI64, DType::kI32, DType::kI16, DType::kI8, DType::kU8, DType::kBool}) {
    TensorView v;
    v.dtype = d;
    v.shape = {2, static_cast<int64_t>(8 / DTypeSize(d))};
    v.data = raw->data();
    v.nbytes = 16;
    v.owner = raw;
    others[absl::StrCat("t.", DTypeName(d))] = v;
  }
  Check(WriteSafetensorsMap((out / "dtypes.safetensors").string(), others), "WriteSafetensorsMap");
}

// GGUF files laid out as llama.cpp's llama models (llama.* metadata, blk.N.*
// tensors, a "llama" tokenizer of the byte vocab) in F32 / Q8_0 / Q4_0 /
// Q4_1, and one with Q4_K / Q6_K / F16 tensors and 64-byte alignment.
void GgufSeeds(const fs::path& out) {
  const ModelConfig c = GgufSeedConfig();
  std::vector<GgufKV> meta = {
      {"general.architecture", GgufValue::Str("llama")},
      {"llama.embedding_length", GgufValue::U32(c.dim)},
      {"llama.block_count", GgufValue::U32(c.n_layers)},
      {"llama.feed_forward_length", GgufValue::U32(c.hidden_dim)},
      {"llama.attention.head_count", GgufValue::U32(c.n_heads)},
      {"llama.attention.head_count_kv", GgufValue::U32(c.n_kv_heads)},
      {"llama.context_length", GgufValue::U32(c.max_seq_len)},
      {"llama.rope.freq_base", GgufValue::F32(10000.0f)},
      {"llama.attention.layer_norm_rms_epsilon", GgufValue::F32(1e-5f)},
      {"tokenizer.ggml.model", GgufValue::Str("llama")},
      {"tokenizer.ggml.bos_token_id", GgufValue::U32(1)},
      {"tokenizer.ggml.eos_token_id", GgufValue::U32(2)},
  };
  {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<int64_t> types = {2, 3, 3};
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      tokens.push_back(buf);
      types.push_back(6);
    }
    meta.push_back({"tokenizer.ggml.tokens", GgufValue::StrArray(tokens)});
    meta.push_back({"tokenizer.ggml.scores", GgufValue::F32Array(std::vector<float>(tokens.size(), 0.0f))});
    meta.push_back({"tokenizer.ggml.token_type", GgufValue::IntArray(GgufType::kInt32, types)});
  }
  // HF [out, in] -> GGUF name, ne = {in, out}.
  const int64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"token_embd.weight", {c.vocab_size, c.dim}}, {"output_norm.weight", {c.dim}},
      {"blk.0.attn_norm.weight", {c.dim}},          {"blk.0.ffn_norm.weight", {c.dim}},
      {"blk.0.attn_q.weight", {q, c.dim}},          {"blk.0.attn_k.weight", {kv, c.dim}},
      {"blk.0.attn_v.weight", {kv, c.dim}},         {"blk.0.attn_output.weight", {c.dim, q}},
      {"blk.0.ffn_gate.weight", {c.hidden_dim, c.dim}}, {"blk.0.ffn_up.weight", {c.hidden_dim, c.dim}},
      {"blk.0.ffn_down.weight", {c.dim, c.hidden_dim}}};
  uint32_t seed = 10;
  for (GgmlType type : {GgmlType::kF32, GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1}) {
    std::vector<GgufTensorData> tensors;
    for (const auto& [name, shape] : shapes) {
      const bool matrix = shape.size() == 2;
      const int64_t rows = matrix ? shape[0] : 1, cols = matrix ? shape[1] : shape[0];
      const std::vector<float> w = Random(rows * cols, seed++, 0.3f);
      const GgmlType t = matrix ? type : GgmlType::kF32;  // norms stay F32, as llama.cpp writes them
      GgufTensorData d;
      d.name = name;
      d.ne = matrix ? std::vector<int64_t>{cols, rows} : std::vector<int64_t>{cols};
      d.type = t;
      absl::StatusOr<std::string> bytes = QuantizeMatrix(t, w.data(), rows, cols);
      Check(bytes.status(), "QuantizeMatrix");
      d.bytes = *bytes;
      tensors.push_back(std::move(d));
    }
    Check(WriteGguf((out / absl::StrCat("llama_", GgmlTypeName(type), ".gguf")).string(), meta, tensors),
          "WriteGguf");
  }
  std::vector<GgufTensorData> tensors;
  for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kF16}) {
    const std::vector<float> w = Random(2 * 256, seed++, 0.3f);
    GgufTensorData d;
    d.name = absl::StrCat("blk.0.", GgmlTypeName(type));
    d.ne = {256, 2};
    d.type = type;
    absl::StatusOr<std::string> bytes = QuantizeMatrix(type, w.data(), 2, 256);
    Check(bytes.status(), "QuantizeMatrix");
    d.bytes = *bytes;
    tensors.push_back(std::move(d));
  }
  Check(WriteGguf((out / "kquants.gguf").string(),
                  {{"general.architecture", GgufValue::Str("llama")}, {"general.alignment", GgufValue::U32(64)}},
                  tensors),
        "WriteGguf");
}

// run.c's layout: 7 int32 then fp32 tensors (see workers/engine/formats/llama2c.h).
std::string Llama2cBin(bool shared) {
  const int32_t dim = 8, hidden = 16, layers = 1, heads = 2, kv_heads = 1, vocab = 8, seq = 4;
  const int64_t hd = dim / heads, kv_dim = hd * kv_heads;
  std::string out;
  for (int32_t v : {dim, hidden, layers, heads, kv_heads, shared ? vocab : -vocab, seq}) {
    out.append(reinterpret_cast<const char*>(&v), 4);
  }
  const int64_t floats = vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * kv_dim * dim + 3 * hidden * dim) +
                         dim + seq * hd + (shared ? 0 : vocab * dim);
  std::mt19937 rng(shared ? 4 : 5);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  for (int64_t i = 0; i < floats; ++i) {
    const float x = normal(rng);
    out.append(reinterpret_cast<const char*>(&x), 4);
  }
  return out;
}

// Miniature Llama-2 (SentencePiece BPE with byte fallback) and GPT-2
// (byte-level BPE) tokenizer.json files.
std::string SentencePieceJson() {
  const std::string meta = "\xE2\x96\x81";
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    vocab[buf] = 3 + b;
  }
  vocab[meta] = 259;
  vocab["a"] = 260;
  vocab["b"] = 261;
  vocab[meta + "a"] = 262;
  vocab["ab"] = 263;
  json added = json::array();
  for (auto [id, s] : {std::pair{0, "<unk>"}, {1, "<s>"}, {2, "</s>"}}) {
    added.push_back({{"id", id}, {"content", s}, {"special", true}, {"lstrip", false}, {"rstrip", false}});
  }
  const json j = {
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", meta}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", meta}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", meta}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"fuse_unk", true}, {"vocab", vocab},
        {"merges", {meta + " a", "a b", meta + "a b"}}}}};
  return j.dump(1);
}

std::string ByteLevelJson(bool split_regex) {
  json vocab;
  for (int b = 0; b < 256; ++b) vocab[BytesToByteLevel(std::string(1, static_cast<char>(b)))] = b;
  vocab["\xC4\xA0" "a"] = 256;
  vocab["hi"] = 257;
  vocab["<|endoftext|>"] = 258;
  json j = {{"added_tokens", {{{"id", 258}, {"content", "<|endoftext|>"}, {"special", true}}}},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
            {"post_processor", {{"type", "ByteLevel"}}},
            {"decoder", {{"type", "ByteLevel"}}},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"\xC4\xA0 a", "h i"}}}}};
  if (split_regex) {  // Llama-3 layout: Split(regex) + ByteLevel(use_regex false), NFC
    const std::string llama3 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    j["normalizer"] = {{"type", "NFC"}};
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", llama3}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  }
  return j.dump(1);
}

}  // namespace
}  // namespace squeeze::fuzz

int main(int argc, char** argv) {
  using namespace squeeze::fuzz;
  if (argc != 2) Die("usage: fuzz_seeds OUT_DIR");
  const fs::path out = argv[1];
  for (const char* t : {"safetensors", "gguf", "llama2c", "hf_config", "tokenizer_json", "tokenizer_bin", "recipe"}) {
    fs::create_directories(out / t);
  }
  SafetensorsSeeds(out / "safetensors");
  GgufSeeds(out / "gguf");
  Write(out / "hf_config" / "tiny.json", SeedConfigJson());
  {
    squeeze::ModelConfig c = GgufSeedConfig();
    c.model_type = "qwen2";
    c.architecture = "Qwen2ForCausalLM";
    c.attention_bias = true;
    c.layer_n_heads = {2};
    c.layer_n_kv_heads = {1};
    c.layer_hidden_dim = {16};
    Write(out / "hf_config" / "qwen2_pruned.json", squeeze::HfConfigJson(c));
  }
  Write(out / "llama2c" / "shared.bin", Llama2cBin(true));
  Write(out / "llama2c" / "unshared.bin", Llama2cBin(false));
  Write(out / "tokenizer_json" / "sentencepiece.json", SentencePieceJson());
  Write(out / "tokenizer_json" / "byte_level.json", ByteLevelJson(false));
  Write(out / "tokenizer_json" / "llama3_split.json", ByteLevelJson(true));
  Write(out / "tokenizer_bin" / "byte_vocab.bin", squeeze::Llama2cByteVocabBin());
  std::printf("fuzz_seeds: wrote seeds under %s\n", out.c_str());
  return 0;
}
