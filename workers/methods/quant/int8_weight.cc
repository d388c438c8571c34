#include "workers/methods/quant/int8_weight.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/methods/quant/int8_matmul.h"

namespace squeeze {
namespace {

absl::Status CheckShape(int64_t out, int64_t in) {
  if (out <= 0 || in <= 0) return absl::InvalidArgumentError(absl::StrCat("int8 weight shape [", out, ", ", in, "] is empty"));
  if (in > kInt8MaxInFeatures) {
    return absl::InvalidArgumentError(absl::StrCat("in_features ", in, " exceeds ", kInt8MaxInFeatures,
                                                   " (int32 accumulation could overflow)"));
  }
  return absl::OkStatus();
}

absl::Status CheckScales(const std::vector<float>& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!(s[i] > 0.0f) || !std::isfinite(s[i])) {
      return absl::InvalidArgumentError(absl::StrCat("weight_scale[", i, "] = ", s[i], " is not a positive finite number"));
    }
  }
  return absl::OkStatus();
}

const TensorView* Find(const std::map<std::string, TensorView>& t, const std::string& name) {
  auto it = t.find(name);
  return it == t.end() ? nullptr : &it->second;
}

}  // namespace

absl::StatusOr<Int8Weight> Int8Weight::FromCodes(int64_t out, int64_t in, const std::vector<int32_t>& codes,
                                                 std::vector<float> scales, std::vector<float> bias) {
  if (absl::Status s = CheckShape(out, in); !s.ok()) return s;
  if (static_cast<int64_t>(codes.size()) != out * in) {
    return absl::InvalidArgumentError(absl::StrCat("got ", codes.size(), " codes, expected ", out * in));
  }
  if (static_cast<int64_t>(scales.size()) != out) {
    return absl::InvalidArgumentError(absl::StrCat("got ", scales.size(), " scales, expected ", out));
  }
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != out) {
    return absl::InvalidArgumentError(absl::StrCat("bias has ", bias.size(), " values, expected ", out));
  }
  if (absl::Status s = CheckScales(scales); !s.ok()) return s;
  Int8Weight w;
  w.out = out;
  w.in = in;
  w.q.resize(codes.size());
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] < -128 || codes[i] > 127) {
      return absl::InvalidArgumentError(absl::StrCat("code ", codes[i], " at (", i / in, ", ", i % in,
                                                     ") is outside [-128, 127]"));
    }
    w.q[i] = static_cast<int8_t>(codes[i]);
  }
  w.scale = std::move(scales);
  w.bias = std::move(bias);
  return w;
}

absl::StatusOr<Int8Weight> Int8Weight::Quantize(const MatrixRM& m, std::vector<float> bias) {
  const int64_t out = m.rows(), in = m.cols();
  std::vector<int32_t> codes(static_cast<size_t>(out * in));
  std::vector<float> scales(static_cast<size_t>(out));
  std::vector<int8_t> row(static_cast<size_t>(in));
  for (int64_t r = 0; r < out; ++r) {
    scales[r] = QuantizeRowInt8(m.data() + r * in, in, row.data());
    for (int64_t c = 0; c < in; ++c) codes[r * in + c] = row[c];
  }
  return FromCodes(out, in, codes, std::move(scales), std::move(bias));
}

absl::StatusOr<Int8Weight> Int8Weight::FromStored(const std::string& module,
                                                  const std::map<std::string, TensorView>& tensors) {
  const TensorView* w = Find(tensors, "weight");
  const TensorView* s = Find(tensors, "weight_scale");
  if (w == nullptr || s == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(module, ": an int8 layer needs weight and weight_scale"));
  }
  if (w->dtype != DType::kI8 || w->shape.size() != 2 || w->nbytes != static_cast<size_t>(w->numel())) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".weight: ", DTypeName(w->dtype), " ",
                                                   ShapeString(w->shape), ", expected I8 [out, in]"));
  }
  const int64_t out = w->shape[0], in = w->shape[1];
  if (absl::Status st = CheckShape(out, in); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".weight: ", st.message()));
  }
  if (s->dtype != DType::kF32 || s->shape != std::vector<int64_t>{out, 1} ||
      s->nbytes != static_cast<size_t>(out) * sizeof(float)) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".weight_scale: ", DTypeName(s->dtype), " ",
                                                   ShapeString(s->shape), ", expected F32 [", out, ", 1]"));
  }
  Int8Weight r;
  r.out = out;
  r.in = in;
  r.q.resize(static_cast<size_t>(out * in));
  std::memcpy(r.q.data(), w->data, r.q.size());
  r.scale.resize(static_cast<size_t>(out));
  std::memcpy(r.scale.data(), s->data, r.scale.size() * sizeof(float));
  if (absl::Status st = CheckScales(r.scale); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".", st.message()));
  }
  if (const TensorView* b = Find(tensors, "bias")) {
    if (b->dtype != DType::kF32 || b->shape != std::vector<int64_t>{out} ||
        b->nbytes != static_cast<size_t>(out) * sizeof(float)) {
      return absl::InvalidArgumentError(absl::StrCat(module, ".bias: ", DTypeName(b->dtype), " ",
                                                     ShapeString(b->shape), ", expected F32 [", out, "]"));
    }
    r.bias.resize(static_cast<size_t>(out));
    std::memcpy(r.bias.data(), b->data, r.bias.size() * sizeof(float));
  }
  return r;
}

MatrixRM Int8Weight::Dequantize() const {
  MatrixRM m(out, in);
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) m(r, c) = static_cast<float>(q[r * in + c]) * scale[r];
  }
  return m;
}

int64_t Int8Weight::StorageBytes() const {
  return static_cast<int64_t>(q.size() + scale.size() * sizeof(float) + bias.size() * sizeof(float));
}

void Int8Weight::AppendStored(std::vector<std::pair<std::string, TensorView>>* t) const {
  TensorView w;
  w.dtype = DType::kI8;
  w.shape = {out, in};
  w.data = q.data();
  w.nbytes = q.size();
  t->emplace_back("weight", std::move(w));
  TensorView s;
  s.dtype = DType::kF32;
  s.shape = {out, 1};
  s.data = scale.data();
  s.nbytes = scale.size() * sizeof(float);
  t->emplace_back("weight_scale", std::move(s));
  if (!bias.empty()) {
    TensorView b;
    b.dtype = DType::kF32;
    b.shape = {out};
    b.data = bias.data();
    b.nbytes = bias.size() * sizeof(float);
    t->emplace_back("bias", std::move(b));
  }
}

}  // namespace squeeze
