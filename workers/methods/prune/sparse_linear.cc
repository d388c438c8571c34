#include "workers/methods/prune/sparse_linear.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/kernels/cpu/sparse_gemm.h"
#include "workers/methods/stored_tensors.h"

namespace squeeze {
namespace {

// Float values of tensor `name` (F32/F16/BF16) with shape `shape`.
absl::Status CopyFloats(const std::string& module, const std::map<std::string, TensorView>& tensors,
                        const std::string& name, const std::vector<int64_t>& shape, std::vector<float>* out) {
  auto it = tensors.find(name);
  if (it == tensors.end()) return absl::InvalidArgumentError(absl::StrCat(module, ": missing tensor ", name));
  const TensorView& t = it->second;
  if (t.shape != shape || static_cast<size_t>(t.numel()) * DTypeSize(t.dtype) != t.nbytes) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".", name, ": expected shape ", ShapeString(shape),
                                                   ", got ", ShapeString(t.shape), " (", t.nbytes, " bytes)"));
  }
  auto v = ToFloat32(t, absl::StrCat(module, ".", name));
  if (!v.ok()) return v.status();
  *out = std::move(*v);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SparseLinear>> SparseLinear::FromDense(const MatrixRM& w, std::vector<float> bias,
                                                                      SparseFormat format, int keep, int group) {
  if (w.rows() < 1 || w.cols() < 1) return absl::InvalidArgumentError("sparse layer: empty weight");
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != w.rows()) {
    return absl::InvalidArgumentError(absl::StrCat("sparse layer: bias has ", bias.size(), " values, expected ", w.rows()));
  }
  std::unique_ptr<SparseLinear> l(new SparseLinear());
  l->format_ = format;
  l->out_ = w.rows();
  l->in_ = w.cols();
  l->shape_ = {l->out_, l->in_};
  l->bias_ = std::move(bias);
  if (format == SparseFormat::kBitmask) {
    l->bitmask_.assign(l->out_ * l->mask_row_bytes(), 0);
    l->row_offsets_.resize(l->out_);
    for (int64_t r = 0; r < l->out_; ++r) {
      l->row_offsets_[r] = static_cast<int64_t>(l->values_.size());
      uint8_t* mask = l->bitmask_.data() + r * l->mask_row_bytes();
      for (int64_t j = 0; j < l->in_; ++j) {
        if (w(r, j) == 0.0f) continue;  // -0.0f too: stored as absent, reads back +0
        mask[j / 8] |= static_cast<uint8_t>(1u << (j % 8));
        l->values_.push_back(w(r, j));
      }
    }
    return l;
  }
  if (!(keep >= 1 && keep < group && group <= 16) || l->in_ % group != 0) {
    return absl::InvalidArgumentError(absl::StrCat("sparse layer: N:M storage keeping ", keep, " of ", group,
                                                   " needs 1 <= K < M <= 16 and M dividing in_features ", l->in_));
  }
  l->keep_ = keep;
  l->group_ = group;
  l->nm_ = {keep, group};
  const int64_t per_row = l->values_per_row();
  l->values_.assign(l->out_ * per_row, 0.0f);
  l->indices_.assign(l->out_ * l->index_row_bytes(), 0);
  for (int64_t r = 0; r < l->out_; ++r) {
    float* vals = l->values_.data() + r * per_row;
    uint8_t* idx = l->indices_.data() + r * l->index_row_bytes();
    int64_t k = 0;
    for (int64_t g = 0; g < l->in_ / group; ++g) {
      int nonzero = 0;
      for (int p = 0; p < group; ++p) nonzero += w(r, g * group + p) != 0.0f;
      if (nonzero > keep) {
        return absl::InvalidArgumentError(absl::StrCat("sparse layer: row ", r, " group ", g, " has ", nonzero,
                                                       " nonzeros, more than the ", keep, " of ", group, " kept"));
      }
      int pad = keep - nonzero;  // zeros stored at the lowest free positions
      for (int p = 0; p < group; ++p) {
        const float v = w(r, g * group + p);
        if (v == 0.0f) {
          if (pad == 0) continue;
          --pad;
        }
        vals[k] = v == 0.0f ? 0.0f : v;
        idx[k / 2] |= static_cast<uint8_t>(p << (4 * (k % 2)));
        ++k;
      }
    }
  }
  return l;
}

