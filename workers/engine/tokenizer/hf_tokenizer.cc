#include "workers/engine/tokenizer/hf_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/tokenizer/bpe_merge.h"
#include "workers/engine/tokenizer/byte_level.h"
#include "workers/engine/tokenizer/unicode.h"

namespace squeeze {
namespace {

using json = nlohmann::json;

uint64_t PairKey(int a, int b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// "<0xAB>" -> 0xAB, else -1.
int ParseByteToken(absl::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = t[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

std::string TypeOf(const json& j) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return "";
  return j["type"].get<std::string>();
}

// A JSON field that may be a string or {"content": string} (tokenizer_config).
std::optional<std::string> TokenName(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) {
    return j["content"].get<std::string>();
  }
  return std::nullopt;
}

// Strips Unicode white space (JS trimStart/trimEnd) from one side.
void TrimSpaces(std::string* s, bool at_end) {
  if (at_end) {
    while (!s->empty()) {
      // Find the start of the last character.
      size_t p = s->size() - 1;
      while (p > 0 && (static_cast<unsigned char>((*s)[p]) & 0xC0) == 0x80) --p;
      if (!IsSpace(DecodeUtf8(*s, p).cp)) break;
      s->resize(p);
    }
  } else {
    size_t p = 0;
    while (p < s->size()) {
      const Utf8Char c = DecodeUtf8(*s, p);
      if (!IsSpace(c.cp)) break;
      p += c.len;
    }
    s->erase(0, p);
  }
}

}  // namespace

// Fills an HfBpeTokenizer from parsed JSON; every error names the field.
class HfBpeBuilder {
 public:
  using NormStep = HfBpeTokenizer::NormStep;

  HfBpeBuilder(HfBpeTokenizer* t, std::string name) : t_(t), name_(std::move(name)) {}

  absl::Status Error(absl::string_view field, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": ", field, ": ", what));
  }
  absl::Status Unsupported(absl::string_view field, absl::string_view what) const {
    return absl::UnimplementedError(
        absl::StrCat(name_, ": ", field, ": ", what, " is not supported"));
  }

