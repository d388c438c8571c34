#include "workers/engine/core/tensor.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "workers/engine/core/half.h"

namespace squeeze {

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF64: case DType::kI64: return 8;
    case DType::kF32: case DType::kI32: return 4;
    case DType::kF16: case DType::kBF16: case DType::kI16: return 2;
    case DType::kI8: case DType::kU8: case DType::kBool: return 1;
  }
  return 0;
}

absl::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF64: return "F64";
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI64: return "I64";
    case DType::kI32: return "I32";
    case DType::kI16: return "I16";
    case DType::kI8: return "I8";
    case DType::kU8: return "U8";
    case DType::kBool: return "BOOL";
  }
  return "?";
}

absl::StatusOr<DType> ParseDTypeName(absl::string_view name) {
  for (DType d : {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kI64, DType::kI32,
                  DType::kI16, DType::kI8, DType::kU8, DType::kBool}) {
    if (DTypeName(d) == name) return d;
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported dtype \"", name, "\""));
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

TensorView OwnedF32(std::vector<float> values, std::vector<int64_t> shape) {
  auto buffer = std::make_shared<std::vector<float>>(std::move(values));
  TensorView view;
  view.dtype = DType::kF32;
  view.shape = std::move(shape);
  view.data = buffer->data();
  view.nbytes = buffer->size() * sizeof(float);
  view.owner = std::move(buffer);
  return view;
}

absl::StatusOr<std::vector<float>> ToFloat32(const TensorView& view, absl::string_view what) {
  const int64_t n = view.numel();
  if (static_cast<size_t>(n) * DTypeSize(view.dtype) != view.nbytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": shape ", ShapeString(view.shape),
                                                   " does not match ", view.nbytes, " bytes"));
  }
  std::vector<float> out(static_cast<size_t>(n));
  switch (view.dtype) {
    case DType::kF32:
      if (n > 0) std::memcpy(out.data(), view.data, view.nbytes);
      return out;
    case DType::kF16: {
      const auto* src = static_cast<const uint8_t*>(view.data);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);  // checkpoint data may be unaligned
        out[i] = F16ToFloat(h);
      }
      return out;
    }
    case DType::kBF16: {
      const auto* src = static_cast<const uint8_t*>(view.data);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = Bf16ToFloat(h);
      }
      return out;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(what, ": dtype ", DTypeName(view.dtype),
                                                     " is not a float type (F32, F16, BF16)"));
  }
}

absl::StatusOr<std::string> FromFloat32(const float* values, int64_t n, DType dtype) {
  std::string out;
  switch (dtype) {
    case DType::kF32:
      out.assign(reinterpret_cast<const char*>(values), static_cast<size_t>(n) * 4);
      return out;
    case DType::kF16:
    case DType::kBF16: {
      out.resize(static_cast<size_t>(n) * 2);
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = dtype == DType::kF16 ? FloatToF16(values[i]) : FloatToBf16(values[i]);
        std::memcpy(&out[2 * i], &h, 2);
      }
      return out;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("cannot store floats as ", DTypeName(dtype)));
  }
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace squeeze
