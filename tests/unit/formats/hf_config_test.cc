#include "workers/engine/formats/hf_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace squeeze {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// Abridged from meta-llama/Llama-2-7b-hf/config.json.
constexpr char kLlama2[] = R"({
  "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 11008, "max_position_embeddings": 4096, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
  "tie_word_embeddings": false, "torch_dtype": "float16", "vocab_size": 32000})";

// Abridged from mistralai/Mistral-7B-v0.1/config.json.
constexpr char kMistral[] = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
  "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
  "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "vocab_size": 32000})";

// Abridged from Qwen/Qwen2-0.5B/config.json.
constexpr char kQwen2[] = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896,
  "intermediate_size": 4864, "max_position_embeddings": 131072, "max_window_layers": 24,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 131072, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "use_sliding_window": false, "vocab_size": 151936})";

TEST(HfConfigTest, Llama2) {
  auto c = ParseHfConfig(kLlama2, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");
  EXPECT_EQ(c->model_type, "llama");
  EXPECT_EQ(c->dim, 4096);
  EXPECT_EQ(c->hidden_dim, 11008);
  EXPECT_EQ(c->n_layers, 32);
  EXPECT_EQ(c->n_heads, 32);
  EXPECT_EQ(c->n_kv_heads, 32);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->vocab_size, 32000);
  EXPECT_EQ(c->max_seq_len, 4096);
  EXPECT_EQ(c->rope_theta, 10000.0f);
  EXPECT_EQ(c->norm_eps, 1e-5f);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_id, 2);
  EXPECT_EQ(c->sliding_window, 0);
}

TEST(HfConfigTest, Mistral) {
  auto c = ParseHfConfig(kMistral, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_type, "mistral");
  EXPECT_EQ(c->n_kv_heads, 8);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->hidden_dim, 14336);
  EXPECT_EQ(c->sliding_window, 4096);
  EXPECT_FALSE(c->attention_bias);
}

TEST(HfConfigTest, MistralNullSlidingWindowAndExplicitHeadDim) {
  // Mistral-Nemo style: head_dim (128) differs from hidden_size / heads (160).
  auto c = ParseHfConfig(R"({"architectures": ["MistralForCausalLM"], "hidden_size": 5120,
      "intermediate_size": 14336, "num_hidden_layers": 40, "num_attention_heads": 32,
      "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 131072, "sliding_window": null,
      "rope_theta": 1000000.0, "max_position_embeddings": 1024000})",
                         "nemo/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->dim, 5120);
  EXPECT_EQ(c->sliding_window, 0);
  EXPECT_EQ(c->rope_theta, 1e6f);
  EXPECT_EQ(c->norm_eps, 1e-6f);  // MistralConfig default
}

TEST(HfConfigTest, Qwen2ImpliesQkvBias) {
  auto c = ParseHfConfig(kQwen2, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_type, "qwen2");
  EXPECT_TRUE(c->attention_bias);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->n_kv_heads, 2);
  EXPECT_EQ(c->rope_theta, 1e6f);
  EXPECT_EQ(c->norm_eps, 1e-6f);
  EXPECT_EQ(c->bos_token_id, 151643);
  EXPECT_EQ(c->sliding_window, 0);  // use_sliding_window is false
}

TEST(HfConfigTest, DefaultsAndEosList) {
  // Llama-3 style eos list; no num_key_value_heads / tie / rope_theta keys.
  auto c = ParseHfConfig(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
      "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100,
      "eos_token_id": [128001, 128009], "rope_scaling": {"rope_type": "default"}})",
                         "c.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");  // inferred from model_type
  EXPECT_EQ(c->n_kv_heads, 4);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->max_seq_len, 2048);
  EXPECT_EQ(c->rope_theta, 10000.0f);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->eos_token_id, 128001);
}