  absl::Status SetVocab(const json& vocab) {
    if (!vocab.is_object()) return Error("model.vocab", "must be an object of token -> id");
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      if (!it.value().is_number_integer()) {
        return Error("model.vocab", absl::StrCat("id of \"", it.key(), "\" is not an integer"));
      }
      const int64_t id = it.value().get<int64_t>();
      SQ_RETURN_IF_ERROR(CheckId("model.vocab", id, it.key()));
      SQ_RETURN_IF_ERROR(SetToken(static_cast<int>(id), it.key(), "model.vocab"));
    }
    return absl::OkStatus();
  }

  // The id table is sized by the largest id, so ids are bounded by what the
  // file declares (`declared` vocab entries + added tokens): at most
  // 2 * declared + 256 (and 2^24), never by an untrusted number alone.
  void LimitIds(int64_t declared) { max_id_ = std::min<int64_t>(1 << 24, 2 * declared + 256); }
  absl::Status CheckId(absl::string_view field, int64_t id, const std::string& token) const {
    if (id < 0 || id > max_id_) {
      return Error(field, absl::StrCat("id ", id, " of \"", token, "\" out of range (0..", max_id_,
                                       " for the tokens this file declares)"));
    }
    return absl::OkStatus();
  }

  // Sequences nest through the field path ("normalizer.normalizers[0]...");
  // real files nest one or two levels. Deeper nesting is refused so that a
  // small file cannot make the recursion (and the field paths) unbounded.
  static constexpr int kMaxSequenceNesting = 8;
  absl::Status CheckNesting(const std::string& field) const {
    if (std::count(field.begin(), field.end(), '[') >= kMaxSequenceNesting) {
      return Error(field, absl::StrCat("Sequence nested more than ", kMaxSequenceNesting, " levels deep"));
    }
    return absl::OkStatus();
  }

  absl::Status SetToken(int id, const std::string& token, absl::string_view field) {
    if (id >= static_cast<int>(t_->id_to_token_.size())) t_->id_to_token_.resize(id + 1);
    t_->id_to_token_[id] = token;
    auto [it, inserted] = t_->token_to_id_.emplace(token, id);
    if (!inserted && it->second != id) {
      // Keep the lowest id for lookups; both ids still decode.
      it->second = std::min(it->second, id);
    }
    return absl::OkStatus();
  }

  // `merges`: vector of (left, right) token strings, in rank order.
  absl::Status SetMerges(const std::vector<std::pair<std::string, std::string>>& merges,
                         absl::string_view field) {
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const auto& [a, b] = merges[rank];
      const int ia = t_->TokenId(a), ib = t_->TokenId(b), im = t_->TokenId(a + b);
      if (ia < 0 || ib < 0 || im < 0) {
        return Error(field, absl::StrCat("merge ", rank, " \"", a, " ", b,
                                         "\" uses a token that is not in the vocab"));
      }
      // A repeated merge takes its last rank, as every reference implementation does.
      t_->merges_[PairKey(ia, ib)] = {static_cast<int>(rank), im};
    }
    return absl::OkStatus();
  }

  absl::Status ParseMerges(const json& m) {
    if (!m.is_array()) return Error("model.merges", "must be an array");
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(m.size());
    for (size_t i = 0; i < m.size(); ++i) {
      const json& e = m[i];
      if (e.is_string()) {
        const std::string s = e.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos) {
          return Error("model.merges", absl::StrCat("entry ", i, " \"", s, "\" has no space"));
        }
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        return Error("model.merges", absl::StrCat("entry ", i, " is neither \"a b\" nor [a, b]"));
      }
    }
    return SetMerges(merges, "model.merges");
  }

  absl::Status ParseModel(const json& model) {
    if (!model.is_object()) return Error("model", "missing or not an object");
    const std::string type = TypeOf(model);
    if (!type.empty() && type != "BPE") {
      return Unsupported("model.type", absl::StrCat("\"", type, "\""));
    }
    if (type.empty() && !model.contains("merges")) {
      return Error("model.type", "missing (and no merges to infer BPE from)");
    }
    for (const char* f : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (model.contains(f) && !model[f].is_null() &&
          !(model[f].is_string() && model[f].get<std::string>().empty())) {
        return Unsupported(absl::StrCat("model.", f), "a non-empty value");
      }
    }
    if (model.contains("dropout") && model["dropout"].is_number() &&
        model["dropout"].get<double>() > 0) {
      return Unsupported("model.dropout", "BPE dropout");
    }
    if (!model.contains("vocab")) return Error("model.vocab", "missing");
    SQ_RETURN_IF_ERROR(SetVocab(model["vocab"]));
    if (!model.contains("merges")) return Error("model.merges", "missing");
    SQ_RETURN_IF_ERROR(ParseMerges(model["merges"]));
    const auto flag = [&](const char* f) {
      return model.contains(f) && model[f].is_boolean() && model[f].get<bool>();
    };
    t_->byte_fallback_ = flag("byte_fallback");
    t_->fuse_unk_ = flag("fuse_unk");
    t_->ignore_merges_ = flag("ignore_merges");
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      unk_name_ = model["unk_token"].get<std::string>();
    }
    return absl::OkStatus();
  }

  absl::Status ParseAddedTokens(const json& added) {
    if (added.is_null()) return absl::OkStatus();
    if (!added.is_array()) return Error("added_tokens", "must be an array");
    for (size_t i = 0; i < added.size(); ++i) {
      const json& a = added[i];
      const std::string field = absl::StrCat("added_tokens[", i, "]");
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          !a.contains("content") || !a["content"].is_string()) {
        return Error(field, "needs an integer id and a string content");
      }
      const int64_t id = a["id"].get<int64_t>();
      SQ_RETURN_IF_ERROR(CheckId(field, id, a["content"].get<std::string>()));
      HfBpeTokenizer::AddedToken tok;
      tok.id = static_cast<int>(id);
      tok.content = a["content"].get<std::string>();
      const auto flag = [&](const char* f) {
        return a.contains(f) && a[f].is_boolean() && a[f].get<bool>();
      };
      tok.special = flag("special");
      tok.lstrip = flag("lstrip");
      tok.rstrip = flag("rstrip");
      if (tok.content.empty()) return Error(field, "empty content");
      SQ_RETURN_IF_ERROR(SetToken(tok.id, tok.content, field));
      t_->added_.push_back(std::move(tok));
    }
    return absl::OkStatus();
  }

  absl::Status ParseNormalizer(const json& n, const std::string& field) {
    if (n.is_null()) return absl::OkStatus();
    const std::string type = TypeOf(n);
    if (type == "Sequence") {
      SQ_RETURN_IF_ERROR(CheckNesting(field));
      if (!n.contains("normalizers") || !n["normalizers"].is_array()) {
        return Error(field + ".normalizers", "must be an array");
      }
      for (size_t i = 0; i < n["normalizers"].size(); ++i) {
        SQ_RETURN_IF_ERROR(
            ParseNormalizer(n["normalizers"][i], absl::StrCat(field, ".normalizers[", i, "]")));
      }
      return absl::OkStatus();
    }
    if (type == "Prepend") {
      if (!n.contains("prepend") || !n["prepend"].is_string()) {
        return Error(field + ".prepend", "must be a string");
      }
      t_->normalizers_.push_back(
          {HfBpeTokenizer::NormStep::kPrepend, "", n["prepend"].get<std::string>()});
      return absl::OkStatus();
    }
    if (type == "Replace") {
      SQ_ASSIGN_OR_RETURN(HfBpeTokenizer::Replace r, ParseReplace(n, field));
      t_->normalizers_.push_back({HfBpeTokenizer::NormStep::kReplace, r.from, r.to});
      return absl::OkStatus();
    }
    if (type == "NFC") {
      t_->normalizers_.push_back({HfBpeTokenizer::NormStep::kNfc, "", ""});
      return absl::OkStatus();
    }
    return Unsupported(field + ".type", absl::StrCat("normalizer \"", type, "\""));
  }

  absl::StatusOr<HfBpeTokenizer::Replace> ParseReplace(const json& n, const std::string& field) {
    if (!n.contains("pattern") || !n["pattern"].is_object()) {
      return Error(field + ".pattern", "must be an object");
    }
    const json& p = n["pattern"];
    if (!p.contains("String") || !p["String"].is_string()) {
      return Unsupported(field + ".pattern", "a pattern other than {\"String\": ...}");
    }
    if (!n.contains("content") || !n["content"].is_string()) {
      return Error(field + ".content", "must be a string");
    }
    HfBpeTokenizer::Replace r{p["String"].get<std::string>(), n["content"].get<std::string>()};
    if (r.from.empty()) return Error(field + ".pattern", "empty string");
    return r;
  }

  absl::Status ParseMetaspace(const json& p, const std::string& field, bool decoder) {
    std::string replacement = "\xE2\x96\x81";  // U+2581
    if (p.contains("replacement") && p["replacement"].is_string()) {
      replacement = p["replacement"].get<std::string>();
    }
    HfBpeTokenizer::Prepend scheme = HfBpeTokenizer::Prepend::kAlways;
    if (p.contains("prepend_scheme") && p["prepend_scheme"].is_string()) {
      const std::string s = p["prepend_scheme"].get<std::string>();
      if (s == "always") {
        scheme = HfBpeTokenizer::Prepend::kAlways;
      } else if (s == "first") {
        scheme = HfBpeTokenizer::Prepend::kFirst;
      } else if (s == "never") {
        scheme = HfBpeTokenizer::Prepend::kNever;
      } else {
        return Error(field + ".prepend_scheme", absl::StrCat("unknown value \"", s, "\""));
      }
    } else if (p.contains("add_prefix_space") && p["add_prefix_space"].is_boolean() &&
               !p["add_prefix_space"].get<bool>()) {
      scheme = HfBpeTokenizer::Prepend::kNever;
    }
    if (decoder) {
      t_->decode_replaces_.push_back({replacement, " "});
      if (scheme != HfBpeTokenizer::Prepend::kNever) t_->decode_strip_leading_ = 1;
      return absl::OkStatus();
    }
    t_->metaspace_ = true;
    t_->metaspace_replacement_ = replacement;
    t_->metaspace_prepend_ = scheme;
    t_->metaspace_split_ = !(p.contains("split") && p["split"].is_boolean()) ||
                           p["split"].get<bool>();
    return absl::OkStatus();
  }

  absl::Status ParsePreTokenizer(const json& p, const std::string& field) {
    if (p.is_null()) return absl::OkStatus();
    const std::string type = TypeOf(p);
    if (type == "Sequence") {
      SQ_RETURN_IF_ERROR(CheckNesting(field));
      if (!p.contains("pretokenizers") || !p["pretokenizers"].is_array()) {
        return Error(field + ".pretokenizers", "must be an array");
      }
      for (size_t i = 0; i < p["pretokenizers"].size(); ++i) {
        SQ_RETURN_IF_ERROR(ParsePreTokenizer(p["pretokenizers"][i],
                                             absl::StrCat(field, ".pretokenizers[", i, "]")));
      }
      return absl::OkStatus();
    }
    if (type == "ByteLevel") {
      t_->byte_level_ = true;
      t_->add_prefix_space_ = p.contains("add_prefix_space") &&
                              p["add_prefix_space"].is_boolean() &&
                              p["add_prefix_space"].get<bool>();
      t_->use_regex_ = !(p.contains("use_regex") && p["use_regex"].is_boolean()) ||
                       p["use_regex"].get<bool>();
      return absl::OkStatus();
    }
    if (type == "Metaspace") return ParseMetaspace(p, field, /*decoder=*/false);
    if (type == "Split") {
      const bool isolated = p.contains("behavior") && p["behavior"].is_string() &&
                            p["behavior"].get<std::string>() == "Isolated";
      const bool inverted = p.contains("invert") && p["invert"].is_boolean() &&
                            p["invert"].get<bool>();
      const json& pattern = p.contains("pattern") ? p["pattern"] : json();
      const int digits = pattern.is_object() && pattern.contains("Regex") &&
                                 pattern["Regex"].is_string()
                             ? MaxDigitsOfSplitPattern(pattern["Regex"].get<std::string>())
                             : 0;
      if (!isolated || inverted || digits == 0 || t_->split_digits_ != 0) {
        return Unsupported(field, "a Split other than the Llama-3 / Qwen2 regex, Isolated");
      }
      t_->split_digits_ = digits;
      return absl::OkStatus();
    }
    return Unsupported(field + ".type", absl::StrCat("pre-tokenizer \"", type, "\""));
  }

  absl::Status ParseDecoder(const json& d, const std::string& field) {
    if (d.is_null()) return absl::OkStatus();
    const std::string type = TypeOf(d);
    if (type == "Sequence") {
      SQ_RETURN_IF_ERROR(CheckNesting(field));
      if (!d.contains("decoders") || !d["decoders"].is_array()) {
        return Error(field + ".decoders", "must be an array");
      }
      for (size_t i = 0; i < d["decoders"].size(); ++i) {
        SQ_RETURN_IF_ERROR(
            ParseDecoder(d["decoders"][i], absl::StrCat(field, ".decoders[", i, "]")));
      }
      return absl::OkStatus();
    }
    if (type == "Replace") {
      SQ_ASSIGN_OR_RETURN(HfBpeTokenizer::Replace r, ParseReplace(d, field));
      t_->decode_replaces_.push_back(std::move(r));
      return absl::OkStatus();
    }
    if (type == "ByteFallback" || type == "Fuse" || type == "ByteLevel") {
      return absl::OkStatus();  // built into Decode
    }
    if (type == "Strip") {
      const std::string content =
          d.contains("content") && d["content"].is_string() ? d["content"].get<std::string>() : " ";
      const int start = d.contains("start") && d["start"].is_number_integer()
                            ? d["start"].get<int>() : 0;
      const int stop = d.contains("stop") && d["stop"].is_number_integer()
                           ? d["stop"].get<int>() : 0;
      if (content != " " || stop != 0 || start < 0) {
        return Unsupported(field, "Strip other than of leading spaces");
      }
      t_->decode_strip_leading_ = start;
      return absl::OkStatus();
    }
    if (type == "Metaspace") return ParseMetaspace(d, field, /*decoder=*/true);
    return Unsupported(field + ".type", absl::StrCat("decoder \"", type, "\""));
  }

  absl::Status ParsePostProcessor(const json& p, const std::string& field) {
    if (p.is_null()) return absl::OkStatus();
    const std::string type = TypeOf(p);
    if (type == "Sequence") {
      SQ_RETURN_IF_ERROR(CheckNesting(field));
      if (!p.contains("processors") || !p["processors"].is_array()) {
        return Error(field + ".processors", "must be an array");
      }
      for (size_t i = 0; i < p["processors"].size(); ++i) {
        SQ_RETURN_IF_ERROR(
            ParsePostProcessor(p["processors"][i], absl::StrCat(field, ".processors[", i, "]")));
      }
      return absl::OkStatus();
    }
    if (type == "ByteLevel") return absl::OkStatus();  // offsets only
    if (type != "TemplateProcessing") {
      return Unsupported(field + ".type", absl::StrCat("post-processor \"", type, "\""));
    }
    if (!p.contains("single") || !p["single"].is_array()) {
      return Error(field + ".single", "must be an array");
    }
    have_template_ = true;
    for (const json& item : p["single"]) {
      if (item.contains("Sequence")) break;  // only what comes before $A
      if (!item.contains("SpecialToken") || !item["SpecialToken"].contains("id")) {
        return Error(field + ".single", "items must be Sequence or SpecialToken");
      }
      const std::string name = item["SpecialToken"]["id"].get<std::string>();
      std::vector<int> ids;
      if (p.contains("special_tokens") && p["special_tokens"].contains(name) &&
          p["special_tokens"][name].contains("ids")) {
        ids = p["special_tokens"][name]["ids"].get<std::vector<int>>();
      } else if (t_->TokenId(name) >= 0) {
        ids = {t_->TokenId(name)};
      } else {
        return Error(field + ".single", absl::StrCat("special token \"", name, "\" has no id"));
      }
      for (int id : ids) {
        if (id < 0 || id >= t_->vocab_size()) {
          return Error(field + ".special_tokens", absl::StrCat("id ", id, " outside the vocab"));
        }
        t_->prefix_ids_.push_back(id);
      }
    }
    return absl::OkStatus();
  }

  // Everything that follows from the parsed fields.
  absl::Status Finish(const json* config) {
    HfBpeTokenizer& t = *t_;
    if (t.split_digits_ && (!t.byte_level_ || t.use_regex_)) {
      return Unsupported("pre_tokenizer", "Split not followed by ByteLevel(use_regex=false)");
    }
    bool only_nfc = true;
    for (const auto& step : t.normalizers_) only_nfc = only_nfc && step.kind == NormStep::kNfc;
    if (t.byte_level_ && (t.metaspace_ || !only_nfc)) {
      return Unsupported("pre_tokenizer",
                         "ByteLevel combined with Metaspace or a normalizer other than NFC");
    }
    const int n = t.vocab_size();
    if (!unk_name_.empty()) {
      t.unk_id_ = t.TokenId(unk_name_);
      if (t.unk_id_ < 0) return Error("model.unk_token", absl::StrCat("\"", unk_name_, "\" is not in the vocab"));
    }
    t.byte_token_.assign(256, -1);
    t.token_byte_.assign(n, -1);
    for (int id = 0; id < n; ++id) {
      const int b = ParseByteToken(t.id_to_token_[id]);
      if (b >= 0) {
        t.token_byte_[id] = b;
        if (t.byte_token_[b] < 0) t.byte_token_[b] = id;
      }
    }
    t.is_special_.assign(n, 0);
    t.is_added_.assign(n, 0);
    for (const auto& a : t.added_) {
      t.is_special_[a.id] = a.special;
      t.is_added_[a.id] = 1;
    }
    // Longest added token first, so the first match at a position is the longest.
    std::stable_sort(t.added_.begin(), t.added_.end(),
                     [](const auto& a, const auto& b) { return a.content.size() > b.content.size(); });
    t.added_by_first_byte_.assign(256, {});
    for (size_t i = 0; i < t.added_.size(); ++i) {
      t.added_by_first_byte_[static_cast<unsigned char>(t.added_[i].content[0])].push_back(
          static_cast<int>(i));
    }
    // BOS / EOS: tokenizer_config.json names them; else the template's first
    // special token / the usual names.
    const auto named = [&](const char* key) -> int {
      if (config == nullptr || !config->contains(key)) return -1;
      const std::optional<std::string> name = TokenName((*config)[key]);
      return name ? t.TokenId(*name) : -1;
    };
    t.bos_id_ = named("bos_token");
    if (t.bos_id_ < 0 && !t.prefix_ids_.empty()) t.bos_id_ = t.prefix_ids_.front();
    if (t.bos_id_ < 0 && !have_template_) t.bos_id_ = t.TokenId("<s>");
    t.eos_id_ = named("eos_token");
    for (const char* name : {"</s>", "<|endoftext|>", "<|end_of_text|>"}) {
      if (t.eos_id_ < 0) t.eos_id_ = t.TokenId(name);
    }
    if (!have_template_ && t.bos_id_ >= 0) {
      const bool add_bos = config == nullptr || !config->contains("add_bos_token") ||
                           !(*config)["add_bos_token"].is_boolean() ||
                           (*config)["add_bos_token"].get<bool>();
      if (add_bos) t.prefix_ids_ = {t.bos_id_};
    }
    return absl::OkStatus();
  }

  bool have_template_ = false;

 private:
  HfBpeTokenizer* t_;
  std::string name_;
  std::string unk_name_;
  int64_t max_id_ = 1 << 24;
};

