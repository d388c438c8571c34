// The perplexity table of issue 5 on the real stories260K model: fp32, RTN,
// GPTQ, AWQ at 8 / 4 / 3 bits per channel (+ RTN with the MSE observer and
// AWQ stacked with GPTQ at 3 bits), and W8A8 naive vs SmoothQuant vs
// LLM.int8(). Perplexity on the first 6000 bytes of TinyStories valid.txt,
// windows of 256 tokens; calibration 16 x 128 tokens of train.txt. The
// asserts check the papers' ordering with margins, never exact values.
#include <filesystem>
#include <iostream>
#include <string>

#include <gtest/gtest.h>

#include "workers/runner/recipe.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;

const char kCalib[] = "num_calibration_samples: 16\nmax_seq_length: 128\n";

std::string Channel(int bits, const std::string& extra = "") {
  return "      config_groups:\n        g: {targets: [Linear], weights: {num_bits: " + std::to_string(bits) +
         ", strategy: channel" + extra + "}}\n";
}

std::string Stage(const std::string& name, const std::string& modifier, const std::string& body) {
  return name + ":\n  m_modifiers:\n    " + modifier + ":" + (body.empty() ? " {}\n" : "\n" + body);
}

// Runs `recipe` on stories260K; returns {perplexity before, after}.
std::pair<double, double> Ppl(const std::string& name, const std::string& recipe_text) {
  const std::string shared = SQUEEZE_SHARED_DIR;
  auto recipe = ParseRecipe(recipe_text);
  EXPECT_TRUE(recipe.ok()) << name << ": " << recipe.status() << "\n" << recipe_text;
  if (!recipe.ok()) return {0, 0};
  RunOptions o;
  o.model_path = shared + "/models/stories260K/hf";
  o.output_dir = ::testing::TempDir() + "/squeeze_quant_table_" + name;
  fs::remove_all(o.output_dir);
  fs::remove_all(o.output_dir + ".work");
  o.calib_text_path = shared + "/data/tinystories/train.txt";
  o.eval_text_path = shared + "/data/tinystories/valid.txt";
  o.eval_max_bytes = 6000;
  o.eval_seq_len = 256;
  NullProgressSink null;
  RunControl control;
  auto r = RunRecipe(*recipe, o, null, control);
  EXPECT_TRUE(r.ok()) << name << ": " << r.status();
  fs::remove_all(o.output_dir);
  if (!r.ok()) return {0, 0};
  const auto& p = r->report["perplexity"];
  const std::pair<double, double> v = {p["before"].get<double>(), p["after"].get<double>()};
  std::cout << "TABLE " << name << " " << v.second << " (fp32 " << v.first << ")\n";
  return v;
}

bool HaveShared() { return fs::exists(std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K/hf"); }

// 8 bits per channel is lossless for every method.
TEST(QuantTable, Bits8PerChannel) {
  if (!HaveShared()) GTEST_SKIP() << "needs ../shared/models/stories260K";
  const auto rtn = Ppl("rtn_w8", Stage("s", "QuantizationModifier", Channel(8)));
  const double fp32 = rtn.first;
  std::cout << "TABLE fp32 " << fp32 << "\n";
  const double gptq = Ppl("gptq_w8", kCalib + Stage("s", "GPTQModifier", Channel(8))).second;
  const double awq = Ppl("awq_w8", kCalib + Stage("s", "AWQModifier", Channel(8))).second;
  for (double v : {rtn.second, gptq, awq}) {
    EXPECT_LT(v, fp32 * 1.01);
    EXPECT_GT(v, fp32 * 0.99);
  }
}

// 4 bits per channel: GPTQ and AWQ beat RTN.
TEST(QuantTable, Bits4PerChannel) {
  if (!HaveShared()) GTEST_SKIP() << "needs ../shared/models/stories260K";
  const auto rtn = Ppl("rtn_w4", Stage("s", "QuantizationModifier", Channel(4)));
  const double gptq = Ppl("gptq_w4", kCalib + Stage("s", "GPTQModifier", Channel(4))).second;
  const double awq = Ppl("awq_w4", kCalib + Stage("s", "AWQModifier", Channel(4))).second;
  EXPECT_GT(rtn.second, rtn.first * 1.02);
  EXPECT_LT(gptq, rtn.second);
  EXPECT_LT(awq, rtn.second);
}

// 3 bits per channel: GPTQ and AWQ far better than RTN (the papers'
// headline); the MSE observer helps RTN; AWQ's scaling then GPTQ (two stages)
// beats RTN and AWQ-then-RTN.
TEST(QuantTable, Bits3PerChannel) {
  if (!HaveShared()) GTEST_SKIP() << "needs ../shared/models/stories260K";
  const auto rtn = Ppl("rtn_w3", Stage("s", "QuantizationModifier", Channel(3)));
  const double rtn_mse = Ppl("rtn_w3_mse", Stage("s", "QuantizationModifier", Channel(3, ", observer: mse"))).second;
  const double gptq = Ppl("gptq_w3", kCalib + Stage("s", "GPTQModifier", Channel(3))).second;
  const double awq = Ppl("awq_w3", kCalib + Stage("s", "AWQModifier", Channel(3))).second;
  const double awq_gptq =
      Ppl("awq_then_gptq_w3", kCalib + Stage("smooth", "AWQModifier", "      quantize: false\n" + Channel(3)) +
                                  Stage("quant", "GPTQModifier", Channel(3)))
          .second;
  EXPECT_LT(gptq, 0.8 * rtn.second);
  EXPECT_LT(awq, 0.8 * rtn.second);
  EXPECT_LT(rtn_mse, rtn.second);
  EXPECT_LT(awq_gptq, 0.8 * rtn.second);
  EXPECT_LT(awq_gptq, awq);
}

// W8A8 (int8 weights per channel, int8 activations per token): naive vs
// SmoothQuant (alpha 0.5, then the same W8A8 RTN) vs LLM.int8().
TEST(QuantTable, W8A8NaiveSmoothQuantLlmInt8) {
  if (!HaveShared()) GTEST_SKIP() << "needs ../shared/models/stories260K";
  const auto naive = Ppl("w8a8_naive", Stage("s", "QuantizationModifier", "      scheme: W8A8\n"));
  const double sq = Ppl("w8a8_smoothquant", kCalib + Stage("smooth", "SmoothQuantModifier", "      smoothing_strength: 0.5\n") +
                                                 Stage("quant", "QuantizationModifier", "      scheme: W8A8\n"))
                        .second;
  const double sq_gptq = Ppl("w8a8_smoothquant_gptq",
                             kCalib + Stage("smooth", "SmoothQuantModifier", "      smoothing_strength: 0.5\n") +
                                 Stage("quant", "GPTQModifier", "      scheme: W8A8\n"))
                             .second;
  const double llm = Ppl("llm_int8", Stage("s", "LLMInt8Modifier", "")).second;
  const double fp32 = naive.first;
  std::cout << "TABLE fp32 " << fp32 << "\n";
  // Per-token int8 activations are nearly lossless on this small model
  // (no activation of the 64-wide residual stream is far out); smoothing
  // still lowers the W8A8 loss a little. LLM.int8() is not ordered against
  // them here: its difference to naive W8A8 is at the noise level (report).
  for (double v : {naive.second, sq, sq_gptq, llm}) {
    EXPECT_GT(v, fp32 * 0.995);
    EXPECT_LT(v, fp32 * 1.005);
  }
  EXPECT_LT(sq, naive.second);
  EXPECT_LT(sq_gptq, naive.second);
}

}  // namespace
}  // namespace squeeze
