#include "workers/engine/formats/compressed_tensors_sparse.h"

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/int_weight.h"

namespace squeeze {
namespace {

int64_t MaskRowBytes(int64_t cols) { return (cols + 7) / 8; }

bool Bit(const std::vector<uint8_t>& mask, int64_t row_bytes, int64_t r, int64_t c) {
  return ((mask[r * row_bytes + c / 8] >> (c % 8)) & 1u) != 0;
}

TensorView OwnedU8(std::vector<uint8_t> bytes, std::vector<int64_t> shape) {
  return OwnedBytes(DType::kU8, std::string(bytes.begin(), bytes.end()), std::move(shape));
}

}  // namespace

std::vector<SafetensorsEntry> CtBitmaskEntries(const std::string& module, const MatrixRM& w, DType dtype) {
  const int64_t rows = w.rows(), cols = w.cols(), rb = MaskRowBytes(cols);
  std::vector<uint8_t> mask(static_cast<size_t>(rows * rb), 0);
  std::vector<int64_t> offsets(static_cast<size_t>(rows));
  std::vector<float> values;
  for (int64_t r = 0; r < rows; ++r) {
    offsets[r] = static_cast<int64_t>(values.size());
    for (int64_t c = 0; c < cols; ++c) {
      const float v = w(r, c);
      if (v == 0.0f) continue;  // torch: tensor != 0 (so -0.0 is not stored either)
      mask[r * rb + c / 8] |= static_cast<uint8_t>(1u << (c % 8));
      values.push_back(v);
    }
  }
  const int64_t nnz = static_cast<int64_t>(values.size());
  std::vector<SafetensorsEntry> out;
  out.push_back(StoredAs(module + ".shape", OwnedI64({rows, cols}, {2})));
  out.push_back(StoredAs(module + ".compressed", OwnedF32(std::move(values), {nnz}), dtype));
  out.push_back(StoredAs(module + ".bitmask", OwnedU8(std::move(mask), {rows, rb})));
  out.push_back(StoredAs(module + ".row_offsets", OwnedI64(std::move(offsets), {rows})));
  return out;
}

absl::StatusOr<std::vector<SafetensorsEntry>> CtSparse24Entries(const std::string& module, const MatrixRM& w,
                                                                DType dtype) {
  const int64_t rows = w.rows(), cols = w.cols(), rb = MaskRowBytes(cols);
  if (cols % 4 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(module, ": sparse-24-bitmask needs in_features divisible by 4, got ",
                                                   cols));
  }
  std::vector<uint8_t> mask(static_cast<size_t>(rows * rb), 0);
  std::vector<float> values;
  values.reserve(static_cast<size_t>(rows * cols / 2));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < cols; g += 4) {
      bool keep[4] = {false, false, false, false};
      int kept = 0;
      for (int i = 0; i < 4; ++i) {
        if (w(r, g + i) != 0.0f) keep[i] = true, ++kept;
      }
      if (kept > 2) {
        return absl::InvalidArgumentError(absl::StrCat(module, ": not 2:4 sparse (row ", r, ", inputs ", g, "..", g + 3,
                                                       " hold ", kept, " non-zeros); use sparse-bitmask"));
      }
      for (int i = 0; i < 4 && kept < 2; ++i) {
        if (!keep[i]) keep[i] = true, ++kept;  // pad with the lowest free positions
      }
      for (int i = 0; i < 4; ++i) {
        if (!keep[i]) continue;
        const int64_t c = g + i;
        mask[r * rb + c / 8] |= static_cast<uint8_t>(1u << (c % 8));
        values.push_back(w(r, c) == 0.0f ? 0.0f : w(r, c));
      }
    }
  }
  std::vector<SafetensorsEntry> out;
  out.push_back(StoredAs(module + ".shape", OwnedI64({rows, cols}, {2, 1})));
  out.push_back(StoredAs(module + ".compressed", OwnedF32(std::move(values), {rows, cols / 2}), dtype));
  out.push_back(StoredAs(module + ".bitmask", OwnedU8(std::move(mask), {rows, rb})));
  return out;
}