absl::StatusOr<std::unique_ptr<HfBpeTokenizer>> HfBpeTokenizer::FromJson(
    absl::string_view tokenizer_json, const std::string& name,
    std::optional<std::string> config_json) {
  std::unique_ptr<HfBpeTokenizer> t(new HfBpeTokenizer());
  HfBpeBuilder b(t.get(), name);
  try {
    const json j = json::parse(tokenizer_json.begin(), tokenizer_json.end(), nullptr,
                               /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": not a JSON object"));
    }
    json config;
    if (config_json) {
      config = json::parse(*config_json, nullptr, /*allow_exceptions=*/false);
      if (config.is_discarded() || !config.is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ": the tokenizer_config.json beside it is not a JSON object"));
      }
    }
    if (!j.contains("model")) return b.Error("model", "missing");
    {
      int64_t declared = 0;
      if (j["model"].is_object() && j["model"].contains("vocab")) declared += j["model"]["vocab"].size();
      if (j.contains("added_tokens")) declared += j["added_tokens"].size();
      b.LimitIds(declared);
    }
    SQ_RETURN_IF_ERROR(b.ParseModel(j["model"]));
    if (j.contains("added_tokens")) SQ_RETURN_IF_ERROR(b.ParseAddedTokens(j["added_tokens"]));
    if (j.contains("normalizer")) SQ_RETURN_IF_ERROR(b.ParseNormalizer(j["normalizer"], "normalizer"));
    if (j.contains("pre_tokenizer")) {
      SQ_RETURN_IF_ERROR(b.ParsePreTokenizer(j["pre_tokenizer"], "pre_tokenizer"));
    }
    if (j.contains("decoder")) SQ_RETURN_IF_ERROR(b.ParseDecoder(j["decoder"], "decoder"));
    if (j.contains("post_processor")) {
      SQ_RETURN_IF_ERROR(b.ParsePostProcessor(j["post_processor"], "post_processor"));
    }
    SQ_RETURN_IF_ERROR(b.Finish(config_json ? &config : nullptr));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": malformed tokenizer: ", e.what()));
  }
  return t;
}

