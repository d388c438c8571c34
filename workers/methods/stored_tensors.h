// Helpers shared by the compressed linear kinds (quant/packed_int_linear,
// prune/sparse_linear) to expose their vectors as stored tensors and to read
// them back with every dtype, shape and byte count checked.
#pragma once

#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/tensor.h"

namespace squeeze {

// A view of `v` as a tensor of `dtype` and `shape`; valid while `v` is unchanged.
template <typename T, typename A>
TensorView VectorView(const std::vector<T, A>& v, DType dtype, std::vector<int64_t> shape) {
  TensorView t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = v.data();
  t.nbytes = v.size() * sizeof(T);
  return t;
}

// Copies tensor `name` of `module` into `out` after checking that it exists and
// has exactly `dtype`, `shape` and numel * sizeof(T) bytes. Errors name the
// module, the tensor, what was expected and what was found.
template <typename T, typename A>
absl::Status CopyStoredTensor(const std::string& module, const std::map<std::string, TensorView>& tensors,
                              const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                              std::vector<T, A>* out) {
  auto it = tensors.find(name);
  if (it == tensors.end()) return absl::InvalidArgumentError(absl::StrCat(module, ": missing tensor ", name));
  const TensorView& t = it->second;
  if (t.dtype != dtype || t.shape != shape || t.nbytes != static_cast<size_t>(t.numel()) * sizeof(T)) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".", name, ": expected ", DTypeName(dtype), " ",
                                                   ShapeString(shape), ", got ", DTypeName(t.dtype), " ",
                                                   ShapeString(t.shape), " (", t.nbytes, " bytes)"));
  }
  out->resize(static_cast<size_t>(t.numel()));
  if (t.nbytes > 0) std::memcpy(out->data(), t.data, t.nbytes);
  return absl::OkStatus();
}

}  // namespace squeeze
