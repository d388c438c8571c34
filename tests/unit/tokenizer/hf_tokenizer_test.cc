#include "workers/engine/tokenizer/hf_tokenizer.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "workers/engine/tokenizer/byte_level.h"
#include "workers/engine/tokenizer/unicode.h"

namespace squeeze {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int>;
const std::string kMeta = "\xE2\x96\x81";  // ▁

// Llama-2 layout in miniature. Ids: <unk> 0, <s> 1, </s> 2, <0x00>.. 3..258,
// ▁ 259, a 260, b 261, ▁a 262, ab 263, ▁ab 264, c 265.
json SentencePieceJson() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    vocab[buf] = 3 + b;
  }
  vocab[kMeta] = 259;
  vocab["a"] = 260;
  vocab["b"] = 261;
  vocab[kMeta + "a"] = 262;
  vocab["ab"] = 263;
  vocab[kMeta + "ab"] = 264;
  vocab["c"] = 265;
  json added = json::array();
  for (auto [id, s] : {std::pair{0, "<unk>"}, {1, "<s>"}, {2, "</s>"}}) {
    added.push_back({{"id", id}, {"content", s}, {"special", true}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"single_word", false}});
  }
  return {
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", kMeta}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMeta}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", kMeta}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"fuse_unk", true},
        {"vocab", vocab},
        {"merges", {kMeta + " a", "a b", kMeta + "a b"}}}}};
}

std::unique_ptr<HfBpeTokenizer> Load(const json& j) {
  auto t = HfBpeTokenizer::FromJson(j.dump(), "test.json");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(t).value() : nullptr;
}

TEST(HfSentencePiece, EncodeMergesByRankWithByteFallback) {
  auto t = Load(SentencePieceJson());
  ASSERT_NE(t, nullptr);
  EXPECT_FALSE(t->byte_level());
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  // "▁ab▁c": ▁a (rank 0), then ▁a+b (rank 2) -> ▁ab; "b▁" and "▁c" have no merge.
  EXPECT_EQ(t->Encode("ab c", true), (Ids{1, 264, 259, 265}));
  EXPECT_EQ(t->Encode("ab c", false), (Ids{264, 259, 265}));
  // "d" is not in the vocab: <0x64>; "é" -> <0xC3><0xA9>.
  EXPECT_EQ(t->Encode("d\xC3\xA9", false), (Ids{259, 3 + 0x64, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_TRUE(t->Encode("", false).empty());
  EXPECT_EQ(t->Encode("", true), (Ids{1}));
  // Added tokens are split out first; each text section gets its own ▁.
  EXPECT_EQ(t->Encode("a<s>b", false), (Ids{262, 1, 259, 261}));
}

TEST(HfSentencePiece, DecodeReversesIt) {
  auto t = Load(SentencePieceJson());
  ASSERT_NE(t, nullptr);
  for (const std::string s : {"ab c", "d\xC3\xA9  ab", "  lead", "x\ny"}) {
    EXPECT_EQ(t->Decode(t->Encode(s, true)), s);
    const Ids ids = t->Encode(s, true);
    std::string streamed;
    for (size_t k = 1; k < ids.size(); ++k) streamed += t->DecodePiece(ids[k - 1], ids[k]);
    EXPECT_EQ(streamed, s);
  }
}

TEST(HfSentencePiece, UnknownWithoutByteFallbackFusesUnk) {
  json j = SentencePieceJson();
  j["model"]["byte_fallback"] = false;
  auto t = Load(j);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->Encode("ddc", false), (Ids{259, 0, 265}));  // "dd" -> one <unk>
}

TEST(HfSentencePiece, MetaspacePreTokenizer) {
  json j = SentencePieceJson();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", kMeta},
                        {"prepend_scheme", "first"}, {"split", false}};
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "first"}};
  auto t = Load(j);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->Encode("ab c", true), (Ids{1, 264, 259, 265}));
  EXPECT_EQ(t->Decode(t->Encode("ab c", true)), "ab c");
}

// GPT-2 layout in miniature: ids 0..255 are the byte stand-ins in byte order,
// 256 "Ġa", 257 "hi", 258 "<|endoftext|>".
json ByteLevelJson() {
  json vocab;
  for (int b = 0; b < 256; ++b) vocab[BytesToByteLevel(std::string(1, static_cast<char>(b)))] = b;
  vocab["\xC4\xA0" "a"] = 256;
  vocab["hi"] = 257;
  vocab["<|endoftext|>"] = 258;
  return {{"added_tokens", {{{"id", 258}, {"content", "<|endoftext|>"}, {"special", true}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"post_processor", {{"type", "ByteLevel"}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"\xC4\xA0 a", "h i"}}}}};
}