absl::StatusOr<std::unique_ptr<SparseLinear>> SparseLinear::FromStored(
    const std::string& module, const std::map<std::string, TensorView>& tensors) {
  std::unique_ptr<SparseLinear> l(new SparseLinear());
  if (absl::Status s = CopyStoredTensor(module, tensors, "weight_shape", DType::kI64, {2}, &l->shape_); !s.ok()) return s;
  l->out_ = l->shape_[0];
  l->in_ = l->shape_[1];
  if (l->out_ < 1 || l->in_ < 1 || l->out_ > (int64_t{1} << 31) || l->in_ > (int64_t{1} << 31)) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".weight_shape: bad shape ", ShapeString(l->shape_)));
  }
  if (tensors.count("bias")) {
    if (absl::Status s = CopyFloats(module, tensors, "bias", {l->out_}, &l->bias_); !s.ok()) return s;
  }
  if (tensors.count("weight_bitmask")) {
    l->format_ = SparseFormat::kBitmask;
    if (absl::Status s = CopyStoredTensor(module, tensors, "weight_bitmask", DType::kU8, {l->out_, l->mask_row_bytes()},
                                   &l->bitmask_);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CopyStoredTensor(module, tensors, "weight_row_offsets", DType::kI64, {l->out_}, &l->row_offsets_);
        !s.ok()) {
      return s;
    }
    int64_t nnz = 0;
    for (int64_t r = 0; r < l->out_; ++r) {
      if (l->row_offsets_[r] != nnz) {
        return absl::InvalidArgumentError(absl::StrCat(module, ".weight_row_offsets: row ", r, " starts at ",
                                                       l->row_offsets_[r], ", the bitmask says ", nnz));
      }
      const uint8_t* mask = l->bitmask_.data() + r * l->mask_row_bytes();
      for (int64_t b = 0; b < l->mask_row_bytes(); ++b) nnz += __builtin_popcount(mask[b]);
      if (l->in_ % 8 != 0 && (mask[l->mask_row_bytes() - 1] >> (l->in_ % 8)) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(module, ".weight_bitmask: row ", r, " has padding bits set"));
      }
    }
    if (absl::Status s = CopyFloats(module, tensors, "weight_values", {nnz}, &l->values_); !s.ok()) return s;
    return l;
  }
  if (!tensors.count("weight_nm")) {
    return absl::InvalidArgumentError(absl::StrCat(module, ": sparse layer without weight_bitmask or weight_nm"));
  }
  l->format_ = SparseFormat::kNM;
  if (absl::Status s = CopyStoredTensor(module, tensors, "weight_nm", DType::kI64, {2}, &l->nm_); !s.ok()) return s;
  if (!(l->nm_[0] >= 1 && l->nm_[0] < l->nm_[1] && l->nm_[1] <= 16) || l->in_ % l->nm_[1] != 0) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".weight_nm: {", l->nm_[0], ", ", l->nm_[1],
                                                   "} is not 1 <= K < M <= 16 with M dividing ", l->in_));
  }
  l->keep_ = static_cast<int>(l->nm_[0]);
  l->group_ = static_cast<int>(l->nm_[1]);
  if (absl::Status s = CopyFloats(module, tensors, "weight_values", {l->out_, l->values_per_row()}, &l->values_);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CopyStoredTensor(module, tensors, "weight_indices", DType::kU8, {l->out_, l->index_row_bytes()},
                                 &l->indices_);
      !s.ok()) {
    return s;
  }
  const int64_t per_row = l->values_per_row();
  for (int64_t r = 0; r < l->out_; ++r) {
    const uint8_t* idx = l->indices_.data() + r * l->index_row_bytes();
    for (int64_t k = 0; k < per_row; ++k) {
      const int p = (idx[k / 2] >> (4 * (k % 2))) & 0xF;
      const int prev = k % l->keep_ == 0 ? -1 : (idx[(k - 1) / 2] >> (4 * ((k - 1) % 2))) & 0xF;
      if (p >= l->group_ || p <= prev) {
        return absl::InvalidArgumentError(absl::StrCat(module, ".weight_indices: row ", r, " value ", k,
                                                       " has position ", p, " (must ascend within a group of ",
                                                       l->group_, ")"));
      }
    }
    if (per_row % 2 == 1 && (idx[per_row / 2] >> 4) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(module, ".weight_indices: row ", r, " padding nibble set"));
    }
  }
  return l;
}

void SparseLinear::RowColumns(int64_t r, std::vector<int32_t>* cols) const {
  cols->clear();
  if (format_ == SparseFormat::kBitmask) {
    const uint8_t* mask = bitmask_.data() + r * mask_row_bytes();
    for (int64_t b = 0; b < mask_row_bytes(); ++b) {
      unsigned bits = mask[b];
      while (bits != 0) {
        cols->push_back(static_cast<int32_t>(b * 8 + __builtin_ctz(bits)));
        bits &= bits - 1;
      }
    }
    return;
  }
  const uint8_t* idx = indices_.data() + r * index_row_bytes();
  for (int64_t k = 0; k < values_per_row(); ++k) {
    cols->push_back(static_cast<int32_t>((k / keep_) * group_ + ((idx[k / 2] >> (4 * (k % 2))) & 0xF)));
  }
}

