// The real consumer: llama.cpp (npm node-llama-cpp, prebuilt CPU binaries,
// driven by tests/node/gguf_llamacpp.mjs) loads our GGUF exports of
// stories260K in F32, Q8_0 and Q4_0.
//  - F32: its greedy text equals our engine's, token for token; its
//    tokenizer (built from our tokenizer.ggml.* metadata) gives our ids.
//  - every type: per-token log-probabilities of the same ids agree with our
//    engine running the same file (weights = the dequantized blocks).
// Tolerances (measured values in the README's export section):
//  - F32 (llama.cpp's KV cache set to F32 too): only the summation order
//    differs: |mean NLL difference| <= 1e-4 nats, each token <= 2e-3 nats.
//  - Q8_0 / Q4_0: llama.cpp's CPU kernels also quantize the activations to
//    Q8_0 (32-value blocks, one fp16 scale) before the integer dot products,
//    while our engine multiplies the exact dequantized weights in fp32:
//    |mean NLL difference| <= 0.01 nats (Q8_0) / 0.02 nats (Q4_0), i.e.
//    perplexity within 1% / 2%, each token <= 0.5 nats (measured: 0.16 /
//    0.27; a wrong layout or permutation gives nats, not tenths).
// A second test checks Q4_K / Q6_K the same way on a random 256-wide model
// (stories260K's rows of 64 / 172 do not fit 256-value super-blocks).
// A third runs a structurally pruned stories260K (blocks of different
// widths, written as llama.cpp's "deci" architecture with per-block arrays)
// with the F32 tolerances and an identical greedy text.
// Skips (with the reason) without ../shared, node or tests/node/node_modules.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/common/synthetic_inputs.h"
#include "tests/unit/formats/test_util.h"
#include "workers/engine/eval/generate.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/engine/tokenizer/tokenizer.h"
#include "workers/methods/prune/structured.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const fs::path kNodeDir = fs::path(SQUEEZE_SOURCE_DIR) / "tests" / "node";
const std::string kStories = std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K";
const std::string kText = std::string(SQUEEZE_SHARED_DIR) + "/data/tinystories/train.txt";

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string SkipReason() {
  if (!fs::exists(kStories + "/stories260K.bin") || !fs::exists(kText)) {
    return kStories + " or " + kText + " is absent (../shared)";
  }
  if (std::system("command -v node >/dev/null 2>&1") != 0) return "node is not installed";
  if (!fs::exists(kNodeDir / "node_modules" / "node-llama-cpp" / "package.json") ||
      !fs::exists(kNodeDir / "node_modules" / "@node-llama-cpp" / "linux-x64" / "package.json")) {
    return "tests/node/node_modules/node-llama-cpp is missing: run `npm ci` in tests/node "
           "(scripts/install-deps.sh does)";
  }
  return "";
}

// Runs the node script; returns its JSON output (null after a failure).
json RunLlamaCpp(const json& request, const std::string& dir) {
  const std::string req = dir + "/request.json", out = dir + "/out.json", log = dir + "/node.log";
  testing_util::WriteBytes(req, request.dump());
  const std::string cmd = absl::StrCat("node ", Quote((kNodeDir / "gguf_llamacpp.mjs").string()), " ", Quote(req),
                                       " ", Quote(out), " > ", Quote(log), " 2>&1");
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    ADD_FAILURE() << "llama.cpp run failed (" << rc << "): " << cmd << "\n" << testing_util::ReadBytes(log).substr(0, 4000);
    return nullptr;
  }
  json j = json::parse(testing_util::ReadBytes(out), nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "unparsable " << out;
  return j;
}

// log p(ids[i] | ids[<i]) for i >= 1, from one forward pass.
std::vector<double> OurLogprobs(const Model& m, const std::vector<int>& ids) {
  KVCache cache(m, static_cast<int>(ids.size()));
  MatrixRM logits;
  EXPECT_TRUE(Forward(m, ids, 0, cache, logits).ok());
  std::vector<double> out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    double mx = -INFINITY;
    for (int v = 0; v < logits.cols(); ++v) mx = std::max(mx, static_cast<double>(logits(i, v)));
    double sum = 0;
    for (int v = 0; v < logits.cols(); ++v) sum += std::exp(logits(i, v) - mx);
    out.push_back(logits(i, ids[i + 1]) - mx - std::log(sum));
  }
  return out;
}

