#include "workers/engine/formats/int_weight.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze {

int64_t IntWeight::EffectiveGroupSize() const {
  if (strategy != IntStrategy::kGroup) return in;
  return std::min<int64_t>(group_size, in);
}

int64_t IntWeight::groups() const {
  const int64_t g = EffectiveGroupSize();
  return g <= 0 ? 0 : (in + g - 1) / g;
}

MatrixRM IntWeight::Dequantize() const {
  MatrixRM w(out, in);
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) w(r, c) = Dequant(r, c);
  }
  return w;
}

std::string IntWeight::Kind() const {
  std::string s = absl::StrCat("packed_int_w", bits, symmetric ? "_sym" : "_asym");
  switch (strategy) {
    case IntStrategy::kTensor: return s + "_tensor";
    case IntStrategy::kChannel: return s + "_channel";
    case IntStrategy::kGroup: return absl::StrCat(s, "_g", group_size);
  }
  return s;
}

absl::Status IntWeight::Validate(const std::string& what) const {
  if (bits < 2 || bits > 8) return absl::InvalidArgumentError(absl::StrCat(what, ": num_bits ", bits, " is outside 2..8"));
  if (out <= 0 || in <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": bad weight shape [", out, ", ", in, "]"));
  }
  if (strategy == IntStrategy::kGroup && group_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": group_size ", group_size, " must be > 0"));
  }
  const int64_t ng = groups();
  if (static_cast<int64_t>(q.size()) != out * in) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", q.size(), " codes, expected ", out * in));
  }
  if (static_cast<int64_t>(scales.size()) != out * ng) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", scales.size(), " scales, expected ", out * ng));
  }
  if (!symmetric && static_cast<int64_t>(zeros.size()) != out * ng) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", zeros.size(), " zero points, expected ", out * ng));
  }
  if (symmetric && !zeros.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": a symmetric weight has no zero points"));
  }
  if (!g_idx.empty() && static_cast<int64_t>(g_idx.size()) != in) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": g_idx has ", g_idx.size(), " entries, expected ", in));
  }
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != out) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": bias has ", bias.size(), " entries, expected ", out));
  }
  for (size_t i = 0; i < q.size(); ++i) {
    if (q[i] < qmin() || q[i] > qmax()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": code ", q[i], " at (", i / in, ", ", i % in,
                                                     ") is outside [", qmin(), ", ", qmax(), "]"));
    }
  }
  for (size_t i = 0; i < zeros.size(); ++i) {
    if (zeros[i] < qmin() || zeros[i] > qmax()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": zero point ", zeros[i], " (signed) is outside [",
                                                     qmin(), ", ", qmax(), "]"));
    }
  }
  for (float s : scales) {
    if (!std::isfinite(s)) return absl::InvalidArgumentError(absl::StrCat(what, ": non-finite scale"));
  }
  for (int64_t c = 0; c < static_cast<int64_t>(g_idx.size()); ++c) {
    if (g_idx[c] < 0 || g_idx[c] >= ng) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": g_idx[", c, "] = ", g_idx[c], " is outside [0, ", ng, ")"));
    }
  }
  return absl::OkStatus();
}

void PackBits(const uint32_t* values, int64_t n, int bits, uint32_t* words) {
  const int per = 32 / bits;
  const int64_t nw = (n + per - 1) / per;
  std::fill(words, words + nw, 0u);
  const uint32_t mask = bits == 32 ? 0xFFFFFFFFu : ((1u << bits) - 1u);
  for (int64_t i = 0; i < n; ++i) words[i / per] |= (values[i] & mask) << ((i % per) * bits);
}

void UnpackBits(const uint32_t* words, int64_t n, int bits, uint32_t* values) {
  const int per = 32 / bits;
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < n; ++i) values[i] = (words[i / per] >> ((i % per) * bits)) & mask;
}

namespace {

template <typename T>
TensorView OwnedOf(std::vector<T> values, DType dtype, std::vector<int64_t> shape) {
  auto buffer = std::make_shared<std::vector<T>>(std::move(values));
  TensorView v;
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.data = buffer->data();
  v.nbytes = buffer->size() * sizeof(T);
  v.owner = std::move(buffer);
  return v;
}

std::map<std::string, TensorView> TensorsOf(const LinearLayer& layer) {
  std::map<std::string, TensorView> t;
  for (auto& [name, view] : layer.StoredTensors()) t[name] = view;
  return t;
}

}  // namespace

