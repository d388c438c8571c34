#include "workers/engine/formats/hf_config.h"

#include <cmath>
#include <limits>

#include <algorithm>
#include <charconv>
#include <functional>
#include <climits>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze {
namespace {

using json = nlohmann::json;

struct ArchInfo {
  const char* architecture;
  const char* model_type;
  int default_max_pos;
  bool qkv_bias;  // Qwen2: q/k/v always carry biases
};

constexpr ArchInfo kArchs[] = {
    {"LlamaForCausalLM", "llama", 2048, false},
    {"MistralForCausalLM", "mistral", 4096 * 32, false},
    {"Qwen2ForCausalLM", "qwen2", 32768, true},
};

class Reader {
 public:
  Reader(const json& j, const std::string& source) : j_(j), source_(source) {}

  absl::Status Error(absl::string_view key, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": \"", key, "\" ", what));
  }

  bool Has(const char* key) const {
    auto it = j_.find(key);
    return it != j_.end() && !it->is_null();
  }

  // Integer key; `fallback` when absent/null (required when fallback is null).
  absl::StatusOr<int> Int(const char* key, const int* fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (fallback == nullptr) return Error(key, "is required");
      return *fallback;
    }
    if (!it->is_number_integer()) return Error(key, absl::StrCat("must be an integer, got ", it->dump()));
    const int64_t v = it->get<int64_t>();
    if (v < INT_MIN || v > INT_MAX) return Error(key, absl::StrCat("is out of range: ", v));
    return static_cast<int>(v);
  }
  absl::StatusOr<int> Required(const char* key) const { return Int(key, nullptr); }
  absl::StatusOr<int> Optional(const char* key, int fallback) const { return Int(key, &fallback); }

  absl::StatusOr<float> Float(const char* key, float fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_number()) return Error(key, absl::StrCat("must be a number, got ", it->dump()));
    // Range-checked before narrowing (a double outside float's range is UB).
    const double v = it->get<double>();
    if (!(std::fabs(v) <= std::numeric_limits<float>::max())) {
      return Error(key, absl::StrCat("is out of range: ", it->dump()));
    }
    return static_cast<float>(v);
  }

  absl::StatusOr<bool> Bool(const char* key, bool fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) return Error(key, absl::StrCat("must be true or false, got ", it->dump()));
    return it->get<bool>();
  }

  // bos/eos: an int or a non-empty list of ints (first entry used).
  absl::StatusOr<int> TokenId(const char* key, int fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    const json* v = &*it;
    if (v->is_array()) {
      if (v->empty()) return fallback;
      v = &(*v)[0];
    }
    if (!v->is_number_integer())
      return Error(key, absl::StrCat("must be an integer token id, got ", it->dump()));
    return static_cast<int>(v->get<int64_t>());
  }

 private:
  const json& j_;
  const std::string& source_;
};