struct TypeCase {
  GgmlType type;
  double mean_tol;   // |mean NLL difference|, nats per token
  double token_tol;  // max |log-prob difference| of one token
};

// One llama.cpp process runs the three exports (starting it costs seconds).
TEST(GgufLlamaCppTest, LlamaCppAgreesWithOurEngineOnF32Q8_0AndQ4_0) {
  const std::string skip = SkipReason();
  if (!skip.empty()) GTEST_SKIP() << skip;
  const TypeCase cases[] = {{GgmlType::kF32, 1e-4, 2e-3}, {GgmlType::kQ8_0, 0.01, 0.5}, {GgmlType::kQ4_0, 0.02, 0.5}};
  const std::string dir = testing_util::FreshTestDir();
  auto src = LoadModel(kStories + "/stories260K.bin");
  ASSERT_TRUE(src.ok()) << src.status();
  std::vector<std::string> paths;
  std::vector<GgufModel> ours;
  std::vector<uint64_t> bytes;
  for (const TypeCase& tc : cases) {
    paths.push_back(absl::StrCat(dir, "/stories260K-", GgmlTypeName(tc.type), ".gguf"));
    auto exported = ExportGguf(*src, kStories + "/tok512.bin", paths.back(), {tc.type, true, "stories260K"});
    ASSERT_TRUE(exported.ok()) << exported.status();
    bytes.push_back(exported->bytes);
    auto loaded = LoadGgufModel(paths.back());
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ours.push_back(std::move(loaded).value());
  }
  const Tokenizer& tok = *ours[0].tokenizer;

  // The scored text: the start of TinyStories, 192 tokens with BOS.
  const std::string text = testing_util::ReadBytes(kText).substr(0, 1000);
  std::vector<int> ids = tok.Encode(text, true);
  ids.resize(std::min<size_t>(ids.size(), 192));
  const std::vector<std::string> texts = {"Once upon a time, there was a little girl named Lily.",
                                          " She loved to play outside\nin the park!", text.substr(0, 300)};
  GenerateOptions gen;
  gen.max_tokens = 60;
  json request = {{"models", paths},    {"prompt_ids", {1}}, {"max_tokens", gen.max_tokens},
                  {"stop_ids", {1, 2}}, {"score_ids", ids},  {"texts", texts}};
  const json out = RunLlamaCpp(request, dir);
  ASSERT_FALSE(out.is_null());
  ASSERT_EQ(out["results"].size(), 3u);
  std::cout << "[ gguf ] llama.cpp start " << out["start_seconds"] << " s\n";

  for (size_t k = 0; k < 3; ++k) {
    const TypeCase& tc = cases[k];
    const json& r = out["results"][k];
    SCOPED_TRACE(GgmlTypeName(tc.type));
    // Log-probabilities of the same ids.
    const std::vector<double> mine = OurLogprobs(ours[k].model, ids);
    const std::vector<double> theirs = r["logprobs"].get<std::vector<double>>();
    ASSERT_EQ(theirs.size(), mine.size());
    double sum_mine = 0, sum_theirs = 0, max_diff = 0;
    for (size_t i = 0; i < mine.size(); ++i) {
      sum_mine -= mine[i];
      sum_theirs -= theirs[i];
      max_diff = std::max(max_diff, std::fabs(mine[i] - theirs[i]));
    }
    const double n = static_cast<double>(mine.size());
    std::cout << "[ gguf ] " << GgmlTypeName(tc.type) << ": " << bytes[k] << " bytes, " << mine.size()
              << " tokens, ours nll/token " << sum_mine / n << " (ppl " << std::exp(sum_mine / n) << "), llama.cpp "
              << sum_theirs / n << " (ppl " << std::exp(sum_theirs / n) << "), max per-token |diff| " << max_diff
              << ", llama.cpp run " << r["seconds"] << " s\n";
    EXPECT_LE(std::fabs(sum_mine - sum_theirs) / n, tc.mean_tol);
    EXPECT_LE(max_diff, tc.token_tol);

    // Greedy text: identical for F32 (and reported for the others).
    auto greedy = Generate(ours[k].model, tok, {1}, gen, nullptr);
    ASSERT_TRUE(greedy.ok()) << greedy.status();
    const std::vector<int> their_greedy = r["greedy_ids"].get<std::vector<int>>();
    size_t agree = 0;
    while (agree < their_greedy.size() && agree < greedy->ids.size() && their_greedy[agree] == greedy->ids[agree]) {
      ++agree;
    }
    std::cout << "[ gguf ] " << GgmlTypeName(tc.type) << ": greedy agrees for " << agree << " of "
              << greedy->ids.size() << " tokens: " << tok.Decode(their_greedy).substr(0, 100) << "\n";
    if (tc.type == GgmlType::kF32) {
      EXPECT_EQ(their_greedy, greedy->ids);
      EXPECT_EQ(greedy->text.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << greedy->text;
      // llama.cpp's tokenizer, built from our metadata, gives our ids.
      for (size_t i = 0; i < texts.size(); ++i) {
        EXPECT_EQ(r["tokens"][i].get<std::vector<int>>(), tok.Encode(texts[i], false)) << texts[i];
      }
      EXPECT_EQ(r["bos"].get<int>(), 1);
      EXPECT_EQ(r["eos"].get<int>(), 2);
    }
  }
}

// The K-quants need rows of 256: a random model 256 wide (no ../shared
// needed beyond node) exported as Q4_K and Q6_K, scored by llama.cpp and by
// our engine on the same file. A wrong block layout would move log-probs by
// whole nats; activation quantization in llama.cpp by hundredths.
TEST(GgufLlamaCppTest, KQuantsOfA256WideModelAgree) {
  std::string skip = SkipReason();
  if (!skip.empty() && skip.find("../shared") == std::string::npos) GTEST_SKIP() << skip;
  if (std::system("command -v node >/dev/null 2>&1") != 0 ||
      !fs::exists(kNodeDir / "node_modules" / "node-llama-cpp" / "package.json")) {
    GTEST_SKIP() << "node or tests/node/node_modules/node-llama-cpp is missing";
  }
  const std::string dir = testing_util::FreshTestDir();
  ModelConfig c;
  c.dim = 256;
  c.hidden_dim = 512;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 64;
  c.vocab_size = 259;
  c.max_seq_len = 128;
  c.tie_word_embeddings = false;
  const Model m = MakeRandomModel(c, 21);
  const std::string tok = dir + "/tokenizer.bin";
  testing_util::WriteBytes(tok, test_inputs::ByteTokenizerBin());
  std::vector<std::string> paths;
  std::vector<GgufModel> ours;
  for (GgmlType t : {GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    paths.push_back(absl::StrCat(dir, "/rand-", GgmlTypeName(t), ".gguf"));
    auto r = ExportGguf(m, tok, paths.back(), {t, /*allow_fallback=*/false, "random"});
    ASSERT_TRUE(r.ok()) << r.status();
    auto loaded = LoadGgufModel(paths.back());
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ours.push_back(std::move(loaded).value());
  }
  std::vector<int> ids = ours[0].tokenizer->Encode("the cat sat on a mat and saw a big red dog run.", true);
  json request = {{"models", paths}, {"prompt_ids", {1}}, {"max_tokens", 0},
                  {"stop_ids", json::array()}, {"score_ids", ids}, {"texts", json::array()}};
  const json out = RunLlamaCpp(request, dir);
  ASSERT_FALSE(out.is_null());
  const std::vector<double> f32 = OurLogprobs(m, ids);
  for (size_t k = 0; k < 2; ++k) {
    const std::vector<double> mine = OurLogprobs(ours[k].model, ids);
    const std::vector<double> theirs = out["results"][k]["logprobs"].get<std::vector<double>>();
    ASSERT_EQ(theirs.size(), mine.size());
    double diff = 0, max_diff = 0, quant_effect = 0;
    for (size_t i = 0; i < mine.size(); ++i) {
      diff += mine[i] - theirs[i];
      max_diff = std::max(max_diff, std::fabs(mine[i] - theirs[i]));
      quant_effect = std::max(quant_effect, std::fabs(mine[i] - f32[i]));
    }
    std::cout << "[ gguf ] " << (k == 0 ? "Q4_K" : "Q6_K") << " (random 256-wide model): mean |diff| "
              << std::fabs(diff) / mine.size() << ", max per-token |diff| vs llama.cpp " << max_diff
              << " (quantization itself moves log-probs by up to " << quant_effect << ")\n";
    EXPECT_LE(std::fabs(diff) / mine.size(), 0.01);
    EXPECT_LE(max_diff, 0.1);
  }
}

// Structured pruning leaves blocks of different widths; llama.cpp runs them
// through its "deci" architecture (per-block head_count / head_count_kv /
// feed_forward_length arrays). Block 0 keeps 3 of its 4 head groups, block 2
// keeps 2, blocks 1 and 3 lose 40 and 60 of their 172 MLP channels (lowest
// magnitude, LLM-Pruner's element-wise L1).
TEST(GgufLlamaCppTest, StructurallyPrunedModelRunsAsDeci) {
  const std::string skip = SkipReason();
  if (!skip.empty()) GTEST_SKIP() << skip;
  const std::string dir = testing_util::FreshTestDir();
  auto m = LoadModel(kStories + "/stories260K.bin");
  ASSERT_TRUE(m.ok()) << m.status();
  const int head_dim = m->config.head_dim;
  const BlockInputNorms none;
  auto drop_groups = [&](int l, int n) {
    auto scores = HeadGroupImportance(m->blocks[l], head_dim, StructureImportance::kMagnitude, none);
    ASSERT_TRUE(scores.ok()) << scores.status();
    ASSERT_TRUE(RemoveHeadGroups(m->blocks[l], head_dim, LowestScored(*scores, n)).ok());
  };
  auto drop_channels = [&](int l, int n) {
    auto scores = ChannelImportance(m->blocks[l], StructureImportance::kMagnitude, none);
    ASSERT_TRUE(scores.ok()) << scores.status();
    ASSERT_TRUE(RemoveChannels(m->blocks[l], LowestScored(*scores, n)).ok());
  };
  drop_groups(0, 1);
  drop_groups(2, 2);
  drop_channels(1, 40);
  drop_channels(3, 60);
  const std::string path = dir + "/stories260K-pruned.gguf";
  auto exported = ExportGguf(*m, kStories + "/tok512.bin", path, {GgmlType::kF32, true, "stories260K-pruned"});
  ASSERT_TRUE(exported.ok()) << exported.status();
  auto ours = LoadGgufModel(path);
  ASSERT_TRUE(ours.ok()) << ours.status();
  EXPECT_EQ(ours->model.config.layer_n_heads, (std::vector<int>{6, 8, 4, 8, 8}));
  EXPECT_EQ(ours->model.config.layer_hidden_dim, (std::vector<int>{172, 132, 172, 112, 172}));
  const Tokenizer& tok = *ours->tokenizer;
  const std::string text = testing_util::ReadBytes(kText).substr(0, 1000);
  std::vector<int> ids = tok.Encode(text, true);
  ids.resize(std::min<size_t>(ids.size(), 192));
  GenerateOptions gen;
  gen.max_tokens = 60;
  json request = {{"models", {path}},   {"prompt_ids", {1}}, {"max_tokens", gen.max_tokens},
                  {"stop_ids", {1, 2}}, {"score_ids", ids},  {"texts", json::array()}};
  const json out = RunLlamaCpp(request, dir);
  ASSERT_FALSE(out.is_null());
  const json& r = out["results"][0];
  // Our engine on the pruned model itself (not only on the file).
  const std::vector<double> mine = OurLogprobs(*m, ids);
  const std::vector<double> theirs = r["logprobs"].get<std::vector<double>>();
  ASSERT_EQ(theirs.size(), mine.size());
  double sum_mine = 0, sum_theirs = 0, max_diff = 0;
  for (size_t i = 0; i < mine.size(); ++i) {
    sum_mine -= mine[i];
    sum_theirs -= theirs[i];
    max_diff = std::max(max_diff, std::fabs(mine[i] - theirs[i]));
  }
  const double n = static_cast<double>(mine.size());
  std::cout << "[ gguf ] pruned (deci) F32: ours nll/token " << sum_mine / n << " (ppl " << std::exp(sum_mine / n)
            << "), llama.cpp " << sum_theirs / n << " (ppl " << std::exp(sum_theirs / n) << "), max per-token |diff| "
            << max_diff << "\n";
  EXPECT_LE(std::fabs(sum_mine - sum_theirs) / n, 1e-4);
  EXPECT_LE(max_diff, 2e-3);
  auto greedy = Generate(*m, tok, {1}, gen, nullptr);
  ASSERT_TRUE(greedy.ok()) << greedy.status();
  EXPECT_EQ(r["greedy_ids"].get<std::vector<int>>(), greedy->ids);
}

}  // namespace
}  // namespace squeeze
