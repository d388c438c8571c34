#include "workers/runner/compressed_model.h"

#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/checkpoint_tensors.h"
#include "workers/engine/formats/hf_checkpoint.h"
#include "workers/engine/formats/model_io.h"
#include "workers/methods/stored_linear.h"

namespace squeeze {

absl::StatusOr<Model> LoadCompressedModel(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return LoadModel(path);
  SQ_ASSIGN_OR_RETURN(CheckpointTensors ck, ReadHfCheckpoint(path));

  // Modules stored in a compressed kind.
  static constexpr absl::string_view kPackedSuffix = ".weight_packed";
  std::vector<std::string> modules;
  for (const auto& [name, t] : ck.tensors) {
    if (absl::EndsWith(name, kPackedSuffix)) modules.push_back(name.substr(0, name.size() - kPackedSuffix.size()));
  }
  if (modules.empty()) return BuildModel(std::move(ck));

  std::map<std::string, TensorView> views;
  for (const auto& [name, t] : ck.tensors) views[name] = t.view;
  auto grouped = GroupTensorsByModule(views, modules);
  std::map<std::string, std::unique_ptr<LinearLayer>> layers;
  int64_t max_numel = 0;
  for (const std::string& m : modules) {
    auto layer = LinearFromStoredTensors(m, grouped[m]);
    if (!layer.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", layer.status().message()));
    max_numel = std::max(max_numel, (*layer)->in_features() * (*layer)->out_features());
    layers[m] = std::move(*layer);
  }
  // BuildModel validates the whole model's shapes: give it a dense stand-in
  // "<module>.weight" of the right shape for each compressed module (all
  // stand-ins share one zero buffer), then swap the real layers in.
  auto zeros = std::make_shared<std::vector<float>>(static_cast<size_t>(max_numel), 0.0f);
  for (const auto& [m, layer] : layers) {
    const std::string file = ck.tensors.at(m + std::string(kPackedSuffix)).file;
    for (const auto& [suffix, v] : grouped[m]) {
      if (suffix != "bias") ck.tensors.erase(absl::StrCat(m, ".", suffix));
    }
    SourceTensor st;
    st.file = file;
    st.view.dtype = DType::kF32;
    st.view.shape = {layer->out_features(), layer->in_features()};
    st.view.data = zeros->data();
    st.view.nbytes = static_cast<size_t>(layer->out_features() * layer->in_features()) * sizeof(float);
    st.view.owner = zeros;
    ck.tensors[m + ".weight"] = std::move(st);
  }
  SQ_ASSIGN_OR_RETURN(Model model, BuildModel(std::move(ck)));
  for (LinearSlot& s : model.AllLinears()) {
    auto it = layers.find(s.name);
    if (it != layers.end()) {
      *s.slot = std::move(it->second);
      layers.erase(it);
    }
  }
  if (!layers.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tensor ", layers.begin()->first, ".weight_packed belongs to no linear layer"));
  }
  return model;
}

}  // namespace squeeze