absl::StatusOr<ModelConfig> ParseObject(const json& j, const std::string& source) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  Reader r(j, source);

  // Architecture: "architectures"[0], else inferred from "model_type".
  std::string arch;
  if (auto it = j.find("architectures"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->empty() || !(*it)[0].is_string()) {
      return r.Error("architectures", "must be a non-empty list of strings");
    }
    arch = (*it)[0].get<std::string>();
  }
  std::string model_type;
  if (auto it = j.find("model_type"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return r.Error("model_type", "must be a string");
    model_type = it->get<std::string>();
  }
  const ArchInfo* info = nullptr;
  for (const ArchInfo& a : kArchs) {
    if ((!arch.empty() && arch == a.architecture) || (arch.empty() && model_type == a.model_type)) {
      info = &a;
    }
  }
  if (info == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": unsupported architecture \"", arch.empty() ? model_type : arch,
                     "\" (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)"));
  }

  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    std::string type;
    if (it->is_object()) {
      for (const char* k : {"rope_type", "type"}) {
        if (auto t = it->find(k); t != it->end() && t->is_string()) {
          type = t->get<std::string>();
          break;
        }
      }
    }
    if (type != "default") {
      return r.Error("rope_scaling",
                     absl::StrCat("is not supported: ", it->dump(), " (only null or type \"default\")"));
    }
  }
  for (const char* k : {"hidden_act", "hidden_activation"}) {
    if (auto it = j.find(k); it != j.end() && !it->is_null()) {
      if (!it->is_string() || it->get<std::string>() != "silu") {
        return r.Error(k, absl::StrCat("is not supported: ", it->dump(), " (only \"silu\")"));
      }
    }
  }

  ModelConfig c;
  c.architecture = info->architecture;
  c.model_type = info->model_type;
  SQ_ASSIGN_OR_RETURN(c.dim, r.Required("hidden_size"));
  SQ_ASSIGN_OR_RETURN(c.hidden_dim, r.Required("intermediate_size"));
  SQ_ASSIGN_OR_RETURN(c.n_layers, r.Required("num_hidden_layers"));
  SQ_ASSIGN_OR_RETURN(c.n_heads, r.Required("num_attention_heads"));
  SQ_ASSIGN_OR_RETURN(c.n_kv_heads, r.Optional("num_key_value_heads", c.n_heads));
  if (c.n_heads <= 0) return r.Error("num_attention_heads", absl::StrCat("must be > 0, got ", c.n_heads));
  SQ_ASSIGN_OR_RETURN(c.head_dim, r.Optional("head_dim", c.dim / c.n_heads));
  if (!r.Has("head_dim") && c.dim % c.n_heads != 0) {
    return r.Error("hidden_size", absl::StrCat("(", c.dim, ") is not a multiple of num_attention_heads (",
                                               c.n_heads, ") and no head_dim is given"));
  }
  SQ_ASSIGN_OR_RETURN(c.vocab_size, r.Required("vocab_size"));
  SQ_ASSIGN_OR_RETURN(c.max_seq_len, r.Optional("max_position_embeddings", info->default_max_pos));
  SQ_ASSIGN_OR_RETURN(c.rope_theta, r.Float("rope_theta", 10000.0f));
  SQ_ASSIGN_OR_RETURN(c.norm_eps, r.Float("rms_norm_eps", 1e-6f));
  SQ_ASSIGN_OR_RETURN(c.tie_word_embeddings, r.Bool("tie_word_embeddings", false));
  SQ_ASSIGN_OR_RETURN(c.attention_bias, r.Bool("attention_bias", false));
  if (info->qkv_bias) c.attention_bias = true;
  SQ_ASSIGN_OR_RETURN(c.bos_token_id, r.TokenId("bos_token_id", c.bos_token_id));
  SQ_ASSIGN_OR_RETURN(c.eos_token_id, r.TokenId("eos_token_id", c.eos_token_id));

  c.sliding_window = 0;
  if (c.model_type == "mistral") {
    // MistralConfig's default is 4096 when the key is absent; null disables it.
    if (j.find("sliding_window") == j.end()) {
      c.sliding_window = 4096;
    } else {
      SQ_ASSIGN_OR_RETURN(c.sliding_window, r.Optional("sliding_window", 0));
    }
    if (c.sliding_window < 0) return r.Error("sliding_window", "must be >= 0");
  } else if (c.model_type == "qwen2") {
    SQ_ASSIGN_OR_RETURN(bool use_sw, r.Bool("use_sliding_window", false));
    if (use_sw) {
      return r.Error("use_sliding_window", "is not supported for Qwen2 (per-layer sliding windows)");
    }
  }

  if (auto it = j.find("squeeze_layer_widths"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return r.Error("squeeze_layer_widths", "must be a mapping");
    for (auto [key, dst] : {std::pair{"num_attention_heads", &c.layer_n_heads},
                            {"num_key_value_heads", &c.layer_n_kv_heads},
                            {"intermediate_size", &c.layer_hidden_dim}}) {
      auto v = it->find(key);
      const std::string path = absl::StrCat("squeeze_layer_widths.", key);
      if (v == it->end() || !v->is_array()) return r.Error(path, "must be a list of integers (one per layer)");
      for (const json& e : *v) {
        if (!e.is_number_integer()) return r.Error(path, absl::StrCat("must hold integers, got ", e.dump()));
        const int64_t x = e.get<int64_t>();
        if (x < INT_MIN || x > INT_MAX) return r.Error(path, absl::StrCat("is out of range: ", x));
        dst->push_back(static_cast<int>(x));
      }
    }
  }
  if (auto it = j.find("squeeze_source_layers"); it != j.end() && !it->is_null()) {
    // Original layer index of each block after layer removal (model_config.h).
    if (!it->is_array()) return r.Error("squeeze_source_layers", "must be a list of integers (one per layer)");
    for (const json& e : *it) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > INT_MAX ||
          (!c.source_layers.empty() && e.get<int64_t>() <= c.source_layers.back())) {
        return r.Error("squeeze_source_layers", absl::StrCat("must hold ascending layer indices >= 0, got ", e.dump()));
      }
      c.source_layers.push_back(e.get<int>());
    }
    if (static_cast<int>(c.source_layers.size()) != c.n_layers) {
      return r.Error("squeeze_source_layers", absl::StrCat("has ", c.source_layers.size(), " entries for ",
                                                           c.n_layers, " layers"));
    }
  }

  if (absl::Status s = c.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", s.message()));
  }
  return c;
}

