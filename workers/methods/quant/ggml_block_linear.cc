#include "workers/methods/quant/ggml_block_linear.h"

#include <cstring>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/methods/stored_tensors.h"

namespace squeeze {

using kernels::GgmlBlockKind;

absl::StatusOr<std::unique_ptr<GgmlBlockLinear>> GgmlBlockLinear::FromBlocks(GgmlBlockKind kind, int64_t out,
                                                                             int64_t in, const uint8_t* bytes,
                                                                             int64_t num_bytes,
                                                                             std::vector<float> bias) {
  if (in <= 0 || in % kernels::kGgmlBlockCols != 0) {
    return absl::InvalidArgumentError(absl::StrCat("in_features ", in, ": must be a positive multiple of 32"));
  }
  if (out <= 0) return absl::InvalidArgumentError(absl::StrCat("out_features ", out, ": must be positive"));
  std::unique_ptr<GgmlBlockLinear> layer(new GgmlBlockLinear(kind, out, in));
  const int64_t want = out * layer->View().RowBytes();
  if (num_bytes != want) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight_blocks: ", num_bytes, " bytes, expected ", want, " for [", out, ", ", in, "]"));
  }
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != out) {
    return absl::InvalidArgumentError(absl::StrCat("bias: ", bias.size(), " values, expected ", out));
  }
  auto copy = std::make_shared<std::vector<uint8_t>>(bytes, bytes + num_bytes);
  layer->blocks_ = copy->data();
  layer->num_bytes_ = num_bytes;
  layer->owner_ = std::move(copy);
  layer->bias_ = std::move(bias);
  layer->shape_[0] = out;
  layer->shape_[1] = in;
  return layer;
}

absl::StatusOr<std::unique_ptr<GgmlBlockLinear>> GgmlBlockLinear::FromStored(
    const std::string& kind, const std::map<std::string, TensorView>& tensors) {
  GgmlBlockKind k;
  if (kind == "gguf_q4_0") {
    k = GgmlBlockKind::kQ4_0;
  } else if (kind == "gguf_q8_0") {
    k = GgmlBlockKind::kQ8_0;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(kind, ": not a ggml block kind (gguf_q4_0, gguf_q8_0)"));
  }
  std::vector<int64_t> shape;
  if (absl::Status s = CopyStoredTensor(kind, tensors, "weight_shape", DType::kI64, {2}, &shape); !s.ok()) return s;
  const int64_t out = shape[0], in = shape[1];
  if (out <= 0 || in <= 0 || in % kernels::kGgmlBlockCols != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, ".weight_shape: [", out, ", ", in, "] (in must be a positive multiple of 32)"));
  }
  const int64_t row_bytes = in / kernels::kGgmlBlockCols * kernels::GgmlBlockBytes(k);
  std::vector<float> bias;
  if (tensors.count("bias")) {
    if (absl::Status s = CopyStoredTensor(kind, tensors, "bias", DType::kF32, {out}, &bias); !s.ok()) return s;
  }
  auto it = tensors.find("weight_blocks");
  if (it != tensors.end() && it->second.owner != nullptr) {
    // Shared, not copied: the same checks CopyStoredTensor makes.
    const TensorView& t = it->second;
    const std::vector<int64_t> want = {out, row_bytes};
    if (t.dtype != DType::kU8 || t.shape != want || t.nbytes != static_cast<size_t>(out * row_bytes) ||
        t.data == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(kind, ".weight_blocks: expected U8 ", ShapeString(want),
                                                     ", got ", DTypeName(t.dtype), " ", ShapeString(t.shape), " (",
                                                     t.nbytes, " bytes)"));
    }
    if (!bias.empty() && static_cast<int64_t>(bias.size()) != out) {
      return absl::InvalidArgumentError(absl::StrCat(kind, ": bias: ", bias.size(), " values, expected ", out));
    }
    std::unique_ptr<GgmlBlockLinear> layer(new GgmlBlockLinear(k, out, in));
    layer->blocks_ = static_cast<const uint8_t*>(t.data);
    layer->num_bytes_ = out * row_bytes;
    layer->owner_ = t.owner;
    layer->bias_ = std::move(bias);
    layer->shape_[0] = out;
    layer->shape_[1] = in;
    return layer;
  }
  std::vector<uint8_t> blocks;
  if (absl::Status s = CopyStoredTensor(kind, tensors, "weight_blocks", DType::kU8, {out, row_bytes}, &blocks);
      !s.ok()) {
    return s;
  }
  auto layer = FromBlocks(k, out, in, blocks.data(), static_cast<int64_t>(blocks.size()), std::move(bias));
  if (!layer.ok()) return absl::InvalidArgumentError(absl::StrCat(kind, ": ", layer.status().message()));
  return layer;
}

void GgmlBlockLinear::Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const {
  kernels::GgmlBlockGemm(View(), x, n_rows, bias_.empty() ? nullptr : bias_.data(), y, pool);
}

MatrixRM GgmlBlockLinear::DenseWeight() const {
  MatrixRM w(out_, in_);
  kernels::GgmlBlockDequantizeRows(View(), 0, out_, w.data());
  return w;
}

std::string GgmlBlockLinear::kind() const { return kind_ == GgmlBlockKind::kQ4_0 ? "gguf_q4_0" : "gguf_q8_0"; }

int64_t GgmlBlockLinear::StorageBytes() const {
  return num_bytes_ + static_cast<int64_t>(bias_.size() * sizeof(float));
}

std::vector<std::pair<std::string, TensorView>> GgmlBlockLinear::StoredTensors() const {
  std::vector<std::pair<std::string, TensorView>> t;
  TensorView blocks;
  blocks.dtype = DType::kU8;
  blocks.shape = {out_, View().RowBytes()};
  blocks.data = blocks_;
  blocks.nbytes = static_cast<size_t>(num_bytes_);
  blocks.owner = owner_;
  t.emplace_back("weight_blocks", std::move(blocks));
  TensorView shape;
  shape.dtype = DType::kI64;
  shape.shape = {2};
  shape.data = shape_;
  shape.nbytes = sizeof(shape_);
  t.emplace_back("weight_shape", shape);
  if (!bias_.empty()) t.emplace_back("bias", VectorView(bias_, DType::kF32, {out_}));
  return t;
}

}  // namespace squeeze
