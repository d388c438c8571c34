#include "workers/methods/lowrank/factorized_linear.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/kernels/cpu/gemm_f32.h"

namespace squeeze {
namespace {

TensorView ViewOf(const float* data, std::vector<int64_t> shape) {
  TensorView t;
  t.dtype = DType::kF32;
  t.shape = std::move(shape);
  t.data = data;
  t.nbytes = static_cast<size_t>(t.numel()) * sizeof(float);
  return t;
}

absl::StatusOr<MatrixRM> Matrix2D(const std::string& module, const std::map<std::string, TensorView>& tensors,
                                  const std::string& name) {
  auto it = tensors.find(name);
  if (it == tensors.end()) return absl::InvalidArgumentError(absl::StrCat(module, ": missing tensor ", name));
  const TensorView& t = it->second;
  if (t.shape.size() != 2 || t.shape[0] < 1 || t.shape[1] < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(module, ".", name, ": expected a non-empty 2-D tensor, got shape ", ShapeString(t.shape)));
  }
  if (static_cast<size_t>(t.numel()) * DTypeSize(t.dtype) != t.nbytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(module, ".", name, ": shape ", ShapeString(t.shape), " does not match ", t.nbytes, " bytes"));
  }
  auto values = ToFloat32(t, absl::StrCat(module, ".", name));
  if (!values.ok()) return values.status();
  MatrixRM m(t.shape[0], t.shape[1]);
  std::memcpy(m.data(), values->data(), values->size() * sizeof(float));
  return m;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FactorizedLinear>> FactorizedLinear::Create(MatrixRM u, MatrixRM v,
                                                                           std::vector<float> bias) {
  if (u.cols() < 1 || u.rows() < 1 || v.cols() < 1 || u.cols() != v.rows()) {
    return absl::InvalidArgumentError(absl::StrCat("low-rank factors U [", u.rows(), ", ", u.cols(), "] and V [",
                                                   v.rows(), ", ", v.cols(),
                                                   "] do not form U V (need U [out, r], V [r, in], r >= 1)"));
  }
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != u.rows()) {
    return absl::InvalidArgumentError(absl::StrCat("bias has ", bias.size(), " values, expected ", u.rows()));
  }
  return std::unique_ptr<FactorizedLinear>(new FactorizedLinear(std::move(u), std::move(v), std::move(bias)));
}

absl::StatusOr<std::unique_ptr<FactorizedLinear>> FactorizedLinear::FromStored(
    const std::string& module, const std::map<std::string, TensorView>& tensors) {
  auto u = Matrix2D(module, tensors, "weight_u");
  if (!u.ok()) return u.status();
  auto v = Matrix2D(module, tensors, "weight_v");
  if (!v.ok()) return v.status();
  std::vector<float> bias;
  if (auto b = tensors.find("bias"); b != tensors.end()) {
    auto values = ToFloat32(b->second, absl::StrCat(module, ".bias"));
    if (!values.ok()) return values.status();
    bias = std::move(*values);
  }
  auto layer = Create(std::move(*u), std::move(*v), std::move(bias));
  if (!layer.ok()) return absl::InvalidArgumentError(absl::StrCat(module, ": ", layer.status().message()));
  return layer;
}

void FactorizedLinear::Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const {
  const int64_t in = in_features(), out = out_features(), r = rank();
  std::vector<float> t(static_cast<size_t>(n_rows * r));
  kernels::GemmF32NT(x, n_rows, in, v_.data(), r, t.data(), pool);    // t = x V^T
  kernels::GemmF32NT(t.data(), n_rows, r, u_.data(), out, y, pool);  // y = t U^T
  if (!bias_.empty()) {
    MapMatrixRM Y(y, n_rows, out);
    Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias_.data(), out);
  }
}

MatrixRM FactorizedLinear::DenseWeight() const { return u_ * v_; }

int64_t FactorizedLinear::StorageBytes() const {
  return static_cast<int64_t>((u_.size() + v_.size() + bias_.size()) * sizeof(float));
}

std::vector<std::pair<std::string, TensorView>> FactorizedLinear::StoredTensors() const {
  std::vector<std::pair<std::string, TensorView>> out{{"weight_u", ViewOf(u_.data(), {u_.rows(), u_.cols()})},
                                                      {"weight_v", ViewOf(v_.data(), {v_.rows(), v_.cols()})}};
  if (!bias_.empty()) out.emplace_back("bias", ViewOf(bias_.data(), {static_cast<int64_t>(bias_.size())}));
  return out;
}

}  // namespace squeeze
