#include "workers/engine/tokenizer/llama2c_tokenizer.h"

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "workers/engine/core/file_util.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze {
namespace {

const std::string kShared = SQUEEZE_SHARED_DIR;
const std::string kTok512 = kShared + "/models/stories260K/tok512.bin";

// A tokenizer.bin in memory: <unk>, <s>, </s>, 256 byte pieces, then `extra`.
std::string MakeTokenizerBin(const std::vector<std::pair<std::string, float>>& extra) {
  std::vector<std::pair<std::string, float>> all = {{"<unk>", 0}, {"\n<s>\n", 0}, {"\n</s>\n", 0}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    all.emplace_back(buf, 0.0f);
  }
  all.insert(all.end(), extra.begin(), extra.end());
  std::string out;
  const auto put = [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  int32_t max_len = 16;
  put(&max_len, 4);
  for (const auto& [piece, score] : all) {
    const int32_t len = static_cast<int32_t>(piece.size());
    put(&score, 4);
    put(&len, 4);
    put(piece.data(), piece.size());
  }
  return out;
}

std::unique_ptr<Llama2cTokenizer> Synthetic() {
  // Ids: 259 " ", 260 "a", 261 "b", 262 "c", 263 "ab" (1), 264 "bc" (2),
  // 265 "abc" (0.5), 266 "x", 267 "xx" (3).
  auto t = Llama2cTokenizer::FromBytes(
      MakeTokenizerBin({{" ", -10}, {"a", -10}, {"b", -10}, {"c", -10}, {"ab", 1}, {"bc", 2},
                        {"abc", 0.5}, {"x", -10}, {"xx", 3}}),
      "synthetic");
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(t).value();
}

TEST(Llama2cTokenizer, MergesByHighestScore) {
  auto t = Synthetic();
  // " abc": pairs " a" (none), ab (1), bc (2): bc wins; then a+bc = abc (0.5).
  EXPECT_EQ(t->Encode("abc", false), (std::vector<int>{259, 265}));
  EXPECT_EQ(t->Encode("abc", true), (std::vector<int>{1, 259, 265}));
  // " ab": only ab.
  EXPECT_EQ(t->Encode("ab", false), (std::vector<int>{259, 263}));
  // " xxx": equal scores, the leftmost pair merges first.
  EXPECT_EQ(t->Encode("xxx", false), (std::vector<int>{259, 267, 266}));
  // Unknown characters fall back to bytes (+3): "d" = 0x64 -> 103; "é" = C3 A9.
  EXPECT_EQ(t->Encode("d\xC3\xA9", false), (std::vector<int>{259, 0x64 + 3, 0xC3 + 3, 0xA9 + 3}));
  EXPECT_TRUE(t->Encode("", false).empty());
  EXPECT_EQ(t->Encode("", true), std::vector<int>{1});
}

TEST(Llama2cTokenizer, DecodesLikeRunC) {
  auto t = Synthetic();
  EXPECT_EQ(t->DecodePiece(1, 259), "");        // leading space stripped after BOS
  EXPECT_EQ(t->DecodePiece(263, 259), " ");
  EXPECT_EQ(t->DecodePiece(5, 0x41 + 3), "A");  // <0x41>
  EXPECT_EQ(t->Decode({1, 259, 265, 2}), "abc");
  EXPECT_EQ(t->Decode(t->Encode("ab d\xC3\xA9 xxx", true)), "ab d\xC3\xA9 xxx");
}

TEST(Llama2cTokenizer, RejectsMalformedFiles) {
  const std::string good = MakeTokenizerBin({{" ", -1}});
  for (size_t cut : {size_t{2}, size_t{4 + 5}, good.size() - 1}) {
    auto t = Llama2cTokenizer::FromBytes(good.substr(0, cut), "cut.bin");
    ASSERT_FALSE(t.ok()) << cut;
    EXPECT_NE(t.status().message().find("cut.bin"), std::string::npos) << t.status();
  }
  std::string bad_len = good;
  const int32_t huge = 1000;
  std::memcpy(&bad_len[4 + 4], &huge, 4);  // token 0's length
  auto t = Llama2cTokenizer::FromBytes(bad_len, "len.bin");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("token 0"), std::string::npos) << t.status();
  auto missing = LoadTokenizer("/nonexistent/tokenizer.bin");
  EXPECT_FALSE(missing.ok());
}

class Stories260K : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kTok512)) GTEST_SKIP() << kTok512 << " absent (no shared/ dir)";
    auto t = Llama2cTokenizer::FromFile(kTok512);
    ASSERT_TRUE(t.ok()) << t.status();
    tok_ = std::move(t).value();
  }
  std::unique_ptr<Llama2cTokenizer> tok_;
};