absl::StatusOr<std::unique_ptr<HfBpeTokenizer>> HfBpeTokenizer::FromFile(const std::string& path) {
  SQ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  std::optional<std::string> config;
  const std::filesystem::path cfg =
      std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::exists(cfg, ec)) {
    SQ_ASSIGN_OR_RETURN(config, ReadFileToString(cfg.string()));
  }
  return FromJson(text, path, std::move(config));
}

absl::StatusOr<std::unique_ptr<HfBpeTokenizer>> HfBpeTokenizer::FromGpt2Files(
    const std::string& vocab_json_path, const std::string& merges_path) {
  SQ_ASSIGN_OR_RETURN(std::string vocab_text, ReadFileToString(vocab_json_path));
  SQ_ASSIGN_OR_RETURN(std::string merges_text, ReadFileToString(merges_path));
  std::unique_ptr<HfBpeTokenizer> t(new HfBpeTokenizer());
  {
    HfBpeBuilder b(t.get(), vocab_json_path);
    try {
      const json j = json::parse(vocab_text, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) {
        return absl::InvalidArgumentError(absl::StrCat(vocab_json_path, ": not valid JSON"));
      }
      b.LimitIds(static_cast<int64_t>(j.size()));
      SQ_RETURN_IF_ERROR(b.SetVocab(j));
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(vocab_json_path, ": ", e.what()));
    }
  }
  HfBpeBuilder b(t.get(), merges_path);
  // Lines "a b"; a first line starting with "#version" is a header; blank
  // lines are skipped (GPT-2's file ends with one).
  std::vector<std::pair<std::string, std::string>> merges;
  size_t line_no = 0;
  for (absl::string_view rest = merges_text; !rest.empty();) {
    const size_t nl = rest.find('\n');
    absl::string_view line = rest.substr(0, nl);
    rest = nl == absl::string_view::npos ? absl::string_view() : rest.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.substr(0, 8) == "#version")) continue;
    const size_t sp = line.find(' ');
    if (sp == absl::string_view::npos || line.find(' ', sp + 1) != absl::string_view::npos) {
      return b.Error(absl::StrCat("line ", line_no), "is not \"left right\"");
    }
    merges.emplace_back(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)));
  }
  SQ_RETURN_IF_ERROR(b.SetMerges(merges, "merges"));
  t->byte_level_ = true;
  t->use_regex_ = true;
  t->add_prefix_space_ = false;
  b.have_template_ = true;  // GPT-2 adds nothing around the text
  SQ_RETURN_IF_ERROR(b.Finish(nullptr));
  t->bos_id_ = t->eos_id_ = t->TokenId("<|endoftext|>");
  return t;
}

