#include "workers/runner/modifier_registry.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace squeeze {
namespace {

using nlohmann::json;

std::string Describe(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return absl::StrCat("bool ", v.dump());
  if (v.is_number_integer() || v.is_number_unsigned()) return absl::StrCat("integer ", v.dump());
  if (v.is_number()) return absl::StrCat("number ", v.dump());
  if (v.is_string()) return absl::StrCat("string ", v.dump());
  if (v.is_array()) return "a list";
  return "a mapping";
}

const char* TypeName(ArgType t) {
  switch (t) {
    case ArgType::kNumber: return "a number";
    case ArgType::kInt: return "an integer";
    case ArgType::kBool: return "true or false";
    case ArgType::kString: return "a string";
    case ArgType::kStringList: return "a string or a list of strings";
    case ArgType::kObject: return "a mapping";
    case ArgType::kAny: return "anything";
  }
  return "?";
}

bool TypeOk(ArgType t, const json& v) {
  if (v.is_null()) return true;  // null = use the default
  switch (t) {
    case ArgType::kNumber: return v.is_number();
    case ArgType::kInt: return v.is_number_integer() || v.is_number_unsigned();
    case ArgType::kBool: return v.is_boolean();
    case ArgType::kString: return v.is_string();
    case ArgType::kStringList:
      if (v.is_string()) return true;
      if (!v.is_array()) return false;
      for (const json& e : v) {
        if (!e.is_string()) return false;
      }
      return true;
    case ArgType::kObject: return v.is_object();
    case ArgType::kAny: return true;
  }
  return false;
}

}  // namespace

absl::Status ModifierArgs::Error(const std::string& key, const std::string& message) const {
  return absl::InvalidArgumentError(absl::StrCat("recipe: ", path_, ".", key, ": ", message));
}

absl::StatusOr<double> ModifierArgs::GetNumber(const std::string& key, double def) const {
  if (!Has(key)) return def;
  const nlohmann::json& v = args_.at(key);
  if (!v.is_number()) return Error(key, absl::StrCat("expected a number, got ", Describe(v)));
  return v.get<double>();
}

absl::StatusOr<int64_t> ModifierArgs::GetInt(const std::string& key, int64_t def) const {
  if (!Has(key)) return def;
  const nlohmann::json& v = args_.at(key);
  if (!v.is_number_integer() && !v.is_number_unsigned()) {
    return Error(key, absl::StrCat("expected an integer, got ", Describe(v)));
  }
  return v.get<int64_t>();
}

absl::StatusOr<bool> ModifierArgs::GetBool(const std::string& key, bool def) const {
  if (!Has(key)) return def;
  const nlohmann::json& v = args_.at(key);
  if (!v.is_boolean()) return Error(key, absl::StrCat("expected true or false, got ", Describe(v)));
  return v.get<bool>();
}

absl::StatusOr<std::string> ModifierArgs::GetString(const std::string& key, const std::string& def) const {
  if (!Has(key)) return def;
  const nlohmann::json& v = args_.at(key);
  if (!v.is_string()) return Error(key, absl::StrCat("expected a string, got ", Describe(v)));
  return v.get<std::string>();
}

absl::StatusOr<std::vector<std::string>> ModifierArgs::GetStringList(
    const std::string& key, const std::vector<std::string>& def) const {
  if (!Has(key)) return def;
  const nlohmann::json& v = args_.at(key);
  if (v.is_string()) return std::vector<std::string>{v.get<std::string>()};
  if (!v.is_array()) return Error(key, absl::StrCat("expected a list of strings, got ", Describe(v)));
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) {
      return Error(absl::StrCat(key, "[", i, "]"), absl::StrCat("expected a string, got ", Describe(v[i])));
    }
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

absl::StatusOr<TargetMatcher> ModifierArgs::GetMatcher() const {
  auto targets = GetStringList("targets", {"Linear"});
  if (!targets.ok()) return targets.status();
  auto ignore = GetStringList("ignore", {"lm_head"});
  if (!ignore.ok()) return ignore.status();
  if (targets->empty()) return Error("targets", "is empty: the modifier would apply to nothing");
  return TargetMatcher::Create(std::move(*targets), std::move(*ignore), path_);
}

const ModifierRegistry& ModifierRegistry::Builtin() {
  static const ModifierRegistry registry = [] {
    ModifierRegistry r;
    RegisterBuiltinModifiers(r);
    return r;
  }();
  return registry;
}

void ModifierRegistry::Register(ModifierDef def) {
  std::string type = def.type;
  defs_[type] = std::move(def);
}

const ModifierDef* ModifierRegistry::Find(const std::string& type) const {
  auto it = defs_.find(type);
  return it == defs_.end() ? nullptr : &it->second;
}

std::vector<std::string> ModifierRegistry::Types() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : defs_) out.push_back(k);
  return out;
}

absl::StatusOr<std::unique_ptr<Modifier>> ModifierRegistry::Create(const std::string& type,
                                                                   const nlohmann::json& args,
                                                                   const std::string& path) const {
  const ModifierDef* def = Find(type);
  if (def == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("recipe: ", path, ": unknown modifier \"", type,
                                                   "\" (known: ", absl::StrJoin(Types(), ", "), ")"));
  }
  if (!args.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("recipe: ", path, ": expected a mapping of arguments"));
  }
  for (const auto& [key, value] : args.items()) {
    const ArgSpec* spec = nullptr;
    for (const ArgSpec& s : def->args) {
      if (s.name == key) spec = &s;
    }
    if (spec == nullptr) {
      std::vector<std::string> names;
      for (const ArgSpec& s : def->args) names.push_back(s.name);
      return absl::InvalidArgumentError(absl::StrCat("recipe: ", path, ".", key, ": unknown argument of ", type,
                                                     " (known: ", absl::StrJoin(names, ", "), ")"));
    }
    if (!TypeOk(spec->type, value)) {
      return absl::InvalidArgumentError(absl::StrCat("recipe: ", path, ".", key, ": expected ",
                                                     TypeName(spec->type), ", got ", Describe(value)));
    }
  }
  return def->factory(ModifierArgs(args, path));
}

void RegisterBuiltinModifiers(ModifierRegistry& registry) {
  RegisterMagnitudePruningModifier(registry);
  RegisterQuantizationModifier(registry);
  RegisterGptqModifier(registry);
  RegisterAwqModifier(registry);
  RegisterSmoothQuantModifier(registry);
  RegisterLLMInt8Modifier(registry);
  RegisterWandaPruningModifier(registry);
  RegisterSparseGPTModifier(registry);
  RegisterLowRankModifier(registry);
  RegisterStructuredPruningModifier(registry);
  RegisterDistillationModifier(registry);
}

}  // namespace squeeze
