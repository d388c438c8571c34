// Tokenizers <-> GGUF tokenizer.ggml.* metadata (see gguf_model.h).
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/tokenizer/hf_tokenizer.h"
#include "workers/engine/tokenizer/llama2c_tokenizer.h"

namespace squeeze {
namespace {

using json = nlohmann::json;

constexpr char kSpm[] = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// "<0xAB>" -> 0xAB, else -1.
int ByteTokenValue(absl::string_view s) {
  if (s.size() != 6 || !absl::StartsWith(s, "<0x") || s[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = s[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;    // empty when the model has none (gpt2)
  std::vector<int64_t> types;
  std::vector<std::string> merges;
  std::string model;            // "llama" | "gpt2"
  std::string pre;              // gpt2 only
  int bos = -1, eos = -1, unk = -1;
  bool add_bos = true;
};

absl::StatusOr<Vocab> FromLlama2c(const std::string& path, const std::string& bytes) {
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<Llama2cTokenizer> t, Llama2cTokenizer::FromBytes(bytes, path));
  Vocab v;
  v.model = "llama";
  v.bos = t->bos_id();
  v.eos = t->eos_id();
  v.unk = 0;
  for (int id = 0; id < t->vocab_size(); ++id) {
    std::string piece = t->piece(id);
    int64_t type = kGgufTokenNormal;
    if (id == 0) {
      type = kGgufTokenUnknown;
    } else if (id == t->bos_id() || id == t->eos_id()) {
      type = kGgufTokenControl;
      piece = std::string(absl::StripAsciiWhitespace(piece));  // llama2.c writes "\n<s>\n"
    } else if (ByteTokenValue(piece) >= 0) {
      type = kGgufTokenByte;
    } else {
      piece = absl::StrReplaceAll(piece, {{" ", kSpm}});
    }
    v.tokens.push_back(std::move(piece));
    v.scores.push_back(t->score(id));
    v.types.push_back(type);
  }
  return v;
}

// Merge entries of a tokenizer.json: "a b" strings or ["a", "b"] pairs.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> JsonMerges(const json& merges,
                                                                          const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!merges.is_array()) return absl::InvalidArgumentError(absl::StrCat(path, ": model.merges is not an array"));
  for (const json& m : merges) {
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": model.merges entry \"", s, "\" is not \"a b\""));
      }
      out.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      return absl::InvalidArgumentError(absl::StrCat(path, ": model.merges has an entry that is not a pair"));
    }
  }
  return out;
}

