#include "workers/methods/distill/distill.h"

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/methods/distill/qat_linear.h"
#include "workers/methods/distill/sparse_trainable.h"
#include "workers/methods/distill/wrapped_trainable.h"
#include "workers/methods/lowrank/factorized_linear.h"
#include "workers/methods/prune/sparse_linear.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/stored_linear.h"

namespace squeeze {
namespace {

// Low-rank factors trained as U, V and exported as a FactorizedLinear.
class FactorizedTrainable final : public WrappedTrainable {
 public:
  explicit FactorizedTrainable(const FactorizedLinear& f) : WrappedTrainable(MakeInner(f)) {}
  std::unique_ptr<LinearLayer> ToInference() const override {
    auto p = InnerParams();
    const train::Param& u = *p[0].second;
    const train::Param& v = *p[1].second;
    std::vector<float> bias = p.size() > 2 ? p[2].second->value : std::vector<float>{};
    auto f = FactorizedLinear::Create(ConstMapMatrixRM(u.value.data(), u.shape[0], u.shape[1]),
                                      ConstMapMatrixRM(v.value.data(), v.shape[0], v.shape[1]), std::move(bias));
    return std::move(f).value();  // shapes come from a valid layer
  }

 private:
  static std::unique_ptr<train::TrainableLinear> MakeInner(const FactorizedLinear& f) {
    auto b = f.bias();
    return train::MakeLowRankTrainable(f.u(), f.v(), std::vector<float>(b.begin(), b.end()));
  }
};

// A frozen layer: forward as is, backward only propagates dx = dy W.
class FrozenLinear final : public train::TrainableLinear {
 public:
  explicit FrozenLinear(std::shared_ptr<const LinearLayer> layer)
      : layer_(std::move(layer)), w_(layer_->DenseWeight()) {}
  int64_t in_features() const override { return layer_->in_features(); }
  int64_t out_features() const override { return layer_->out_features(); }
  void Forward(const float* x, int64_t n, float* y, ThreadPool& pool) const override { layer_->Forward(x, n, y, pool); }
  void Backward(const float*, const float* dy, int64_t n, float* dx, ThreadPool& pool) override {
    if (dx != nullptr) train::MatMulNN(dy, n, w_.rows(), w_.data(), w_.cols(), dx, pool);
  }
  std::vector<std::pair<std::string, train::Param*>> Params() override { return {}; }
  std::unique_ptr<LinearLayer> ToInference() const override;
  std::string kind() const override { return "frozen_" + layer_->kind(); }

 private:
  std::shared_ptr<const LinearLayer> layer_;
  MatrixRM w_;
};

// Rebuilds an independent copy of `layer` from its stored tensors.
absl::StatusOr<std::unique_ptr<LinearLayer>> CopyLayer(const std::string& name, const LinearLayer& layer) {
  std::map<std::string, TensorView> stored;
  for (auto& [k, v] : layer.StoredTensors()) stored[k] = v;
  return LinearFromStoredTensors(name, stored);
}

std::unique_ptr<LinearLayer> FrozenLinear::ToInference() const {
  // Same tensors, same kind: the frozen layer comes back unchanged.
  return std::move(CopyLayer("frozen", *layer_)).value();
}

}  // namespace

train::LinearConverter StudentConverter(const DistillOptions& options) {
  return [options](const std::string& name, const LinearLayer& layer)
             -> absl::StatusOr<std::unique_ptr<train::TrainableLinear>> {
    if (options.trainable && !options.trainable(name)) {
      SQ_ASSIGN_OR_RETURN(std::unique_ptr<LinearLayer> copy, CopyLayer(name, layer));
      return std::unique_ptr<train::TrainableLinear>(new FrozenLinear(std::move(copy)));
    }
    if (const auto* packed = dynamic_cast<const PackedIntLinear*>(&layer)) {
      if (options.quantized_as == "lora") {
        // The base must outlive the adapter: keep a copy of the packed layer.
        std::map<std::string, TensorView> stored;
        for (auto& [k, v] : packed->StoredTensors()) stored[k] = v;
        SQ_ASSIGN_OR_RETURN(std::unique_ptr<PackedIntLinear> copy, PackedIntLinear::FromStored(name, stored));
        std::shared_ptr<const LinearLayer> base = std::move(copy);
        return train::MakeLoraTrainable(base, options.lora_rank, options.lora_alpha,
                                        std::hash<std::string>{}(name) ^ options.train.seed);
      }
      if (options.quantized_as != "qat") {
        return absl::InvalidArgumentError(
            absl::StrCat("quantized_as: \"", options.quantized_as, "\" is not qat or lora"));
      }
      return MakeQatFromPacked(*packed);
    }
    if (const auto* f = dynamic_cast<const FactorizedLinear*>(&layer)) {
      return std::unique_ptr<train::TrainableLinear>(new FactorizedTrainable(*f));
    }
    if (const auto* sparse = dynamic_cast<const SparseLinear*>(&layer)) {
      return MakeSparseTrainable(*sparse);  // same storage format, same mask
    }
    return train::DenseTrainableFrom(layer, /*keep_zeros_as_mask=*/true);
  };
}

absl::StatusOr<DistillResult> DistillInPlace(Model& student, const Model& teacher, const train::TokenDataset& data,
                                             const DistillOptions& options, ThreadPool& pool) {
  SQ_ASSIGN_OR_RETURN(train::TrainModel tm, train::FromModel(student, StudentConverter(options)));
  tm.freeze_embedding = !options.train_embeddings;
  tm.freeze_norms = !options.train_norms;
  SQ_ASSIGN_OR_RETURN(auto trainer, train::Trainer::Create(&tm, &teacher, &data, options.train, &pool));
  SQ_RETURN_IF_ERROR(trainer->Resume().status());
  SQ_RETURN_IF_ERROR(trainer->Run(options.on_step));
  DistillResult r;
  r.history = trainer->history();
  Model trained = tm.ToModel();
  student.embedding = std::move(trained.embedding);
  student.final_norm = std::move(trained.final_norm);
  student.blocks = std::move(trained.blocks);
  student.lm_head = std::move(trained.lm_head);
  return r;
}

}  // namespace squeeze