TensorView OwnedI32(std::vector<int32_t> values, std::vector<int64_t> shape) {
  return OwnedOf(std::move(values), DType::kI32, std::move(shape));
}
TensorView OwnedI64(std::vector<int64_t> values, std::vector<int64_t> shape) {
  return OwnedOf(std::move(values), DType::kI64, std::move(shape));
}
TensorView OwnedBytes(DType dtype, std::string bytes, std::vector<int64_t> shape) {
  auto buffer = std::make_shared<std::string>(std::move(bytes));
  TensorView v;
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.data = buffer->data();
  v.nbytes = buffer->size();
  v.owner = std::move(buffer);
  return v;
}

absl::StatusOr<std::vector<int64_t>> ReadIntTensor(const TensorView& v, const std::string& what,
                                                   const std::vector<int64_t>& want_shape) {
  if (!want_shape.empty() && v.shape != want_shape) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": shape ", ShapeString(v.shape), ", expected ",
                                                   ShapeString(want_shape)));
  }
  const int64_t n = v.numel();
  std::vector<int64_t> out(static_cast<size_t>(n));
  const auto* p = static_cast<const uint8_t*>(v.data);
  switch (v.dtype) {
    case DType::kI8:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int8_t>(p[i]);
      break;
    case DType::kU8:
      for (int64_t i = 0; i < n; ++i) out[i] = p[i];
      break;
    case DType::kI16:
      for (int64_t i = 0; i < n; ++i) {
        int16_t x;
        std::memcpy(&x, p + 2 * i, 2);
        out[i] = x;
      }
      break;
    case DType::kI32:
      for (int64_t i = 0; i < n; ++i) {
        int32_t x;
        std::memcpy(&x, p + 4 * i, 4);
        out[i] = x;
      }
      break;
    case DType::kI64:
      for (int64_t i = 0; i < n; ++i) std::memcpy(&out[i], p + 8 * i, 8);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": dtype ", DTypeName(v.dtype), ", expected an integer dtype"));
  }
  return out;
}

absl::StatusOr<std::vector<float>> ReadFloatTensor(const TensorView& v, const std::string& what,
                                                   const std::vector<int64_t>& want_shape) {
  if (v.shape != want_shape) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": shape ", ShapeString(v.shape), ", expected ",
                                                   ShapeString(want_shape)));
  }
  return ToFloat32(v, what);
}

absl::StatusOr<IntWeight> IntWeightFromStoredTensors(const std::string& module,
                                                      const std::map<std::string, TensorView>& t) {
  auto get = [&](const char* name) -> absl::StatusOr<const TensorView*> {
    auto it = t.find(name);
    if (it == t.end()) return absl::InvalidArgumentError(absl::StrCat(module, ": no ", name, " tensor"));
    return &it->second;
  };
  IntWeight w;
  SQ_ASSIGN_OR_RETURN(const TensorView* qp_view, get("weight_qparams"));
  SQ_ASSIGN_OR_RETURN(std::vector<int64_t> qp, ReadIntTensor(*qp_view, module + ".weight_qparams", {4}));
  SQ_ASSIGN_OR_RETURN(const TensorView* shape_view, get("weight_shape"));
  SQ_ASSIGN_OR_RETURN(std::vector<int64_t> shape, ReadIntTensor(*shape_view, module + ".weight_shape", {2}));
  w.bits = static_cast<int>(qp[0]);
  w.symmetric = qp[1] != 0;
  if (qp[2] < 0 || qp[2] > 2) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".weight_qparams: strategy ", qp[2], " is not 0, 1 or 2"));
  }
  w.strategy = static_cast<IntStrategy>(qp[2]);
  w.group_size = static_cast<int>(qp[3]);
  w.out = shape[0];
  w.in = shape[1];
  if (w.bits < 2 || w.bits > 8 || w.out <= 0 || w.in <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(module, ": bad weight_qparams / weight_shape"));
  }
  const int per = 32 / w.bits;
  const int64_t wpr = (w.in + per - 1) / per;
  const int64_t ng = w.groups();
  SQ_ASSIGN_OR_RETURN(const TensorView* packed_view, get("weight_packed"));
  SQ_ASSIGN_OR_RETURN(std::vector<int64_t> packed,
                      ReadIntTensor(*packed_view, module + ".weight_packed", {w.out, wpr}));
  w.q.resize(static_cast<size_t>(w.out * w.in));
  std::vector<uint32_t> words(static_cast<size_t>(wpr)), vals(static_cast<size_t>(w.in));
  for (int64_t r = 0; r < w.out; ++r) {
    for (int64_t k = 0; k < wpr; ++k) words[k] = static_cast<uint32_t>(packed[r * wpr + k]);
    UnpackBits(words.data(), w.in, w.bits, vals.data());
    for (int64_t c = 0; c < w.in; ++c) w.q[r * w.in + c] = static_cast<int32_t>(vals[c]) - w.offset();
  }
  SQ_ASSIGN_OR_RETURN(const TensorView* scale_view, get("weight_scale"));
  SQ_ASSIGN_OR_RETURN(w.scales, ReadFloatTensor(*scale_view, module + ".weight_scale", {w.out, ng}));
  if (!w.symmetric) {
    SQ_ASSIGN_OR_RETURN(const TensorView* zp_view, get("weight_zero_point"));
    SQ_ASSIGN_OR_RETURN(std::vector<int64_t> z, ReadIntTensor(*zp_view, module + ".weight_zero_point", {w.out, ng}));
    w.zeros.assign(z.begin(), z.end());
  }
  if (auto it = t.find("weight_g_idx"); it != t.end()) {
    SQ_ASSIGN_OR_RETURN(std::vector<int64_t> g, ReadIntTensor(it->second, module + ".weight_g_idx", {w.in}));
    w.g_idx.assign(g.begin(), g.end());
  }
  if (auto it = t.find("bias"); it != t.end()) {
    SQ_ASSIGN_OR_RETURN(w.bias, ReadFloatTensor(it->second, module + ".bias", {w.out}));
  }
  SQ_RETURN_IF_ERROR(w.Validate(module));
  return w;
}

