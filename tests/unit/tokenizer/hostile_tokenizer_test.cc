// Hostile tokenizer files (issue 11): inputs found by the fuzz targets of
// tests/fuzz (tokenizer_json, tokenizer_bin) pinned once fixed. Each gets a
// precise InvalidArgument naming the file, the field and the reason, and
// nothing is sized by an untrusted number before it is checked.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "workers/engine/tokenizer/hf_tokenizer.h"
#include "workers/engine/tokenizer/llama2c_tokenizer.h"

namespace squeeze {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(HostileTokenizerJson, HugeIdsAreRefusedBeforeTheIdTableIsSized) {
  // One vocab entry with id 2^24 would size a 16.7M-entry table (~0.5 GB).
  auto t = HfBpeTokenizer::FromJson(R"({"model": {"type": "BPE", "vocab": {"a": 16777216}, "merges": []}})",
                                    "huge.json");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(),
              AllOf(HasSubstr("huge.json: model.vocab"), HasSubstr("id 16777216 of \"a\" out of range (0..258")));
  t = HfBpeTokenizer::FromJson(
      R"({"added_tokens": [{"id": 100000, "content": "<x>"}],)"
      R"( "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
      "added.json");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), AllOf(HasSubstr("added.json: added_tokens[0]"), HasSubstr("id 100000")));
  // Ids a little past the declared count (gaps) still load.
  t = HfBpeTokenizer::FromJson(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 5}, "merges": []}})", "gap.json");
  EXPECT_TRUE(t.ok()) << t.status();
}

TEST(HostileTokenizerJson, DeeplyNestedSequencesAreRefused) {
  std::string normalizer = R"({"type": "Prepend", "prepend": "x"})";
  for (int i = 0; i < 1000; ++i) normalizer = R"({"type": "Sequence", "normalizers": [)" + normalizer + "]}";
  auto t = HfBpeTokenizer::FromJson(
      R"({"normalizer": )" + normalizer + R"(, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
      "deep.json");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              AllOf(HasSubstr("deep.json: normalizer.normalizers[0]"), HasSubstr("nested more than 8 levels deep")));
}

TEST(HostileTokenizerBin, EmptyPiecesAreRefused) {
  // Found by tokenizer_bin_fuzz: an empty piece merges with anything
  // (a + "" == a), and Encode's precomputed pairs then disagreed with run.c's
  // merge loop (EncodeReference). The fuzz input is kept in
  // tests/fuzz/regressions/tokenizer_bin/.
  std::string bytes;
  auto put = [&](const void* p, size_t n) { bytes.append(static_cast<const char*>(p), n); };
  const int32_t max_len = 6;
  put(&max_len, 4);
  auto piece = [&](const std::string& s) {
    const float score = 0.0f;
    const int32_t len = static_cast<int32_t>(s.size());
    put(&score, 4);
    put(&len, 4);
    bytes += s;
  };
  piece("<unk>");
  piece("\n<s>\n");
  piece("\n</s>\n");
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    piece(buf);
  }
  ASSERT_TRUE(Llama2cTokenizer::FromBytes(bytes, "ok.bin").ok());
  piece("");
  auto t = Llama2cTokenizer::FromBytes(bytes, "empty.bin");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), AllOf(HasSubstr("empty.bin"), HasSubstr("token 259 is empty")));
}

}  // namespace
}  // namespace squeeze