TEST_F(Stories260K, Vocab) {
  EXPECT_EQ(tok_->vocab_size(), 512);
  EXPECT_EQ(tok_->max_token_length(), 7);
  EXPECT_EQ(tok_->piece(3), "<0x00>");
  EXPECT_EQ(tok_->piece(258), "<0xFF>");
  EXPECT_EQ(tok_->PieceId(" the"), 265);
}

TEST_F(Stories260K, KnownEncodings) {
  // Worked by hand from tok512.bin's scores:
  // "the": [" ",t,h,e] -> " t"(259, -0) beats "he"(260, -1) -> [" t",h,e];
  //   " th"(308, -49) loses to "he"(-1) -> [" t","he"] -> " the"(265).
  EXPECT_EQ(tok_->Encode("the", true), (std::vector<int>{1, 265}));
  // "Lily": [" ",L,i,l,y]: "il"(290,-31) > " L"(307,-48); then " L" (no "Lil");
  //   then "ily"(310,-51) -> [" L","ily"] -> " Lily"(317).
  EXPECT_EQ(tok_->Encode("Lily", false), (std::vector<int>{317}));
  // "中" is not a piece: bytes E4 B8 AD + 3.
  const int space = tok_->PieceId(" ");
  ASSERT_GE(space, 0);
  EXPECT_EQ(tok_->Encode("\xE4\xB8\xAD", false),
            (std::vector<int>{space, 0xE4 + 3, 0xB8 + 3, 0xAD + 3}));
  // "€" (E2 82 AC) is a piece of its own (id 503).
  EXPECT_EQ(tok_->PieceId("\xE2\x82\xAC"), 503);
  EXPECT_EQ(tok_->Encode("\xE2\x82\xAC", false), (std::vector<int>{space, 503}));
}

TEST_F(Stories260K, FastMatchesRunCAndRoundTrips) {
  std::vector<std::string> texts = {
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.",
      "Tom and Sue went to the park.\nThey had fun!", "  leading", "trailing  ", "a\tb\n\nc",
      "caf\xC3\xA9 na\xC3\xAFve \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 1234567890",
      "\x80\x80 stray continuation bytes \xC3", "<s> </s> <0x41> \\ % ~"};
  std::mt19937 rng(42);
  const std::vector<std::string> atoms = {"the", " ", "dog", "Lily", ",", ".", "!", "\n", "7",
                                          "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x90\xB6", "'s"};
  for (int i = 0; i < 300; ++i) {
    std::string s;
    for (int k = 1 + rng() % 30; k > 0; --k) s += atoms[rng() % atoms.size()];
    texts.push_back(s);
  }
  int checked = 0;
  for (const std::string& s : texts) {
    const std::vector<int> ids = tok_->Encode(s, true);
    ASSERT_EQ(ids, tok_->EncodeReference(s, true)) << s;
    EXPECT_EQ(tok_->Decode(ids), s);
    // Streaming decode agrees with whole decode.
    std::string streamed;
    for (size_t k = 1; k < ids.size(); ++k) streamed += tok_->DecodePiece(ids[k - 1], ids[k]);
    EXPECT_EQ(streamed, s);
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(texts.size()));
}

TEST_F(Stories260K, TinyStoriesTextMatchesRunC) {
  const std::string path = kShared + "/data/tinystories/valid.txt";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " absent";
  auto text = ReadFileToString(path);
  ASSERT_TRUE(text.ok()) << text.status();
  // run.c's loop is O(n^2): compare on a 1,500-byte slice; the fast path
  // must round-trip the whole file.
  const std::string slice = text->substr(0, 1500);
  EXPECT_EQ(tok_->Encode(slice, true), tok_->EncodeReference(slice, true));
  const std::vector<int> ids = tok_->Encode(*text, true);
  EXPECT_GT(ids.size(), text->size() / 4);  // a 512-token vocab: ~2 bytes/token
  EXPECT_EQ(tok_->Decode(ids), *text);
}

TEST_F(Stories260K, FindAndLoadByContent) {
  const std::string dir = kShared + "/models/stories260K";
  auto bin_tok = FindTokenizerFor(dir + "/stories260K.bin");
  ASSERT_TRUE(bin_tok.ok()) << bin_tok.status();
  EXPECT_EQ(*bin_tok, kTok512);
  auto hf_tok = FindTokenizerFor(dir + "/hf");
  ASSERT_TRUE(hf_tok.ok()) << hf_tok.status();
  EXPECT_EQ(*hf_tok, dir + "/hf/tok512.bin");
  auto t = LoadTokenizer(*hf_tok);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->vocab_size(), 512);
  EXPECT_EQ((*t)->Encode("the", true), (std::vector<int>{1, 265}));
  auto none = FindTokenizerFor(dir + "/does-not-exist");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace squeeze