absl::StatusOr<std::optional<IntWeight>> IntWeightFromLayer(const LinearLayer& layer, const std::string& module) {
  if (!absl::StartsWith(layer.kind(), "packed_int_")) return std::optional<IntWeight>();
  SQ_ASSIGN_OR_RETURN(IntWeight w, IntWeightFromStoredTensors(module, TensorsOf(layer)));
  if (w.Kind() != layer.kind()) {
    return absl::InternalError(absl::StrCat(module, ": layer kind ", layer.kind(), " but its tensors describe ", w.Kind()));
  }
  return std::optional<IntWeight>(std::move(w));
}

absl::Status AddIntWeightToCheckpoint(const std::string& module, const IntWeight& w, CheckpointTensors* ck) {
  SQ_RETURN_IF_ERROR(w.Validate(module));
  const std::string prefix = module + ".";
  for (auto it = ck->tensors.lower_bound(prefix); it != ck->tensors.end() && absl::StartsWith(it->first, prefix);) {
    if (it->first.find('.', prefix.size()) == std::string::npos) {
      it = ck->tensors.erase(it);
    } else {
      ++it;
    }
  }
  const int per = 32 / w.bits;
  const int64_t wpr = (w.in + per - 1) / per;
  std::vector<int32_t> packed(static_cast<size_t>(w.out * wpr));
  std::vector<uint32_t> vals(static_cast<size_t>(w.in)), words(static_cast<size_t>(wpr));
  for (int64_t r = 0; r < w.out; ++r) {
    for (int64_t c = 0; c < w.in; ++c) vals[c] = static_cast<uint32_t>(w.q[r * w.in + c] + w.offset());
    PackBits(vals.data(), w.in, w.bits, words.data());
    for (int64_t k = 0; k < wpr; ++k) packed[r * wpr + k] = static_cast<int32_t>(words[k]);
  }
  const std::string src = "(converted)";
  const int64_t ng = w.groups();
  ck->tensors[prefix + "weight_packed"] = {OwnedI32(std::move(packed), {w.out, wpr}), src};
  ck->tensors[prefix + "weight_scale"] = {OwnedF32(w.scales, {w.out, ng}), src};
  if (!w.symmetric) ck->tensors[prefix + "weight_zero_point"] = {OwnedI32(w.zeros, {w.out, ng}), src};
  ck->tensors[prefix + "weight_shape"] = {OwnedI64({w.out, w.in}, {2}), src};
  ck->tensors[prefix + "weight_qparams"] = {
      OwnedI32({w.bits, w.symmetric ? 1 : 0, static_cast<int32_t>(w.strategy), w.group_size}, {4}), src};
  if (!w.g_idx.empty()) ck->tensors[prefix + "weight_g_idx"] = {OwnedI32(w.g_idx, {w.in}), src};
  if (!w.bias.empty()) ck->tensors[prefix + "bias"] = {OwnedF32(w.bias, {w.out}), src};
  ck->linear_kinds[module] = w.Kind();
  return absl::OkStatus();
}

}  // namespace squeeze