// The double whose shortest decimal form is the float's shortest form, so that
// 1e-5f is written as 1e-05 (not 9.999999747378752e-06) and reads back exactly.
double ShortestDouble(float f) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), f);
  if (ec != std::errc()) return f;
  return std::strtod(std::string(buf, end).c_str(), nullptr);
}

}  // namespace

absl::StatusOr<ModelConfig> ParseHfConfig(absl::string_view json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": invalid JSON: ", e.what()));
  }
  try {
    return ParseObject(j, source);
  } catch (const json::exception& e) {  // defensive: type errors inside nlohmann
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.what()));
  }
}

absl::StatusOr<ModelConfig> ReadHfConfig(const std::string& path) {
  SQ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseHfConfig(text, path);
}

std::string HfConfigJson(const ModelConfig& c, absl::string_view torch_dtype) {
  nlohmann::ordered_json j;
  j["architectures"] = {c.architecture};
  j["model_type"] = c.model_type;
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_seq_len;
  j["rms_norm_eps"] = ShortestDouble(c.norm_eps);
  j["rope_theta"] = ShortestDouble(c.rope_theta);
  j["rope_scaling"] = nullptr;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_bias"] = c.attention_bias;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  if (c.model_type == "mistral") {
    if (c.sliding_window > 0) {
      j["sliding_window"] = c.sliding_window;
    } else {
      j["sliding_window"] = nullptr;
    }
  } else if (c.model_type == "qwen2") {
    j["use_sliding_window"] = false;
  }
  j["torch_dtype"] = std::string(torch_dtype);
  if (!c.layer_n_heads.empty()) {
    j["squeeze_layer_widths"] = {{"num_attention_heads", c.layer_n_heads},
                                 {"num_key_value_heads", c.layer_n_kv_heads},
                                 {"intermediate_size", c.layer_hidden_dim}};
  }
  if (!c.source_layers.empty()) j["squeeze_source_layers"] = c.source_layers;  // layer removal (model_config.h)
  return j.dump(2) + "\n";
}

ModelConfig EffectiveConfig(const Model& model) {
  const ModelConfig& base = model.config;
  if (model.blocks.empty() || base.head_dim <= 0) return base;
  ModelConfig c = base;
  c.layer_n_heads.clear();
  c.layer_n_kv_heads.clear();
  c.layer_hidden_dim.clear();
  for (const TransformerBlock& b : model.blocks) {
    if (!b.q_proj || !b.k_proj || !b.gate_proj) return base;
    c.layer_n_heads.push_back(static_cast<int>(b.q_proj->out_features() / base.head_dim));
    c.layer_n_kv_heads.push_back(static_cast<int>(b.k_proj->out_features() / base.head_dim));
    c.layer_hidden_dim.push_back(static_cast<int>(b.gate_proj->out_features()));
  }
  auto max_of = [](const std::vector<int>& v) { return *std::max_element(v.begin(), v.end()); };
  auto uniform = [](const std::vector<int>& v) { return std::adjacent_find(v.begin(), v.end(), std::not_equal_to<int>()) == v.end(); };
  c.n_heads = max_of(c.layer_n_heads);
  c.n_kv_heads = max_of(c.layer_n_kv_heads);
  c.hidden_dim = max_of(c.layer_hidden_dim);
  if (uniform(c.layer_n_heads) && uniform(c.layer_n_kv_heads) && uniform(c.layer_hidden_dim)) {
    c.layer_n_heads.clear();
    c.layer_n_kv_heads.clear();
    c.layer_hidden_dim.clear();
  }
  if (!c.Validate().ok()) return base;
  return c;
}

}  // namespace squeeze