int HfBpeTokenizer::TokenId(absl::string_view token) const {
  auto it = token_to_id_.find(std::string(token));
  return it == token_to_id_.end() ? -1 : it->second;
}

void HfBpeTokenizer::EncodeWord(absl::string_view word, std::vector<int>* out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const int id = TokenId(word);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  // Symbols: vocab ids of the characters; a character outside the vocab is
  // -(1 + its index in `unknown`) and never merges (the JS reference keeps it
  // as a string no merge names, then byte-falls it back).
  std::vector<int> symbols;
  std::vector<absl::string_view> unknown;
  for (size_t pos = 0; pos < word.size();) {
    const int len = DecodeUtf8(word, pos).len;
    const absl::string_view ch = word.substr(pos, len);
    const int id = TokenId(ch);
    if (id >= 0) {
      symbols.push_back(id);
    } else {
      unknown.push_back(ch);
      symbols.push_back(-static_cast<int>(unknown.size()));
    }
    pos += len;
  }
  const auto lookup = [this](int a, int b) -> std::optional<PairMerge> {
    if (a < 0 || b < 0) return std::nullopt;
    auto it = merges_.find(PairKey(a, b));
    if (it == merges_.end()) return std::nullopt;
    return PairMerge{static_cast<double>(it->second.first), it->second.second};
  };
  MergeByPriority(&symbols, lookup);
  for (int s : symbols) {
    if (s >= 0) {
      out->push_back(s);
      continue;
    }
    const absl::string_view ch = unknown[-s - 1];
    bool all_bytes = byte_fallback_;
    for (unsigned char c : ch) all_bytes = all_bytes && byte_token_[c] >= 0;
    if (all_bytes) {
      for (unsigned char c : ch) out->push_back(byte_token_[c]);
    } else if (unk_id_ >= 0) {
      if (!(fuse_unk_ && !out->empty() && out->back() == unk_id_)) out->push_back(unk_id_);
    }
    // No byte fallback and no unk token: the character is dropped (HF errors).
  }
}

