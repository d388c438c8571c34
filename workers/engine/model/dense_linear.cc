#include "workers/engine/model/dense_linear.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/half.h"
#include "workers/kernels/cpu/gemm_f32.h"
#include "workers/kernels/cpu/gemm_half.h"
#include "workers/kernels/cpu/cpu_features.h"
#include "workers/kernels/cpu/transformer_ops.h"

namespace squeeze {

absl::StatusOr<std::unique_ptr<DenseLinear>> DenseLinear::Create(TensorView weight,
                                                                 std::vector<float> bias) {
  if (weight.shape.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("linear weight must be 2-D, got shape ", ShapeString(weight.shape)));
  }
  if (weight.dtype != DType::kF32 && weight.dtype != DType::kF16 && weight.dtype != DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("linear weight dtype ", DTypeName(weight.dtype),
                                                   " is not F32, F16 or BF16"));
  }
  if (static_cast<size_t>(weight.numel()) * DTypeSize(weight.dtype) != weight.nbytes) {
    return absl::InvalidArgumentError(absl::StrCat("linear weight shape ", ShapeString(weight.shape),
                                                   " does not match ", weight.nbytes, " bytes"));
  }
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != weight.shape[0]) {
    return absl::InvalidArgumentError(absl::StrCat("bias has ", bias.size(), " values, expected ",
                                                   weight.shape[0]));
  }
  if (weight.dtype == DType::kF32 && reinterpret_cast<uintptr_t>(weight.data) % alignof(float) != 0) {
    // Unaligned fp32 data cannot be used in place; copy it.
    std::vector<float> copy(static_cast<size_t>(weight.numel()));
    if (!copy.empty()) std::memcpy(copy.data(), weight.data, weight.nbytes);
    weight = OwnedF32(std::move(copy), weight.shape);
  }
  if (weight.dtype != DType::kF32 && reinterpret_cast<uintptr_t>(weight.data) % alignof(uint16_t) != 0) {
    // The 16-bit kernels read uint16_t; copy an odd-addressed view.
    auto copy = std::make_shared<std::vector<uint16_t>>(static_cast<size_t>(weight.numel()));
    if (!copy->empty()) std::memcpy(copy->data(), weight.data, weight.nbytes);
    weight.data = copy->data();
    weight.owner = std::move(copy);
  }
  return std::unique_ptr<DenseLinear>(new DenseLinear(std::move(weight), std::move(bias)));
}

std::unique_ptr<DenseLinear> DenseLinear::FromMatrix(MatrixRM weight, std::vector<float> bias) {
  const int64_t out = weight.rows(), in = weight.cols();
  std::vector<float> values(weight.data(), weight.data() + weight.size());
  return std::unique_ptr<DenseLinear>(
      new DenseLinear(OwnedF32(std::move(values), {out, in}), std::move(bias)));
}

DenseLinear::DenseLinear(TensorView weight, std::vector<float> bias)
    : weight_(std::move(weight)), bias_(std::move(bias)), out_(weight_.shape[0]), in_(weight_.shape[1]) {}

void DenseLinear::WidenRows(int64_t row_begin, int64_t row_end, float* dst) const {
  const int64_t n = (row_end - row_begin) * in_;
  const auto* src = static_cast<const uint8_t*>(weight_.data) + row_begin * in_ * DTypeSize(weight_.dtype);
  switch (weight_.dtype) {
    case DType::kF32:
      std::memcpy(dst, src, n * sizeof(float));
      break;
    case DType::kF16:
    case DType::kBF16:
      // Exact SIMD widening (the same bits as F16ToFloat / Bf16ToFloat).
      kernels::WidenHalf(weight_.dtype == DType::kF16 ? kernels::HalfType::kF16 : kernels::HalfType::kBF16,
                         reinterpret_cast<const uint16_t*>(src), n, dst);
      break;
    default:
      break;  // excluded by Create
  }
}

const float* DenseLinear::RowsF32(int64_t row_begin, int64_t row_end, std::vector<float>& scratch) const {
  if (weight_.dtype == DType::kF32) return static_cast<const float*>(weight_.data) + row_begin * in_;
  const size_t need = static_cast<size_t>((row_end - row_begin) * in_);
  if (scratch.size() < need) scratch.resize(need);
  WidenRows(row_begin, row_end, scratch.data());
  return scratch.data();
}

