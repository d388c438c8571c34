// The registry of recipe modifiers: name -> argument schema + factory.
//
// Adding a method = one file in workers/runner/ (mod_<method>.cc) defining
// `void Register<Method>(ModifierRegistry&)` plus one line in
// builtin_modifiers.cc. Static self-registration is avoided on purpose: the
// runner is a static library and the linker would drop unreferenced objects.
//
// Argument checking happens in two steps, both at recipe-parse time (so a bad
// recipe is rejected at submit, before any work is queued):
//   1. the schema: unknown argument names and wrong YAML types;
//   2. the factory: values (ranges, enum strings, combinations).
// Every error is InvalidArgument "recipe: <yaml path>: <reason>".
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "workers/runner/modifier.h"

namespace squeeze {

enum class ArgType {
  kNumber,      // int or float
  kInt,
  kBool,
  kString,
  kStringList,  // a list of strings; a single string is accepted as a list of one
  kObject,      // a mapping, checked by the factory
  kAny,
};

struct ArgSpec {
  std::string name;
  ArgType type = ArgType::kAny;
  std::string help;
};

// The arguments of one modifier as written in the recipe (a JSON object; YAML
// scalars are typed: true/false, integers, floats, null, else strings).
class ModifierArgs {
 public:
  ModifierArgs(const nlohmann::json& args, std::string path) : args_(args), path_(std::move(path)) {}
  const nlohmann::json& json() const { return args_; }
  const std::string& path() const { return path_; }  // "stage.group_modifiers.Name"
  bool Has(const std::string& key) const { return args_.contains(key) && !args_.at(key).is_null(); }
  // InvalidArgument "recipe: <path>.<key>: <message>".
  absl::Status Error(const std::string& key, const std::string& message) const;

  absl::StatusOr<double> GetNumber(const std::string& key, double def) const;
  absl::StatusOr<int64_t> GetInt(const std::string& key, int64_t def) const;
  absl::StatusOr<bool> GetBool(const std::string& key, bool def) const;
  absl::StatusOr<std::string> GetString(const std::string& key, const std::string& def) const;
  absl::StatusOr<std::vector<std::string>> GetStringList(const std::string& key,
                                                         const std::vector<std::string>& def) const;
  // TargetMatcher from `targets` (default ["Linear"]) and `ignore`
  // (default ["lm_head"]).
  absl::StatusOr<TargetMatcher> GetMatcher() const;

 private:
  const nlohmann::json& args_;
  std::string path_;
};

using ModifierFactory = std::function<absl::StatusOr<std::unique_ptr<Modifier>>(const ModifierArgs&)>;

struct ModifierDef {
  std::string type;     // "MagnitudePruningModifier"
  std::string summary;  // one line
  std::vector<ArgSpec> args;
  ModifierFactory factory;
};

class ModifierRegistry {
 public:
  // The registry holding every built-in modifier.
  static const ModifierRegistry& Builtin();

  // Replaces any definition of the same type.
  void Register(ModifierDef def);
  const ModifierDef* Find(const std::string& type) const;
  std::vector<std::string> Types() const;

  // Checks `args` against the schema of `type` and runs its factory.
  // `path` is the YAML path of the modifier ("stage.group_modifiers.Type").
  absl::StatusOr<std::unique_ptr<Modifier>> Create(const std::string& type, const nlohmann::json& args,
                                                   const std::string& path) const;

 private:
  std::map<std::string, ModifierDef> defs_;
};

// Built-in registrations (one per method file).
void RegisterMagnitudePruningModifier(ModifierRegistry& registry);
void RegisterQuantizationModifier(ModifierRegistry& registry);
void RegisterGptqModifier(ModifierRegistry& registry);
void RegisterWandaPruningModifier(ModifierRegistry& registry);
void RegisterSparseGPTModifier(ModifierRegistry& registry);
void RegisterLowRankModifier(ModifierRegistry& registry);
void RegisterStructuredPruningModifier(ModifierRegistry& registry);
void RegisterAwqModifier(ModifierRegistry& registry);
void RegisterSmoothQuantModifier(ModifierRegistry& registry);
void RegisterLLMInt8Modifier(ModifierRegistry& registry);
void RegisterDistillationModifier(ModifierRegistry& registry);
void RegisterBuiltinModifiers(ModifierRegistry& registry);

}  // namespace squeeze