void HfBpeTokenizer::EncodeSection(absl::string_view section, int section_index,
                                   std::vector<int>* out) const {
  std::string text(section);
  for (const NormStep& step : normalizers_) {
    if (text.empty()) break;
    switch (step.kind) {
      case NormStep::kPrepend:
        text = step.to + text;
        break;
      case NormStep::kReplace:
        text = absl::StrReplaceAll(text, {{step.from, step.to}});
        break;
      case NormStep::kNfc:
        text = NormalizeNfc(text);
        break;
    }
  }
  if (text.empty()) return;
  if (byte_level_) {
    if (add_prefix_space_ && text[0] != ' ') text = " " + text;  // not insert(): GCC 12 -Wrestrict
    if (split_digits_ > 0) {
      for (absl::string_view piece : SplitLlama3(text, split_digits_)) {
        EncodeWord(BytesToByteLevel(piece), out);
      }
      return;
    }
    if (!use_regex_) {
      EncodeWord(BytesToByteLevel(text), out);
      return;
    }
    for (absl::string_view piece : SplitGpt2(text)) EncodeWord(BytesToByteLevel(piece), out);
    return;
  }
  if (metaspace_) {
    const std::string& r = metaspace_replacement_;
    text = absl::StrReplaceAll(text, {{" ", r}});
    const bool prepend = metaspace_prepend_ == Prepend::kAlways ||
                         (metaspace_prepend_ == Prepend::kFirst && section_index == 0);
    if (prepend && text.compare(0, r.size(), r) != 0) text.insert(0, r);
    if (metaspace_split_ && !r.empty()) {
      // Split before each replacement character (it starts the next word).
      size_t start = 0;
      for (size_t p = text.find(r, 1); p != std::string::npos; p = text.find(r, p + r.size())) {
        EncodeWord(absl::string_view(text).substr(start, p - start), out);
        start = p;
      }
      EncodeWord(absl::string_view(text).substr(start), out);
      return;
    }
  }
  EncodeWord(text, out);
}

