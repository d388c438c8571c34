#include "workers/runner/recipe.h"

#include <yaml-cpp/yaml.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/tokenizer/unicode.h"

namespace squeeze {
namespace {

using nlohmann::json;

absl::Status Err(const std::string& path, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat("recipe: ", path.empty() ? "" : path + ": ", msg));
}

// At most this many YAML values (scalars, lists, mappings) per recipe. YAML
// aliases share nodes, so a few hundred bytes can spell billions of values
// ("billion laughs"); the conversion to JSON stops at this budget.
constexpr int64_t kMaxRecipeValues = 100000;

// Why `s` cannot be recipe text, or "" when it can: it must be valid UTF-8
// (serializing would turn invalid bytes into U+FFFD) without control
// characters other than tab, newline and carriage return (the emitter does
// not write NUL back), so that every accepted recipe round-trips.
std::string RecipeTextProblem(const std::string& s) {
  if (!IsValidUtf8(s)) return "is not valid UTF-8";
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
      return absl::StrCat("contains the control character 0x", absl::Hex(c, absl::kZeroPad2), " at byte ", i);
    }
  }
  return "";
}

// YAML -> JSON with typed scalars. Quoted scalars are always strings; plain
// ones become null / bool / int / float when they spell one. Each value
// converted takes one from *budget.
absl::StatusOr<json> ToJson(const YAML::Node& node, const std::string& path, int64_t* budget) {
  if (--*budget < 0) {
    return Err(path, absl::StrCat("the recipe has more than ", kMaxRecipeValues,
                                  " values (YAML aliases expanding?)"));
  }
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return json(nullptr);
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (std::string why = RecipeTextProblem(s); !why.empty()) return Err(path, absl::StrCat("value ", why));
      if (node.Tag() != "?") return json(s);  // quoted or explicitly tagged
      if (s == "~" || s == "null" || s == "Null" || s == "NULL") return json(nullptr);
      if (s == "true" || s == "True" || s == "TRUE") return json(true);
      if (s == "false" || s == "False" || s == "FALSE") return json(false);
      int64_t i;
      if (absl::SimpleAtoi(s, &i)) return json(i);
      double d;
      if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '+' ||
                         s[0] == '.') &&
          absl::SimpleAtod(s, &d)) {
        return json(d);
      }
      return json(s);
    }
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (size_t i = 0; i < node.size(); ++i) {
        auto e = ToJson(node[i], absl::StrCat(path, "[", i, "]"), budget);
        if (!e.ok()) return e.status();
        a.push_back(std::move(*e));
      }
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) return Err(path, "mapping keys must be plain strings");
        const std::string key = kv.first.Scalar();
        if (std::string why = RecipeTextProblem(key); !why.empty()) return Err(path, absl::StrCat("a mapping key ", why));
        if (o.contains(key)) return Err(absl::StrCat(path, ".", key), "duplicate key");
        auto v = ToJson(kv.second, absl::StrCat(path, ".", key), budget);
        if (!v.ok()) return v.status();
        o[key] = std::move(*v);
      }
      return o;
    }
  }
  return json(nullptr);
}

absl::Status ParseGroup(const std::string& stage, const std::string& group, const YAML::Node& node,
                        const ModifierRegistry& registry, RecipeStage* out, int64_t* budget) {
  const std::string gpath = absl::StrCat(stage, ".", group);
  if (!node.IsMap()) return Err(gpath, "expected a mapping of modifier types to arguments");
  for (const auto& kv : node) {
    RecipeModifier m;
    m.stage = stage;
    m.group = group;
    m.type = kv.first.Scalar();
    for (const RecipeModifier& prev : out->modifiers) {
      if (prev.group == group && prev.type == m.type) return Err(m.path(), "duplicate modifier");
    }
    auto args = ToJson(kv.second, m.path(), budget);
    if (!args.ok()) return args.status();
    if (args->is_null()) args = json::object();
    if (!args->is_object()) return Err(m.path(), "expected a mapping of arguments");
    m.args = std::move(*args);
    auto built = registry.Create(m.type, m.args, m.path());
    if (!built.ok()) return built.status();
    out->modifiers.push_back(std::move(m));
  }
  if (out->modifiers.empty()) return Err(gpath, "no modifiers");
  return absl::OkStatus();
}

absl::StatusOr<int64_t> PositiveInt(const YAML::Node& node, const std::string& key, int64_t* budget) {
  auto v = ToJson(node, key, budget);
  if (!v.ok()) return v.status();
  if (!v->is_number_integer() || v->get<int64_t>() <= 0) {
    return Err(key, absl::StrCat("expected a positive integer, got ", YAML::Dump(node)));
  }
  return v->get<int64_t>();
}

