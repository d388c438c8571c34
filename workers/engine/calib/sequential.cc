#include "workers/engine/calib/sequential.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze {
namespace {

class HookObserver final : public BlockObserver {
 public:
  HookObserver(const std::function<void(const LinearInput&)>& fn, const std::array<std::string, kNumBlockLinears>& names)
      : fn_(fn), names_(names) {}
  void set_sequence(int s) { sequence_ = s; }
  void OnLinearInput(int layer, BlockLinear which, const float* x, int64_t rows, int64_t cols) override {
    LinearInput in;
    in.layer = layer;
    in.which = which;
    in.name = &names_[static_cast<int>(which)];
    in.sequence = sequence_;
    in.x = x;
    in.rows = rows;
    in.cols = cols;
    fn_(in);
  }

 private:
  const std::function<void(const LinearInput&)>& fn_;
  const std::array<std::string, kNumBlockLinears>& names_;
  int sequence_ = 0;
};

}  // namespace

absl::Status RunSequentialCalibration(Model& model, const std::vector<std::vector<int>>& sequences,
                                      const SequentialHooks& hooks, ThreadPool& pool) {
  SQ_RETURN_IF_ERROR(ValidateModel(model));
  std::vector<MatrixRM> hidden(sequences.size());
  for (size_t s = 0; s < sequences.size(); ++s) {
    if (sequences[s].empty()) return absl::InvalidArgumentError(absl::StrCat("calibration sequence ", s, " is empty"));
    SQ_RETURN_IF_ERROR(Embed(model, sequences[s], hidden[s]));
  }
  const int n_layers = static_cast<int>(model.blocks.size());
  std::vector<MatrixRM> out(sequences.size());
  for (int layer = 0; layer < n_layers; ++layer) {
    std::array<std::string, kNumBlockLinears> names;
    for (int w = 0; w < kNumBlockLinears; ++w) {
      names[w] = absl::StrCat("model.layers.", layer, ".", BlockLinearSuffix(static_cast<BlockLinear>(w)));
    }
    HookObserver observer(hooks.on_input, names);
    for (size_t s = 0; s < hidden.size(); ++s) {
      out[s] = hidden[s];
      observer.set_sequence(static_cast<int>(s));
      SQ_RETURN_IF_ERROR(RunBlock(model, layer, out[s], 0, nullptr, hooks.on_input ? &observer : nullptr, pool));
    }
    bool changed = false;
    if (hooks.on_block_done) {
      SQ_ASSIGN_OR_RETURN(changed, hooks.on_block_done(layer, model));
    }
    if (changed) {
      SQ_RETURN_IF_ERROR(ValidateModel(model));
      for (size_t s = 0; s < hidden.size(); ++s) {
        SQ_RETURN_IF_ERROR(RunBlock(model, layer, hidden[s], 0, nullptr, nullptr, pool));
      }
    } else {
      std::swap(hidden, out);
    }
    if (hooks.progress) hooks.progress(layer + 1, n_layers);
  }
  return absl::OkStatus();
}

}  // namespace squeeze