TEST(HfByteLevel, EncodeAndDecode) {
  auto t = Load(ByteLevelJson());
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->byte_level());
  EXPECT_EQ(t->eos_id(), 258);
  // "hi a" splits as "hi", " a": both merge.
  EXPECT_EQ(t->Encode("hi a", false), (Ids{257, 256}));
  // "  a": "\s+(?!\S)" takes one space, then " a".
  EXPECT_EQ(t->Encode("  a", false), (Ids{' ', 256}));
  EXPECT_EQ(t->Encode("hi<|endoftext|>", false), (Ids{257, 258}));
  const std::string s = "hi a\n\t\xE4\xB8\xAD\xF0\x9F\x98\x80 \xFF";
  EXPECT_EQ(t->Decode(t->Encode(s, false)), s);  // byte-level is lossless
  EXPECT_EQ(t->Decode({257, 258, 256}), "hi a");  // special tokens omitted
}

TEST(HfByteLevel, SplitRegexAndNfcAsLlama3AndQwen2) {
  // Llama-3 / Qwen2 layout: Split(regex) then ByteLevel without its own regex.
  const std::string llama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  std::string qwen2 = llama3;
  qwen2.replace(qwen2.find("{1,3}"), 5, "");
  json j = ByteLevelJson();
  j["model"]["vocab"]["12"] = 259;
  j["model"]["merges"].push_back("1 2");
  j["model"]["vocab"][BytesToByteLevel("\xC3\xA9")] = 260;  // é as one token
  j["model"]["merges"].push_back("\xC3\x83 \xC2\xA9");  // its byte stand-ins Ã ©
  for (const auto& [pattern, want_12] : {std::pair{llama3, Ids{259}}, {qwen2, Ids{'1', '2'}}}) {
    j["normalizer"] = {{"type", "NFC"}};
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
    auto t = Load(j);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->Encode("12", false), want_12);
    // NFC first: e + combining acute becomes é, one token.
    EXPECT_EQ(t->Encode("e\xCC\x81", false), (Ids{260}));
    EXPECT_EQ(t->Decode(t->Encode("hi 12\n\n x", false)), "hi 12\n\n x");
  }
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+";
  auto other = HfBpeTokenizer::FromJson(j.dump(), "split.json");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(other.status().message().find("pre_tokenizer.pretokenizers[0]"), std::string::npos)
      << other.status();
}

TEST(HfTokenizerJson, RejectsWhatItCannotDo) {
  const auto code_and_message = [](const json& j) {
    auto t = HfBpeTokenizer::FromJson(j.dump(), "bad.json");
    EXPECT_FALSE(t.ok());
    return t.ok() ? std::make_pair(absl::StatusCode::kOk, std::string())
                  : std::make_pair(t.status().code(), std::string(t.status().message()));
  };
  json j = SentencePieceJson();
  j["model"]["type"] = "WordPiece";
  auto [c1, m1] = code_and_message(j);
  EXPECT_EQ(c1, absl::StatusCode::kUnimplemented);
  EXPECT_NE(m1.find("model.type"), std::string::npos) << m1;

  j = SentencePieceJson();
  j["normalizer"] = {{"type", "NFKC"}};
  auto [c2, m2] = code_and_message(j);
  EXPECT_EQ(c2, absl::StatusCode::kUnimplemented);
  EXPECT_NE(m2.find("normalizer.type"), std::string::npos) << m2;

  j = SentencePieceJson();
  j["model"]["merges"].push_back("zz q");
  auto [c3, m3] = code_and_message(j);
  EXPECT_NE(m3.find("model.merges"), std::string::npos) << m3;

  j = SentencePieceJson();
  j["model"]["vocab"]["a"] = "one";
  auto [c4, m4] = code_and_message(j);
  EXPECT_NE(m4.find("model.vocab"), std::string::npos) << m4;

  auto t = HfBpeTokenizer::FromJson("{\"model\": [1, 2", "trunc.json");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("trunc.json"), std::string::npos);
}

TEST(HfTokenizerJson, FindAndLoadByContent) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ("hf_tok_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << SentencePieceJson().dump();
  std::ofstream(dir / "config.json") << "{}";
  auto path = FindTokenizerFor(dir.string());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, (dir / "tokenizer.json").string());
  auto t = LoadTokenizer(*path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_NE(dynamic_cast<HfBpeTokenizer*>(t->get()), nullptr);
  EXPECT_EQ((*t)->Encode("ab c", true), (Ids{1, 264, 259, 265}));
  auto from_dir = LoadTokenizer(dir.string());
  ASSERT_TRUE(from_dir.ok()) << from_dir.status();

  // A GPT-2 vocab.json without merges beside it is a clear error.
  std::ofstream(dir / "vocab.json") << "{\"a\": 0}";
  auto no_merges = LoadTokenizer((dir / "vocab.json").string());
  ASSERT_FALSE(no_merges.ok());
  EXPECT_NE(no_merges.status().message().find("merges.txt"), std::string::npos);

  std::filesystem::remove(dir / "tokenizer.json");
  auto none = FindTokenizerFor(dir.string());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("tokenizer.json"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace squeeze