void DenseLinear::Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const {
  if (n_rows <= 0 || out_ <= 0) return;
  // Fixed column chunks (a function of the shape only); inside a chunk every
  // output is one sum over `in` in the kernel's fixed order, so the result
  // does not depend on the pool size or on how chunks land on threads.
  const int64_t chunk = kernels::GemmF32ChunkColumns(n_rows, out_, in_);
  const int64_t n_chunks = (out_ + chunk - 1) / chunk;
  // F16/BF16 at up to kHalfDirectMaxRows rows with a SIMD variant: the
  // direct kernel widens W in registers (reads 2 bytes per weight once).
  const bool direct_half = weight_.dtype != DType::kF32 && n_rows <= kHalfDirectMaxRows &&
                           kernels::ActiveIsa() != kernels::KernelIsa::kReference;
  const kernels::HalfType half_type =
      weight_.dtype == DType::kF16 ? kernels::HalfType::kF16 : kernels::HalfType::kBF16;
  pool.ParallelFor(n_chunks, 1, [&](int64_t cb, int64_t ce) {
    if (direct_half) {
      const auto* w16 = static_cast<const uint16_t*>(weight_.data);
      for (int64_t c = cb; c < ce; ++c) {
        const int64_t j0 = c * chunk, j1 = std::min(out_, j0 + chunk);
        kernels::GemmHalfNTStrided(half_type, x, n_rows, in_, w16 + j0 * in_, j1 - j0, y + j0, out_);
        AddBias(n_rows, j0, j1, y);
      }
      return;
    }
    // F16/BF16 chunks are widened here (at most chunk * in floats, reused
    // for this range's chunks; F32 never touches it).
    std::vector<float> widened;
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t j0 = c * chunk, j1 = std::min(out_, j0 + chunk);
      const float* w = RowsF32(j0, j1, widened);
      kernels::GemmF32NTStrided(x, n_rows, in_, w, j1 - j0, y + j0, out_);
      AddBias(n_rows, j0, j1, y);
    }
  });
}

void DenseLinear::AddBias(int64_t n_rows, int64_t j0, int64_t j1, float* y) const {
  if (bias_.empty()) return;
  for (int64_t i = 0; i < n_rows; ++i) {
    float* yi = y + i * out_;
    for (int64_t j = j0; j < j1; ++j) yi[j] += bias_[j];
  }
}

void DenseLinear::ForwardReference(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const {
  ConstMapMatrixRM X(x, n_rows, in_);
  MapMatrixRM Y(y, n_rows, out_);
  // Split the output features into chunks whose width depends only on the
  // shape; each chunk computes a column block of Y with Eigen's
  // (single-threaded) GEMM, so results do not depend on the pool size.
  kernels::ForEachColumnChunk(n_rows, out_, in_, pool, [&](int64_t begin, int64_t end) {
    const int64_t rows = end - begin;
    if (weight_.dtype == DType::kF32) {
      ConstMapMatrixRM W(static_cast<const float*>(weight_.data) + begin * in_, rows, in_);
      Y.middleCols(begin, rows).noalias() = X * W.transpose();
    } else {
      MatrixRM W(rows, in_);
      WidenRows(begin, end, W.data());
      Y.middleCols(begin, rows).noalias() = X * W.transpose();
    }
    if (!bias_.empty()) {
      Eigen::Map<const Eigen::RowVectorXf> b(bias_.data() + begin, rows);
      Y.middleCols(begin, rows).rowwise() += b;
    }
  });
}

MatrixRM DenseLinear::DenseWeight() const {
  MatrixRM w(out_, in_);
  WidenRows(0, out_, w.data());
  return w;
}

std::string DenseLinear::kind() const {
  std::string name(DTypeName(weight_.dtype));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return "dense_" + name;
}

int64_t DenseLinear::StorageBytes() const {
  return static_cast<int64_t>(weight_.nbytes + bias_.size() * sizeof(float));
}

std::vector<std::pair<std::string, TensorView>> DenseLinear::StoredTensors() const {
  std::vector<std::pair<std::string, TensorView>> out{{"weight", weight_}};
  if (!bias_.empty()) {
    TensorView b;
    b.dtype = DType::kF32;
    b.shape = {static_cast<int64_t>(bias_.size())};
    b.data = bias_.data();
    b.nbytes = bias_.size() * sizeof(float);
    out.emplace_back("bias", std::move(b));
  }
  return out;
}

}  // namespace squeeze