std::vector<int> HfBpeTokenizer::Encode(absl::string_view text, bool add_bos) const {
  std::vector<int> out;
  if (add_bos) out = prefix_ids_;
  // Split out added tokens (longest match at the leftmost position).
  struct Section {
    std::string text;
    const AddedToken* added;  // null for ordinary text
  };
  std::vector<Section> sections;
  size_t start = 0;
  for (size_t pos = 0; pos < text.size();) {
    const AddedToken* hit = nullptr;
    for (int k : added_by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const AddedToken& a = added_[k];
      if (text.compare(pos, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    if (pos > start) sections.push_back({std::string(text.substr(start, pos - start)), nullptr});
    sections.push_back({hit->content, hit});
    pos += hit->content.size();
    start = pos;
  }
  if (start < text.size()) sections.push_back({std::string(text.substr(start)), nullptr});
  for (size_t i = 0; i < sections.size(); ++i) {
    const AddedToken* a = sections[i].added;
    if (a == nullptr) continue;
    if (a->lstrip && i > 0 && !sections[i - 1].added) TrimSpaces(&sections[i - 1].text, true);
    if (a->rstrip && i + 1 < sections.size() && !sections[i + 1].added) {
      TrimSpaces(&sections[i + 1].text, false);
    }
  }
  for (size_t i = 0; i < sections.size(); ++i) {
    if (sections[i].added) {
      out.push_back(sections[i].added->id);
    } else {
      EncodeSection(sections[i].text, static_cast<int>(i), &out);
    }
  }
  return out;
}

std::string HfBpeTokenizer::PieceText(int id) const {
  if (id < 0 || id >= vocab_size()) return "";
  const std::string& tok = id_to_token_[id];
  if (is_added_[id]) return tok;  // added tokens are stored as plain text
  if (byte_level_) {
    std::string out;
    for (size_t pos = 0; pos < tok.size();) {
      const Utf8Char c = DecodeUtf8(tok, pos);
      const int b = c.cp >= 0 ? UnicodeToByte(static_cast<uint32_t>(c.cp)) : -1;
      if (b >= 0) {
        out.push_back(static_cast<char>(b));
      } else {
        out.append(tok, pos, c.len);
      }
      pos += c.len;
    }
    return out;
  }
  if (byte_fallback_ && token_byte_[id] >= 0) return std::string(1, static_cast<char>(token_byte_[id]));
  std::string out = tok;
  for (const Replace& r : decode_replaces_) out = absl::StrReplaceAll(out, {{r.from, r.to}});
  return out;
}

std::string HfBpeTokenizer::Decode(const std::vector<int>& ids) const {
  std::string out;
  for (int id : ids) {
    if (id >= 0 && id < vocab_size() && is_special_[id]) continue;
    out += PieceText(id);
  }
  int strip = decode_strip_leading_;
  size_t k = 0;
  while (strip-- > 0 && k < out.size() && out[k] == ' ') ++k;
  out.erase(0, k);
  return out;
}

std::string HfBpeTokenizer::DecodePiece(int prev_id, int id) const {
  if (id < 0 || id >= vocab_size() || is_special_[id]) return "";
  std::string piece = PieceText(id);
  // The decoder strips leading spaces of the text; in a stream that is the
  // first piece, or the first after BOS.
  if (prev_id < 0 || (prev_id == bos_id_ && bos_id_ >= 0)) {
    int strip = decode_strip_leading_;
    size_t k = 0;
    while (strip-- > 0 && k < piece.size() && piece[k] == ' ') ++k;
    piece.erase(0, k);
  }
  return piece;
}

}  // namespace squeeze