TEST(HfConfigTest, RejectsUnsupported) {
  auto s =
      ParseHfConfig(R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})", "gpt2/config.json");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), AllOf(HasSubstr("gpt2/config.json"),
                                          HasSubstr("unsupported architecture \"GPT2LMHeadModel\"")));

  std::string scaled = kLlama2;
  scaled.replace(scaled.find("\"rope_scaling\": null"), 20,
                 R"("rope_scaling": {"type": "linear", "factor": 2.0})");
  s = ParseHfConfig(scaled, "config.json");
  EXPECT_THAT(s.status().message(), AllOf(HasSubstr("rope_scaling"), HasSubstr("linear")));

  std::string gelu = kLlama2;
  gelu.replace(gelu.find("\"silu\""), 6, "\"gelu\"");
  EXPECT_THAT(ParseHfConfig(gelu, "config.json").status().message(), HasSubstr("hidden_act"));

  std::string qwen_sw = kQwen2;
  qwen_sw.replace(qwen_sw.find("\"use_sliding_window\": false"), 27, "\"use_sliding_window\": true");
  EXPECT_THAT(ParseHfConfig(qwen_sw, "config.json").status().message(), HasSubstr("use_sliding_window"));
}

TEST(HfConfigTest, BadValuesNameTheKey) {
  EXPECT_THAT(ParseHfConfig("{not json", "x/config.json").status().message(),
              AllOf(HasSubstr("x/config.json"), HasSubstr("invalid JSON")));
  EXPECT_THAT(ParseHfConfig(R"({"model_type": "llama", "intermediate_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 1, "vocab_size": 4})",
                            "c.json")
                  .status()
                  .message(),
              HasSubstr("\"hidden_size\" is required"));
  EXPECT_THAT(ParseHfConfig(R"({"model_type": "llama", "hidden_size": "64", "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 4})",
                            "c.json")
                  .status()
                  .message(),
              HasSubstr("\"hidden_size\" must be an integer"));
  EXPECT_THAT(ParseHfConfig(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 8, "num_key_value_heads": 3, "vocab_size": 4})",
                            "c.json")
                  .status()
                  .message(),
              AllOf(HasSubstr("c.json"), HasSubstr("not a multiple of n_kv_heads")));
}

TEST(HfConfigTest, WriteThenParseIsIdentity) {
  for (const char* text : {kLlama2, kMistral, kQwen2}) {
    auto c = ParseHfConfig(text, "in.json");
    ASSERT_TRUE(c.ok());
    const std::string written = HfConfigJson(*c, "bfloat16");
    auto back = ParseHfConfig(written, "out.json");
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << written;
    EXPECT_EQ(back->architecture, c->architecture);
    EXPECT_EQ(back->model_type, c->model_type);
    EXPECT_EQ(back->dim, c->dim);
    EXPECT_EQ(back->hidden_dim, c->hidden_dim);
    EXPECT_EQ(back->n_layers, c->n_layers);
    EXPECT_EQ(back->n_heads, c->n_heads);
    EXPECT_EQ(back->n_kv_heads, c->n_kv_heads);
    EXPECT_EQ(back->head_dim, c->head_dim);
    EXPECT_EQ(back->vocab_size, c->vocab_size);
    EXPECT_EQ(back->max_seq_len, c->max_seq_len);
    EXPECT_EQ(back->rope_theta, c->rope_theta);
    EXPECT_EQ(back->norm_eps, c->norm_eps);
    EXPECT_EQ(back->tie_word_embeddings, c->tie_word_embeddings);
    EXPECT_EQ(back->attention_bias, c->attention_bias);
    EXPECT_EQ(back->bos_token_id, c->bos_token_id);
    EXPECT_EQ(back->eos_token_id, c->eos_token_id);
    EXPECT_EQ(back->sliding_window, c->sliding_window);
    EXPECT_THAT(written, HasSubstr("\"torch_dtype\": \"bfloat16\""));
  }
  // Floats are written in their shortest form.
  auto c = ParseHfConfig(kLlama2, "in.json");
  EXPECT_THAT(HfConfigJson(*c), HasSubstr("\"rms_norm_eps\": 1e-05"));
}

}  // namespace
}  // namespace squeeze