absl::StatusOr<Vocab> FromTokenizerJson(const std::string& path, const std::string& text) {
  auto unsupported = [&](absl::string_view what) {
    return absl::UnimplementedError(absl::StrCat(path, ": GGUF export: ", what));
  };
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<HfBpeTokenizer> hf, HfBpeTokenizer::FromFile(path));
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a tokenizer.json with a \"model\" object"));
  }
  const json& model = j["model"];
  if (!model.contains("vocab") || !model["vocab"].is_object() || !model.contains("merges")) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": model.vocab / model.merges missing"));
  }
  Vocab v;
  const int n = hf->vocab_size();
  v.tokens.assign(n, "");
  v.types.assign(n, kGgufTokenNormal);
  std::vector<bool> seen(n, false);
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer()) continue;
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= n) continue;
    v.tokens[id] = it.key();
    seen[id] = true;
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      if (!a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string()) continue;
      const int64_t id = a["id"].get<int64_t>();
      if (id < 0 || id >= n) continue;
      v.tokens[id] = a["content"].get<std::string>();
      seen[id] = true;
      const bool special = a.contains("special") && a["special"].is_boolean() && a["special"].get<bool>();
      v.types[id] = special ? kGgufTokenControl : kGgufTokenUserDefined;
    }
  }
  for (int id = 0; id < n; ++id) {
    if (!seen[id]) {
      v.tokens[id] = absl::StrCat("[PAD", id, "]");
      v.types[id] = kGgufTokenUnused;
    }
  }
  v.bos = hf->bos_id();
  v.eos = hf->eos_id();
  SQ_ASSIGN_OR_RETURN(auto merges, JsonMerges(model["merges"], path));
  if (hf->byte_level()) {
    v.model = "gpt2";
    // Only GPT-2's own pre-tokenizer (ByteLevel with its regex) is mapped to
    // a llama.cpp "pre" name so far.
    const json& pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json();
    const bool gpt2_regex = pre.is_object() && pre.contains("type") && pre["type"] == "ByteLevel" &&
                            (!pre.contains("use_regex") || pre["use_regex"] == true);
    if (!gpt2_regex) {
      return unsupported(
          "byte-level tokenizers other than GPT-2's (ByteLevel pre-tokenizer with its regex) have no "
          "llama.cpp \"tokenizer.ggml.pre\" mapping here yet");
    }
    v.pre = "gpt-2";
    v.add_bos = false;
    for (auto& [a, b] : merges) v.merges.push_back(absl::StrCat(a, " ", b));
    return v;
  }
  // SentencePiece-style: scores from merge ranks.
  v.model = "llama";
  if (hf->TokenId("<unk>") != 0 || v.bos != 1 || v.eos != 2) {
    return unsupported(absl::StrCat("SentencePiece-style vocabularies need <unk>, <s>, </s> at ids 0, 1, 2 (bos ",
                                    v.bos, ", eos ", v.eos, ")"));
  }
  v.unk = 0;
  v.scores.assign(n, 0.0f);
  std::vector<bool> scored(n, false);
  for (size_t r = 0; r < merges.size(); ++r) {
    const int id = hf->TokenId(merges[r].first + merges[r].second);
    if (id >= 0 && !scored[id]) {
      v.scores[id] = -static_cast<float>(r);
      scored[id] = true;
    }
  }
  for (int id = 0; id < n; ++id) {
    if (v.types[id] == kGgufTokenNormal && ByteTokenValue(v.tokens[id]) >= 0) v.types[id] = kGgufTokenByte;
  }
  v.types[0] = kGgufTokenUnknown;
  v.types[1] = v.types[2] = kGgufTokenControl;
  return v;
}

}  // namespace

absl::StatusOr<std::vector<GgufKV>> GgufTokenizerMetadata(const std::string& path, int vocab_size) {
  SQ_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  const bool is_json = !bytes.empty() && bytes.find_first_not_of(" \t\r\n") != std::string::npos &&
                       bytes[bytes.find_first_not_of(" \t\r\n")] == '{';
  Vocab v;
  if (is_json) {
    SQ_ASSIGN_OR_RETURN(v, FromTokenizerJson(path, bytes));
  } else {
    SQ_ASSIGN_OR_RETURN(v, FromLlama2c(path, bytes));
  }
  const int n = static_cast<int>(v.tokens.size());
  if (n > vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tokenizer has ", n,
                                                   " tokens, more than the model's vocabulary of ", vocab_size));
  }
  for (int id = n; id < vocab_size; ++id) {  // one token per embedding row
    v.tokens.push_back(absl::StrCat("[PAD", id, "]"));
    v.types.push_back(kGgufTokenUnused);
    if (!v.scores.empty()) v.scores.push_back(-1e9f);
  }
  std::vector<GgufKV> kv;
  kv.push_back({"tokenizer.ggml.model", GgufValue::Str(v.model)});
  if (!v.pre.empty()) kv.push_back({"tokenizer.ggml.pre", GgufValue::Str(v.pre)});
  kv.push_back({"tokenizer.ggml.tokens", GgufValue::StrArray(v.tokens)});
  if (!v.scores.empty()) kv.push_back({"tokenizer.ggml.scores", GgufValue::F32Array(v.scores)});
  kv.push_back({"tokenizer.ggml.token_type", GgufValue::IntArray(GgufType::kInt32, v.types)});
  if (!v.merges.empty()) kv.push_back({"tokenizer.ggml.merges", GgufValue::StrArray(v.merges)});
  if (v.bos >= 0) kv.push_back({"tokenizer.ggml.bos_token_id", GgufValue::U32(static_cast<uint32_t>(v.bos))});
  if (v.eos >= 0) kv.push_back({"tokenizer.ggml.eos_token_id", GgufValue::U32(static_cast<uint32_t>(v.eos))});
  if (v.unk >= 0) kv.push_back({"tokenizer.ggml.unknown_token_id", GgufValue::U32(static_cast<uint32_t>(v.unk))});
  kv.push_back({"tokenizer.ggml.add_bos_token", GgufValue::Bool(v.add_bos)});
  kv.push_back({"tokenizer.ggml.add_eos_token", GgufValue::Bool(false)});
  if (v.model == "llama") kv.push_back({"tokenizer.ggml.add_space_prefix", GgufValue::Bool(true)});
  return kv;
}