void EmitJson(YAML::Emitter& e, const json& v) {
  if (v.is_null()) {
    e << YAML::Null;
  } else if (v.is_boolean()) {
    e << (v.get<bool>() ? "true" : "false");
  } else if (v.is_number()) {
    e << v.dump();  // shortest round-trip form: 0.5, 128
  } else if (v.is_string()) {
    e << YAML::DoubleQuoted << v.get<std::string>();
  } else if (v.is_array()) {
    e << YAML::Flow << YAML::BeginSeq;
    for (const json& x : v) EmitJson(e, x);
    e << YAML::EndSeq;
  } else {
    e << YAML::BeginMap;
    for (const auto& [k, x] : v.items()) {  // json::object keeps keys sorted
      e << YAML::Key << k << YAML::Value;
      EmitJson(e, x);
    }
    e << YAML::EndMap;
  }
}

}  // namespace

std::string RecipeModifier::path() const { return absl::StrCat(stage, ".", group, ".", type); }

bool Recipe::operator==(const Recipe& o) const {
  if (stages.size() != o.stages.size() || calibration.num_calibration_samples != o.calibration.num_calibration_samples ||
      calibration.max_seq_length != o.calibration.max_seq_length || calibration.seed != o.calibration.seed ||
      has_num_calibration_samples != o.has_num_calibration_samples || has_max_seq_length != o.has_max_seq_length) {
    return false;
  }
  for (size_t i = 0; i < stages.size(); ++i) {
    const RecipeStage &a = stages[i], &b = o.stages[i];
    if (a.name != b.name || a.modifiers.size() != b.modifiers.size()) return false;
    for (size_t j = 0; j < a.modifiers.size(); ++j) {
      const RecipeModifier &x = a.modifiers[j], &y = b.modifiers[j];
      if (x.group != y.group || x.type != y.type || x.args != y.args || x.stage != y.stage) return false;
    }
  }
  return true;
}

absl::StatusOr<Recipe> ParseRecipe(absl::string_view yaml_text, const ModifierRegistry& registry) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return Err("", absl::StrCat("invalid YAML at line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ",
                                e.msg));
  }
  if (!root.IsMap()) return Err("", "expected a mapping of stage names to stages");
  Recipe r;
  int64_t budget = kMaxRecipeValues;
  try {
    for (const auto& kv : root) {
      if (!kv.first.IsScalar()) return Err("", "stage names must be strings");
      const std::string key = kv.first.Scalar();
      if (std::string why = RecipeTextProblem(key); !why.empty()) return Err("", absl::StrCat("a stage name ", why));
      for (const RecipeStage& s : r.stages) {
        if (s.name == key) return Err(key, "duplicate stage");
      }
      if (key == "num_calibration_samples") {
        auto v = PositiveInt(kv.second, key, &budget);
        if (!v.ok()) return v.status();
        r.calibration.num_calibration_samples = *v;
        r.has_num_calibration_samples = true;
      } else if (key == "max_seq_length") {
        auto v = PositiveInt(kv.second, key, &budget);
        if (!v.ok()) return v.status();
        r.calibration.max_seq_length = *v;
        r.has_max_seq_length = true;
      } else if (key == "seed") {
        auto v = ToJson(kv.second, key, &budget);
        if (!v.ok()) return v.status();
        if (!v->is_number_integer() || v->get<int64_t>() < 0) return Err(key, "expected a non-negative integer");
        r.calibration.seed = v->get<uint64_t>();
      } else if (absl::EndsWith(key, "_modifiers")) {
        RecipeStage stage;
        stage.name = "default_stage";
        for (const RecipeStage& s : r.stages) {
          if (s.name == stage.name) return Err(key, "a second default stage: name your stages");
        }
        if (absl::Status s = ParseGroup(stage.name, key, kv.second, registry, &stage, &budget); !s.ok()) return s;
        // Paths in errors above say default_stage.<group>; that is the stage's name.
        r.stages.push_back(std::move(stage));
      } else {
        if (!kv.second.IsMap()) {
          return Err(key, "expected a stage (a mapping of <group>_modifiers), or one of num_calibration_samples, "
                          "max_seq_length, seed");
        }
        RecipeStage stage;
        stage.name = key;
        for (const auto& g : kv.second) {
          const std::string gname = g.first.Scalar();
          if (std::string why = RecipeTextProblem(gname); !why.empty()) {
            return Err(key, absl::StrCat("a modifier group name ", why));
          }
          if (gname == "run_type") {
            if (!g.second.IsScalar() || g.second.Scalar() != "oneshot") {
              return Err(key + ".run_type", "only oneshot is supported");
            }
            continue;
          }
          if (!absl::EndsWith(gname, "_modifiers")) {
            return Err(absl::StrCat(key, ".", gname), "expected a <group>_modifiers key (e.g. quant_modifiers)");
          }
          if (absl::Status s = ParseGroup(key, gname, g.second, registry, &stage, &budget); !s.ok()) return s;
        }
        if (stage.modifiers.empty()) return Err(key, "stage has no modifiers");
        r.stages.push_back(std::move(stage));
      }
    }
  } catch (const YAML::Exception& e) {
    return Err("", absl::StrCat("invalid YAML: ", e.msg));
  }
  if (r.stages.empty()) return Err("", "no stages");
  return r;
}

