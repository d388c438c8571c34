#include "workers/runner/checkpoint.h"

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/safetensors.h"
#include "workers/engine/model/forward.h"
#include "workers/methods/prune/layer_removal.h"
#include "workers/methods/stored_linear.h"
#include "server/objectstore/manifest.h"
#include "server/objectstore/sha256.h"

namespace squeeze {
namespace {

using nlohmann::json;

std::string TensorsPath(const std::string& dir) { return dir + "/checkpoint.safetensors"; }
std::string JsonPath(const std::string& dir) { return dir + "/checkpoint.json"; }

std::string NormName(size_t layer, const char* suffix) {
  return absl::StrCat("model.layers.", layer, ".", suffix, ".weight");
}

std::vector<std::pair<const char*, std::vector<float>*>> BlockNorms(TransformerBlock& b) {
  return {{"input_layernorm", &b.attn_norm}, {"post_attention_layernorm", &b.ffn_norm}};
}

}  // namespace

absl::StatusOr<std::string> ContentDigest(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) return store::Sha256File(path);
  if (!std::filesystem::is_directory(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
  }
  SQ_ASSIGN_OR_RETURN(store::Manifest m, store::ManifestForPath(path));
  return store::Sha256Hex(m.ToJson());
}

bool HasRunCheckpoint(const std::string& work_dir) {
  std::error_code ec;
  return std::filesystem::exists(JsonPath(work_dir), ec);
}

absl::Status SaveRunCheckpoint(const std::string& work_dir, const json& fingerprint, Model& model,
                               const std::set<std::string>& modules, const CheckpointPosition& position) {
  SQ_RETURN_IF_ERROR(MakeDirs(work_dir));
  std::vector<SafetensorsEntry> entries;
  for (const LinearSlot& s : model.AllLinears()) {
    if (!modules.count(s.name)) continue;
    for (auto& [suffix, view] : (*s.slot)->StoredTensors()) {
      entries.push_back(StoredAs(absl::StrCat(s.name, ".", suffix), view));
    }
  }
  // Block norms too: block-level methods (AWQ, SmoothQuant) fold scales into them.
  for (size_t l = 0; l < model.blocks.size(); ++l) {
    for (const auto& [suffix, norm] : BlockNorms(model.blocks[l])) {
      entries.push_back(StoredAs(NormName(l, suffix), OwnedF32(*norm, {static_cast<int64_t>(norm->size())})));
    }
  }
  SQ_RETURN_IF_ERROR(WriteSafetensors(TensorsPath(work_dir), std::move(entries), {{"format", "squeeze-checkpoint"}}));
  json j = {{"version", 1},
            {"fingerprint", fingerprint},
            {"stage", position.stage},
            {"next_layer", position.next_layer},
            {"modules", std::vector<std::string>(modules.begin(), modules.end())},
            {"report", position.report}};
  if (!position.removed_layers.empty()) j["removed_layers"] = position.removed_layers;
  return WriteFileAtomically(JsonPath(work_dir), j.dump(1) + "\n");
}

absl::StatusOr<std::optional<CheckpointPosition>> LoadRunCheckpoint(const std::string& work_dir,
                                                                    const json& fingerprint, Model& model,
                                                                    std::set<std::string>* modules) {
  const std::string jpath = JsonPath(work_dir);
  std::error_code ec;
  if (!std::filesystem::exists(jpath, ec)) return std::optional<CheckpointPosition>();
  SQ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(jpath));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("version", 0) != 1 || !j.contains("fingerprint") ||
      !j["stage"].is_number_integer() || !j["next_layer"].is_number_integer() || !j["modules"].is_array() ||
      !j["report"].is_array() || j["stage"].get<int64_t>() < 0 || j["next_layer"].get<int64_t>() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(jpath, ": not a valid squeeze runner checkpoint"));
  }
  if (j["fingerprint"] != fingerprint) {
    return absl::FailedPreconditionError(absl::StrCat(
        jpath, ": checkpoint of another run (recipe, model, seed or data differ); use another work dir or "
               "remove it. Checkpoint: ", j["fingerprint"].dump(), " this run: ", fingerprint.dump()));
  }
  SQ_ASSIGN_OR_RETURN(SafetensorsFile st, ReadSafetensors(TensorsPath(work_dir)));
  std::vector<std::string> names;
  for (const json& m : j["modules"]) {
    if (!m.is_string()) return absl::InvalidArgumentError(absl::StrCat(jpath, ": bad module list"));
    names.push_back(m.get<std::string>());
  }
  // Removed blocks: replayed on the input model's block indices. `kept[i]` =
  // the input block that becomes block i after every removal.
  std::vector<std::vector<int>> removed;
  std::vector<int> kept(model.blocks.size());
  for (size_t i = 0; i < kept.size(); ++i) kept[i] = static_cast<int>(i);
  if (auto it = j.find("removed_layers"); it != j.end()) {
    if (!it->is_array()) return absl::InvalidArgumentError(absl::StrCat(jpath, ": bad removed_layers"));
    for (const json& step : *it) {
      std::vector<bool> gone(kept.size(), false);
      std::vector<int> list;
      if (!step.is_array() || step.empty() || step.size() >= kept.size()) {
        return absl::InvalidArgumentError(absl::StrCat(jpath, ": bad removed_layers entry ", step.dump()));
      }
      for (const json& e : step) {
        if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() >= static_cast<int64_t>(kept.size()) ||
            gone[e.get<size_t>()]) {
          return absl::InvalidArgumentError(absl::StrCat(jpath, ": bad removed_layers entry ", step.dump()));
        }
        gone[e.get<size_t>()] = true;
        list.push_back(e.get<int>());
      }
      std::vector<int> next;
      for (size_t i = 0; i < kept.size(); ++i) {
        if (!gone[i]) next.push_back(kept[i]);
      }
      kept = std::move(next);
      removed.push_back(std::move(list));
    }
  }
  auto grouped = GroupTensorsByModule(st.tensors, names);
  // Slots by their name after the removals (block kept[i] is named i).
  std::map<std::string, LinearSlot> slots;
  for (size_t i = 0; i < kept.size(); ++i) {
    const std::string old_prefix = absl::StrCat("model.layers.", kept[i], ".");
    for (LinearSlot s : model.BlockLinears(kept[i])) {
      s.name = absl::StrCat("model.layers.", i, ".", s.name.substr(old_prefix.size()));
      slots[s.name] = s;
    }
  }
  if (model.lm_head) slots["lm_head"] = LinearSlot{"lm_head", -1, &model.lm_head};
  // Phase 1: decode and check everything; `model` is not touched yet.
  std::vector<std::pair<LinearSlot, std::unique_ptr<LinearLayer>>> layers;
  for (const std::string& m : names) {
    auto it = slots.find(m);
    if (it == slots.end()) return absl::InvalidArgumentError(absl::StrCat(jpath, ": unknown module ", m));
    auto layer = LinearFromStoredTensors(m, grouped[m]);
    if (!layer.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(TensorsPath(work_dir), ": ", layer.status().message()));
    }
    // Widths may be narrower (structured pruning); the whole model is checked below.
    if ((*layer)->in_features() > (*it->second.slot)->in_features() ||
        (*layer)->out_features() > (*it->second.slot)->out_features()) {
      return absl::InvalidArgumentError(absl::StrCat(TensorsPath(work_dir), ": ", m, " has the wrong shape"));
    }
    layers.emplace_back(it->second, std::move(*layer));
  }
  // Block norms (absent from checkpoints written before they were stored).
  std::vector<std::pair<std::vector<float>*, std::vector<float>>> norms;
  for (size_t l = 0; l < kept.size(); ++l) {
    for (auto& [suffix, norm] : BlockNorms(model.blocks[kept[l]])) {
      auto it = st.tensors.find(NormName(l, suffix));
      if (it == st.tensors.end()) continue;
      auto v = ToFloat32(it->second, it->first);
      if (!v.ok() || v->size() != norm->size()) {
        return absl::InvalidArgumentError(absl::StrCat(TensorsPath(work_dir), ": ", it->first, " has the wrong shape"));
      }
      norms.emplace_back(norm, std::move(*v));
    }
  }
  // Phase 2: apply by swapping, check the whole model, swap back on error.
  for (auto& [slot, layer] : layers) std::swap(*slot.slot, layer);
  for (auto& [norm, v] : norms) std::swap(*norm, v);
  if (absl::Status valid = ValidateModel(model); !valid.ok()) {
    for (auto& [slot, layer] : layers) std::swap(*slot.slot, layer);
    for (auto& [norm, v] : norms) std::swap(*norm, v);
    return absl::InvalidArgumentError(
        absl::StrCat(TensorsPath(work_dir), ": the stored modules do not fit the model: ", valid.message()));
  }
  for (auto& [slot, layer] : layers) modules->insert(slot.name);
  // Removals last: validated above, so they cannot fail.
  for (const std::vector<int>& step : removed) {
    if (absl::Status s = RemoveBlocks(model, step); !s.ok()) return absl::InternalError(s.message());
  }
  CheckpointPosition p;
  p.stage = j["stage"].get<int>();
  p.next_layer = j["next_layer"].get<int>();
  p.report = j["report"];
  p.removed_layers = std::move(removed);
  return std::optional<CheckpointPosition>(std::move(p));
}

absl::Status RemoveRunCheckpoint(const std::string& work_dir) {
  std::error_code ec;
  std::filesystem::remove(JsonPath(work_dir), ec);
  if (ec) return absl::InternalError(absl::StrCat(JsonPath(work_dir), ": ", ec.message()));
  std::filesystem::remove(TensorsPath(work_dir), ec);
  if (ec) return absl::InternalError(absl::StrCat(TensorsPath(work_dir), ": ", ec.message()));
  std::filesystem::remove(work_dir, ec);  // only when empty; errors ignored
  return absl::OkStatus();
}

}  // namespace squeeze