namespace {

absl::StatusOr<const GgufValue*> ArrayOf(const GgufFile& f, absl::string_view key, GgufType elem, bool required) {
  const GgufValue* v = f.Find(key);
  if (v == nullptr) {
    if (!required) return nullptr;
    return absl::InvalidArgumentError(absl::StrCat(f.path, ": GGUF metadata ", key, ": missing"));
  }
  const bool int_ok = elem == GgufType::kInt32 && v->is_array() && v->elem_type != GgufType::kString &&
                      v->elem_type != GgufType::kFloat32 && v->elem_type != GgufType::kFloat64 &&
                      v->elem_type != GgufType::kBool;
  if (!v->is_array() || (v->elem_type != elem && !int_ok)) {
    return absl::InvalidArgumentError(absl::StrCat(f.path, ": GGUF metadata ", key, ": expected an array of ",
                                                   GgufTypeName(elem), ", found ",
                                                   v->is_array() ? "an array of " : "a ",
                                                   GgufTypeName(v->element_type())));
  }
  return v;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LlamaFromGguf(const GgufFile& f, const GgufValue& tokens) {
  auto bad = [&](absl::string_view what) {
    return absl::UnimplementedError(
        absl::StrCat(f.path, ": GGUF tokenizer.ggml.model \"llama\": ", what));
  };
  SQ_ASSIGN_OR_RETURN(const GgufValue* scores, ArrayOf(f, "tokenizer.ggml.scores", GgufType::kFloat32, true));
  const int64_t n = tokens.size();
  if (scores->size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(f.path, ": GGUF metadata tokenizer.ggml.scores: ", scores->size(),
                                                   " entries for ", n, " tokens"));
  }
  SQ_ASSIGN_OR_RETURN(int64_t bos, f.GetIntOr("tokenizer.ggml.bos_token_id", 1));
  SQ_ASSIGN_OR_RETURN(int64_t eos, f.GetIntOr("tokenizer.ggml.eos_token_id", 2));
  if (bos != 1 || eos != 2 || n < 259) {
    return bad(absl::StrCat("this reader needs bos 1, eos 2 and at least 259 tokens (got bos ", bos, ", eos ", eos,
                            ", ", n, " tokens)"));
  }
  for (int b = 0; b < 256; ++b) {
    if (ByteTokenValue(tokens.strings[3 + b]) != b) {
      return bad(absl::StrCat("token ", 3 + b, " is \"", tokens.strings[3 + b], "\", expected the byte token <0x",
                              absl::StrFormat("%02X", b), "> (byte tokens at ids 3..258)"));
    }
  }
  // The tokenizer.bin image: int32 max_len, then (float score, int32 len, bytes).
  std::string bin(4, '\0');
  int32_t max_len = 0;
  for (int64_t id = 0; id < n; ++id) {
    std::string piece = absl::StrReplaceAll(tokens.strings[id], {{kSpm, " "}});
    if (id == 1) piece = "\n<s>\n";  // run.c's spelling; Decode omits BOS/EOS
    if (id == 2) piece = "\n</s>\n";
    const float score = static_cast<float>(scores->floats[id]);
    const int32_t len = static_cast<int32_t>(piece.size());
    max_len = std::max(max_len, len);
    char buf[8];
    std::memcpy(buf, &score, 4);
    std::memcpy(buf + 4, &len, 4);
    bin.append(buf, 8);
    bin += piece;
  }
  std::memcpy(bin.data(), &max_len, 4);
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<Llama2cTokenizer> t, Llama2cTokenizer::FromBytes(bin, f.path));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Gpt2FromGguf(const GgufFile& f, const GgufValue& tokens) {
  std::string pre = "gpt-2";
  if (f.Find("tokenizer.ggml.pre") != nullptr) {
    SQ_ASSIGN_OR_RETURN(pre, f.GetString("tokenizer.ggml.pre"));
  }
  if (pre != "gpt-2" && pre != "default") {
    return absl::UnimplementedError(absl::StrCat(f.path, ": GGUF tokenizer.ggml.pre \"", pre,
                                                 "\" is not supported (only gpt-2)"));
  }
  SQ_ASSIGN_OR_RETURN(const GgufValue* merges, ArrayOf(f, "tokenizer.ggml.merges", GgufType::kString, true));
  SQ_ASSIGN_OR_RETURN(const GgufValue* types, ArrayOf(f, "tokenizer.ggml.token_type", GgufType::kInt32, false));
  const int64_t n = tokens.size();
  if (types != nullptr && types->size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(f.path, ": GGUF metadata tokenizer.ggml.token_type: ",
                                                   types->size(), " entries for ", n, " tokens"));
  }
  json vocab = json::object();
  json added = json::array();
  for (int64_t id = 0; id < n; ++id) {
    const int64_t type = types ? types->ints[id] : int64_t{kGgufTokenNormal};
    if (type == kGgufTokenUnused) continue;
    if (type == kGgufTokenControl || type == kGgufTokenUserDefined) {
      added.push_back({{"id", id},
                       {"content", tokens.strings[id]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", type == kGgufTokenControl}});
    }
    vocab[tokens.strings[id]] = id;
  }
  json j;
  j["version"] = "1.0";
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},     {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false},
                {"vocab", vocab},    {"merges", merges->strings}};
  json config = json::object();
  SQ_ASSIGN_OR_RETURN(int64_t bos, f.GetIntOr("tokenizer.ggml.bos_token_id", -1));
  SQ_ASSIGN_OR_RETURN(int64_t eos, f.GetIntOr("tokenizer.ggml.eos_token_id", -1));
  if (bos >= 0 && bos < n) config["bos_token"] = tokens.strings[bos];
  if (eos >= 0 && eos < n) config["eos_token"] = tokens.strings[eos];
  bool add_bos = false;
  if (f.Find("tokenizer.ggml.add_bos_token") != nullptr) {
    SQ_ASSIGN_OR_RETURN(add_bos, f.GetBool("tokenizer.ggml.add_bos_token"));
  }
  config["add_bos_token"] = add_bos;
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<HfBpeTokenizer> t,
                      HfBpeTokenizer::FromJson(j.dump(), f.path + " (tokenizer.ggml.*)", config.dump()));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerFromGguf(const GgufFile& f) {
  SQ_ASSIGN_OR_RETURN(std::string model, f.GetString("tokenizer.ggml.model"));
  SQ_ASSIGN_OR_RETURN(const GgufValue* tokens, ArrayOf(f, "tokenizer.ggml.tokens", GgufType::kString, true));
  if (model == "llama") return LlamaFromGguf(f, *tokens);
  if (model == "gpt2") return Gpt2FromGguf(f, *tokens);
  return absl::UnimplementedError(absl::StrCat(f.path, ": GGUF tokenizer.ggml.model \"", model,
                                               "\" is not supported (llama or gpt2)"));
}

}  // namespace squeeze