std::string SerializeRecipe(const Recipe& recipe) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  if (recipe.has_num_calibration_samples) {
    e << YAML::Key << "num_calibration_samples" << YAML::Value << recipe.calibration.num_calibration_samples;
  }
  if (recipe.has_max_seq_length) {
    e << YAML::Key << "max_seq_length" << YAML::Value << recipe.calibration.max_seq_length;
  }
  if (recipe.calibration.seed) e << YAML::Key << "seed" << YAML::Value << *recipe.calibration.seed;
  for (const RecipeStage& s : recipe.stages) {
    e << YAML::Key << s.name << YAML::Value << YAML::BeginMap;
    // Groups in order of first appearance; a group's modifiers in order.
    std::vector<std::string> groups;
    for (const RecipeModifier& m : s.modifiers) {
      if (std::find(groups.begin(), groups.end(), m.group) == groups.end()) groups.push_back(m.group);
    }
    for (const std::string& g : groups) {
      e << YAML::Key << g << YAML::Value << YAML::BeginMap;
      for (const RecipeModifier& m : s.modifiers) {
        if (m.group != g) continue;
        e << YAML::Key << m.type << YAML::Value;
        EmitJson(e, m.args);
      }
      e << YAML::EndMap;
    }
    e << YAML::EndMap;
  }
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

absl::StatusOr<std::vector<std::unique_ptr<Modifier>>> BuildStageModifiers(const RecipeStage& stage,
                                                                          const ModifierRegistry& registry) {
  std::vector<std::unique_ptr<Modifier>> out;
  for (const RecipeModifier& m : stage.modifiers) {
    auto built = registry.Create(m.type, m.args, m.path());
    if (!built.ok()) return built.status();
    out.push_back(std::move(*built));
  }
  return out;
}

absl::Status CheckRecipeForModel(const Recipe& recipe, const ModelConfig& c, const ModifierRegistry& registry) {
  struct Module {
    std::string name;
    int64_t in = 0, out = 0;
  };
  std::vector<Module> modules;
  const bool per_layer = static_cast<int>(c.layer_n_heads.size()) == c.n_layers;
  for (int l = 0; l < c.n_layers; ++l) {
    const int64_t hd = c.head_dim, dim = c.dim;
    const int64_t q = (per_layer ? c.layer_n_heads[l] : c.n_heads) * hd;
    const int64_t kv = (per_layer ? c.layer_n_kv_heads[l] : c.n_kv_heads) * hd;
    const int64_t h = per_layer ? c.layer_hidden_dim[l] : c.hidden_dim;
    const std::string p = absl::StrCat("model.layers.", l, ".");
    modules.push_back({p + "self_attn.q_proj", dim, q});
    modules.push_back({p + "self_attn.k_proj", dim, kv});
    modules.push_back({p + "self_attn.v_proj", dim, kv});
    modules.push_back({p + "self_attn.o_proj", q, dim});
    modules.push_back({p + "mlp.gate_proj", dim, h});
    modules.push_back({p + "mlp.up_proj", dim, h});
    modules.push_back({p + "mlp.down_proj", h, dim});
  }
  if (!c.tie_word_embeddings) modules.push_back({"lm_head", c.dim, c.vocab_size});
  for (const RecipeStage& stage : recipe.stages) {
    auto mods = BuildStageModifiers(stage, registry);
    if (!mods.ok()) return mods.status();
    for (const auto& m : *mods) {
      for (const Module& mod : modules) {
        if (!m->matcher().Matches(mod.name)) continue;
        if (absl::Status s = m->CheckTargetShape(mod.name, mod.in, mod.out); !s.ok()) return s;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace squeeze