void SparseLinear::Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const {
  const float* bias = bias_.empty() ? nullptr : bias_.data();
  if (format_ == SparseFormat::kBitmask) {
    kernels::SparseBitmaskGemm(BitmaskView(), x, n_rows, bias, y, pool);
  } else {
    kernels::SparseNMGemm(NMView(), x, n_rows, bias, y, pool);
  }
}

void SparseLinear::ForwardPlain(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const {
  // Output rows in fixed chunks (independent of the pool size); each dot
  // product runs over the row's stored values in storage order.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(64, out_ / 8));
  pool.ParallelFor(out_, chunk, [&](int64_t r0, int64_t r1) {
    std::vector<int32_t> cols;
    cols.reserve(static_cast<size_t>(in_));
    for (int64_t r = r0; r < r1; ++r) {
      RowColumns(r, &cols);
      const float* v = values_.data() + (format_ == SparseFormat::kBitmask ? row_offsets_[r] : r * values_per_row());
      const int64_t n = static_cast<int64_t>(cols.size());
      const float b = bias_.empty() ? 0.0f : bias_[r];
      for (int64_t t = 0; t < n_rows; ++t) {
        const float* xt = x + t * in_;
        float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;
        int64_t k = 0;
        for (; k + 4 <= n; k += 4) {
          acc0 += v[k] * xt[cols[k]];
          acc1 += v[k + 1] * xt[cols[k + 1]];
          acc2 += v[k + 2] * xt[cols[k + 2]];
          acc3 += v[k + 3] * xt[cols[k + 3]];
        }
        for (; k < n; ++k) acc0 += v[k] * xt[cols[k]];
        y[t * out_ + r] = ((acc0 + acc1) + (acc2 + acc3)) + b;
      }
    }
  });
}

kernels::SparseNMWeights SparseLinear::NMView() const {
  kernels::SparseNMWeights w;
  w.rows = out_;
  w.cols = in_;
  w.keep = keep_;
  w.group = group_;
  w.values = values_.data();
  w.indices = indices_.data();
  return w;
}

kernels::SparseBitmaskWeights SparseLinear::BitmaskView() const {
  kernels::SparseBitmaskWeights w;
  w.rows = out_;
  w.cols = in_;
  w.bitmask = bitmask_.data();
  w.row_offsets = row_offsets_.data();
  w.values = values_.data();
  return w;
}

MatrixRM SparseLinear::DenseWeight() const {
  MatrixRM w = MatrixRM::Zero(out_, in_);
  std::vector<int32_t> cols;
  for (int64_t r = 0; r < out_; ++r) {
    RowColumns(r, &cols);
    const float* v = values_.data() + (format_ == SparseFormat::kBitmask ? row_offsets_[r] : r * values_per_row());
    for (size_t k = 0; k < cols.size(); ++k) w(r, cols[k]) = v[k];
  }
  return w;
}

std::string SparseLinear::kind() const {
  if (format_ == SparseFormat::kBitmask) return "sparse_bitmask";
  return absl::StrCat("sparse_", keep_, "of", group_);
}

int64_t SparseLinear::StorageBytes() const {
  return static_cast<int64_t>(values_.size() * sizeof(float) + bitmask_.size() + row_offsets_.size() * sizeof(int64_t) +
                              indices_.size() + bias_.size() * sizeof(float) +
                              (shape_.size() + nm_.size()) * sizeof(int64_t));
}

int64_t SparseLinear::NonZeroWeights() const {
  return static_cast<int64_t>(std::count_if(values_.begin(), values_.end(), [](float v) { return v != 0.0f; }));
}

std::vector<std::pair<std::string, TensorView>> SparseLinear::StoredTensors() const {
  std::vector<std::pair<std::string, TensorView>> t;
  t.emplace_back("weight_shape", VectorView(shape_, DType::kI64, {2}));
  if (format_ == SparseFormat::kBitmask) {
    t.emplace_back("weight_bitmask", VectorView(bitmask_, DType::kU8, {out_, mask_row_bytes()}));
    t.emplace_back("weight_row_offsets", VectorView(row_offsets_, DType::kI64, {out_}));
    t.emplace_back("weight_values", VectorView(values_, DType::kF32, {static_cast<int64_t>(values_.size())}));
  } else {
    t.emplace_back("weight_nm", VectorView(nm_, DType::kI64, {2}));
    t.emplace_back("weight_values", VectorView(values_, DType::kF32, {out_, values_per_row()}));
    t.emplace_back("weight_indices", VectorView(indices_, DType::kU8, {out_, index_row_bytes()}));
  }
  if (!bias_.empty()) t.emplace_back("bias", VectorView(bias_, DType::kF32, {out_}));
  return t;
}

}  // namespace squeeze
