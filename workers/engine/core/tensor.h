// Element types and a typed, shape-carrying view of tensor bytes.
//
// TensorView never copies: `data` points into a memory-mapped checkpoint or an
// owned buffer, and `owner` keeps that memory alive. Compute happens on fp32
// Eigen matrices (MatrixRM); conversion from stored dtypes is explicit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include <Eigen/Core>

#include "absl/status/statusor.h"

namespace squeeze {

// Row-major fp32 matrix: the engine's compute type. Weights are [out, in].
using MatrixRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapMatrixRM = Eigen::Map<MatrixRM>;
using ConstMapMatrixRM = Eigen::Map<const MatrixRM>;

// Element types, named as safetensors names them.
enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

size_t DTypeSize(DType dtype);
absl::string_view DTypeName(DType dtype);                      // "F32", "BF16", ...
absl::StatusOr<DType> ParseDTypeName(absl::string_view name);  // inverse of DTypeName

struct TensorView {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;  // == numel() * DTypeSize(dtype) for a well-formed view
  std::shared_ptr<const void> owner;

  int64_t numel() const;
  int64_t dim(int i) const { return shape.at(i); }
};

// A view that owns a fresh fp32 copy of `values` with the given shape.
TensorView OwnedF32(std::vector<float> values, std::vector<int64_t> shape);

// Converts an F32/F16/BF16 view to fp32 values (row-major, same order).
// InvalidArgument for other dtypes; the message names `what`.
absl::StatusOr<std::vector<float>> ToFloat32(const TensorView& view, absl::string_view what = "tensor");

// Converts fp32 values to the bytes of `dtype` (F32, F16 or BF16).
absl::StatusOr<std::string> FromFloat32(const float* values, int64_t n, DType dtype);

// "[64, 172]"
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace squeeze
