#include "workers/methods/distill/sparse_trainable.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "workers/methods/distill/wrapped_trainable.h"

namespace squeeze {
namespace {

class SparseTrainable final : public WrappedTrainable {
 public:
  SparseTrainable(std::unique_ptr<train::TrainableLinear> inner, SparseFormat format, int keep, int group)
      : WrappedTrainable(std::move(inner)), format_(format), keep_(keep), group_(group) {}
  std::unique_ptr<LinearLayer> ToInference() const override {
    auto p = InnerParams();
    const train::Param& w = *p[0].second;
    std::vector<float> bias = p.size() > 1 ? p[1].second->value : std::vector<float>{};
    MatrixRM dense = ConstMapMatrixRM(w.value.data(), w.shape[0], w.shape[1]);
    // Masked entries are exactly 0 (the mask invariant), so every N:M group
    // still has at most K nonzeros: FromDense cannot fail on a trained layer.
    auto s = SparseLinear::FromDense(dense, std::move(bias), format_, keep_, group_);
    return std::move(s).value();
  }
  std::string kind() const override { return "masked_sparse"; }

 private:
  SparseFormat format_;
  int keep_, group_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<train::TrainableLinear>> MakeSparseTrainable(const SparseLinear& layer) {
  int keep = 0, group = 0;
  if (layer.format() == SparseFormat::kNM) {
    // {K, M} as stored ("weight_nm", I64 [2]; sparse_linear.h).
    for (const auto& [name, view] : layer.StoredTensors()) {
      if (name != "weight_nm") continue;
      if (view.dtype != DType::kI64 || view.numel() != 2 || view.nbytes != 2 * sizeof(int64_t)) {
        return absl::InvalidArgumentError(absl::StrCat("sparse layer ", layer.kind(), ": weight_nm is not I64 [2]"));
      }
      int64_t nm[2];
      std::memcpy(nm, view.data, sizeof(nm));
      keep = static_cast<int>(nm[0]);
      group = static_cast<int>(nm[1]);
    }
    if (keep <= 0 || group <= keep) {
      return absl::InvalidArgumentError(absl::StrCat("sparse layer ", layer.kind(), ": no valid weight_nm {K, M}"));
    }
  }
  auto b = layer.bias();
  // The mask is the nonzero pattern: a stored 0 of an N:M group (padding)
  // stays frozen at 0 too, so the nonzero pattern after training is a subset
  // of the one before (equal unless a weight trains to exactly 0.0f).
  std::unique_ptr<train::TrainableLinear> inner =
      train::MakeDenseTrainable(layer.DenseWeight(), std::vector<float>(b.begin(), b.end()), /*keep_zeros_as_mask=*/true);
  return std::unique_ptr<train::TrainableLinear>(new SparseTrainable(std::move(inner), layer.format(), keep, group));
}

}  // namespace squeeze