absl::Status CtSparseToCheckpoint(const std::string& m, const std::string& format, const std::string& source,
                                  CheckpointTensors* ck) {
  const std::string what = absl::StrCat(source, ": ", m);
  auto find = [&](const char* suffix) -> const SourceTensor* {
    auto it = ck->tensors.find(m + suffix);
    return it == ck->tensors.end() ? nullptr : &it->second;
  };
  const SourceTensor* shape_t = find(".shape");
  const SourceTensor* values_t = find(".compressed");
  const SourceTensor* mask_t = find(".bitmask");
  if (shape_t == nullptr || values_t == nullptr || mask_t == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", format, " needs the tensors ", m, ".shape, ", m,
                                                   ".compressed and ", m, ".bitmask"));
  }
  if (find(".weight") != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": has both a dense weight and ", format, " tensors"));
  }
  const std::string file = values_t->file;
  SQ_ASSIGN_OR_RETURN(std::vector<int64_t> shape, ReadIntTensor(shape_t->view, what + ".shape"));
  if (shape.size() != 2 || shape[0] <= 0 || shape[1] <= 0 || shape[0] > (int64_t{1} << 31) ||
      shape[1] > (int64_t{1} << 31)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ".shape: expected two positive sizes {out, in}, got ",
                                                   shape.size(), " values ", ShapeString(shape)));
  }
  const int64_t rows = shape[0], cols = shape[1], rb = MaskRowBytes(cols);
  if (mask_t->view.dtype != DType::kU8) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ".bitmask: dtype ", DTypeName(mask_t->view.dtype), ", expected U8 (numpy packbits)"));
  }
  SQ_ASSIGN_OR_RETURN(std::vector<int64_t> mask64, ReadIntTensor(mask_t->view, what + ".bitmask", {rows, rb}));
  std::vector<uint8_t> mask(mask64.begin(), mask64.end());
  if (values_t->view.dtype != DType::kF32 && values_t->view.dtype != DType::kF16 &&
      values_t->view.dtype != DType::kBF16) {
    return absl::UnimplementedError(absl::StrCat(what, ".compressed: dtype ", DTypeName(values_t->view.dtype),
                                                 " (only F32, F16 and BF16 sparse values are read)"));
  }
  const bool two_four = format == kCtSparse24Bitmask;
  if (two_four) {
    if (cols % 4 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": sparse-24-bitmask with in_features ", cols,
                                                     " not divisible by 4"));
    }
    const std::vector<int64_t> want = {rows, cols / 2};
    if (values_t->view.shape != want) {
      return absl::InvalidArgumentError(absl::StrCat(what, ".compressed: shape ", ShapeString(values_t->view.shape),
                                                     ", expected ", ShapeString(want)));
    }
  } else if (values_t->view.shape.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ".compressed: shape ", ShapeString(values_t->view.shape), ", expected 1-D [nnz]"));
  }
  SQ_ASSIGN_OR_RETURN(std::vector<float> values, ToFloat32(values_t->view, what + ".compressed"));

  // Set bits per row (padding bits past `cols` are ignored, as numpy
  // unpackbits(count=in) does) against the values and row_offsets.
  std::vector<int64_t> offsets(static_cast<size_t>(rows));
  int64_t set = 0;
  bool exactly_two = two_four;
  for (int64_t r = 0; r < rows; ++r) {
    offsets[r] = set;
    for (int64_t c = 0; c < cols; ++c) {
      if (Bit(mask, rb, r, c)) ++set;
    }
    for (int64_t g = 0; two_four && exactly_two && g < cols; g += 4) {
      int n = 0;
      for (int i = 0; i < 4; ++i) n += Bit(mask, rb, r, g + i) ? 1 : 0;
      exactly_two = n == 2;
    }
  }
  if (set != static_cast<int64_t>(values.size())) {
    return absl::InvalidArgumentError(absl::StrCat(what, ".compressed: ", values.size(), " values but ", m,
                                                   ".bitmask sets ", set, " bits"));
  }
  if (const SourceTensor* ro = find(".row_offsets")) {
    SQ_ASSIGN_OR_RETURN(std::vector<int64_t> given, ReadIntTensor(ro->view, what + ".row_offsets", {rows}));
    for (int64_t r = 0; r < rows; ++r) {
      if (given[r] != offsets[r]) {
        return absl::InvalidArgumentError(absl::StrCat(what, ".row_offsets: row ", r, " starts at ", given[r],
                                                       ", the bitmask says ", offsets[r]));
      }
    }
  }
  for (const char* s : {".shape", ".compressed", ".bitmask", ".row_offsets"}) ck->tensors.erase(m + s);
  const std::string p = m + ".";
  if (exactly_two) {
    // sparse_2of4: weight_values [out, in / 2], weight_indices 4-bit
    // positions (value 2i low nibble of byte i), weight_nm {2, 4}.
    const int64_t per_row = cols / 2, ib = (per_row + 1) / 2;
    std::vector<uint8_t> idx(static_cast<size_t>(rows * ib), 0);
    for (int64_t r = 0; r < rows; ++r) {
      int64_t k = 0;
      for (int64_t c = 0; c < cols; ++c) {
        if (!Bit(mask, rb, r, c)) continue;
        idx[r * ib + k / 2] |= static_cast<uint8_t>((c % 4) << (4 * (k % 2)));
        ++k;
      }
    }
    ck->tensors[p + "weight_shape"] = {OwnedI64({rows, cols}, {2}), file};
    ck->tensors[p + "weight_nm"] = {OwnedI64({2, 4}, {2}), file};
    ck->tensors[p + "weight_values"] = {OwnedF32(std::move(values), {rows, per_row}), file};
    ck->tensors[p + "weight_indices"] = {OwnedU8(std::move(idx), {rows, ib}), file};
    ck->linear_kinds[m] = "sparse_2of4";
    return absl::OkStatus();
  }
  // sparse_bitmask: only the non-zero values are stored (a stored zero,
  // e.g. padding of a 2:4 group, is dropped with its bit).
  std::vector<uint8_t> nz_mask(static_cast<size_t>(rows * rb), 0);
  std::vector<int64_t> nz_offsets(static_cast<size_t>(rows));
  std::vector<float> nz_values;
  size_t next = 0;
  for (int64_t r = 0; r < rows; ++r) {
    nz_offsets[r] = static_cast<int64_t>(nz_values.size());
    for (int64_t c = 0; c < cols; ++c) {
      if (!Bit(mask, rb, r, c)) continue;
      const float v = values[next++];
      if (v == 0.0f) continue;
      nz_mask[r * rb + c / 8] |= static_cast<uint8_t>(1u << (c % 8));
      nz_values.push_back(v);
    }
  }
  const int64_t nnz = static_cast<int64_t>(nz_values.size());
  ck->tensors[p + "weight_shape"] = {OwnedI64({rows, cols}, {2}), file};
  ck->tensors[p + "weight_bitmask"] = {OwnedU8(std::move(nz_mask), {rows, rb}), file};
  ck->tensors[p + "weight_row_offsets"] = {OwnedI64(std::move(nz_offsets), {rows}), file};
  ck->tensors[p + "weight_values"] = {OwnedF32(std::move(nz_values), {nnz}), file};
  ck->linear_kinds[m] = "sparse_bitmask";
  return absl::OkStatus();
}

}  // namespace squeeze
