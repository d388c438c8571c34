#include "workers/methods/quant/packed_int_linear.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/kernels/cpu/cpu_features.h"
#include "workers/kernels/cpu/packed_int_gemm.h"
#include "workers/methods/stored_tensors.h"

namespace squeeze {
namespace {

// Rows of W dequantized per tile in Forward. Fixed (not derived from the pool
// size) so that results do not depend on the number of threads.
constexpr int64_t kRowsPerTile = 32;

}  // namespace

absl::StatusOr<PackedActivations> ParsePackedActivations(absl::string_view name) {
  if (name == "fp32") return PackedActivations::kFp32;
  if (name == "int8") return PackedActivations::kInt8;
  return absl::InvalidArgumentError(
      absl::StrCat("packed activations \"", name, "\" is not one of fp32, int8"));
}

const char* PackedActivationsName(PackedActivations a) {
  return a == PackedActivations::kInt8 ? "int8" : "fp32";
}

int64_t SetPackedActivations(Model& model, PackedActivations a) {
  int64_t n = 0;
  for (LinearSlot& s : model.AllLinears()) {
    if (auto* packed = dynamic_cast<PackedIntLinear*>(s.slot->get())) {
      packed->set_activations(a);
      if (packed->activations() == a) ++n;
    }
  }
  return n;
}

PackedActivations PackedIntLinear::activations() const {
  if (activations_ == PackedActivations::kInt8) {
    // Widest group: a g_idx group may collect any columns, so bound it by in.
    const int64_t widest = g_idx_.empty() ? group_size_ : in_;
    if (widest <= kPackedInt8MaxGroupColumns) return PackedActivations::kInt8;
  }
  return PackedActivations::kFp32;
}

void PackRow(const int32_t* codes, int64_t n, int num_bits, uint32_t* words) {
  const int per_word = ValuesPerWord(num_bits);
  const int32_t qmin = -(1 << (num_bits - 1));
  const int64_t n_words = (n + per_word - 1) / per_word;
  std::fill(words, words + n_words, 0u);
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t u = static_cast<uint32_t>(codes[j] - qmin);
    words[j / per_word] |= u << ((j % per_word) * num_bits);
  }
}

void UnpackRow(const uint32_t* words, int64_t n, int num_bits, int32_t* codes) {
  const int per_word = ValuesPerWord(num_bits);
  const int32_t qmin = -(1 << (num_bits - 1));
  const uint32_t mask = (1u << num_bits) - 1u;
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t u = (words[j / per_word] >> ((j % per_word) * num_bits)) & mask;
    codes[j] = static_cast<int32_t>(u) + qmin;
  }
}

PackedIntLinear::PackedIntLinear(const WeightQuantArgs& args, int64_t out, int64_t in)
    : args_(args), out_(out), in_(in) {
  const int per_word = ValuesPerWord(args.num_bits);
  words_per_row_ = (in + per_word - 1) / per_word;
  groups_per_row_ = args.GroupsPerRow(in);
  group_size_ = args.EffectiveGroupSize(in);
  shape_[0] = out;
  shape_[1] = in;
  qparams_[0] = args.num_bits;
  qparams_[1] = args.symmetric ? 1 : 0;
  qparams_[2] = static_cast<int32_t>(args.strategy);
  qparams_[3] = args.strategy == QuantStrategy::kGroup ? args.group_size : 0;
}

absl::StatusOr<std::unique_ptr<PackedIntLinear>> PackedIntLinear::FromCodes(
    const WeightQuantArgs& args, int64_t out, int64_t in, const std::vector<int32_t>& q,
    std::vector<float> scales, std::vector<int32_t> zero_points, std::vector<float> bias,
    std::vector<int32_t> g_idx) {
  if (absl::Status s = args.Validate(); !s.ok()) return s;
  if (out <= 0 || in <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("packed linear shape [", out, ", ", in, "] is empty"));
  }
  std::unique_ptr<PackedIntLinear> layer(new PackedIntLinear(args, out, in));
  const int64_t n_groups = out * layer->groups_per_row_;
  if (static_cast<int64_t>(q.size()) != out * in) {
    return absl::InvalidArgumentError(absl::StrCat("got ", q.size(), " codes, expected ", out * in));
  }
  if (static_cast<int64_t>(scales.size()) != n_groups) {
    return absl::InvalidArgumentError(absl::StrCat("got ", scales.size(), " scales, expected ", n_groups));
  }
  if (args.symmetric ? !zero_points.empty() : static_cast<int64_t>(zero_points.size()) != n_groups) {
    return absl::InvalidArgumentError(absl::StrCat("got ", zero_points.size(), " zero points, expected ",
                                                   args.symmetric ? 0 : n_groups));
  }
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != out) {
    return absl::InvalidArgumentError(absl::StrCat("bias has ", bias.size(), " values, expected ", out));
  }
  if (!g_idx.empty()) {
    if (static_cast<int64_t>(g_idx.size()) != in) {
      return absl::InvalidArgumentError(absl::StrCat("g_idx has ", g_idx.size(), " values, expected ", in));
    }
    for (int64_t c = 0; c < in; ++c) {
      if (g_idx[c] < 0 || g_idx[c] >= layer->groups_per_row_) {
        return absl::InvalidArgumentError(absl::StrCat("g_idx[", c, "] = ", g_idx[c], " is outside [0, ",
                                                       layer->groups_per_row_, ")"));
      }
    }
  }
  const int qmin = args.qmin(), qmax = args.qmax();
  for (int64_t i = 0; i < out * in; ++i) {
    if (q[i] < qmin || q[i] > qmax) {
      return absl::InvalidArgumentError(absl::StrCat("code ", q[i], " at (", i / in, ", ", i % in,
                                                     ") is outside [", qmin, ", ", qmax, "]"));
    }
  }
  for (int32_t z : zero_points) {
    if (z < qmin || z > qmax) {
      return absl::InvalidArgumentError(absl::StrCat("zero point ", z, " is outside [", qmin, ", ", qmax, "]"));
    }
  }
  layer->packed_.assign(static_cast<size_t>(out * layer->words_per_row_), 0u);
  for (int64_t r = 0; r < out; ++r) {
    PackRow(q.data() + r * in, in, args.num_bits, layer->packed_.data() + r * layer->words_per_row_);
  }
  layer->scales_.assign(scales.begin(), scales.end());
  layer->zero_points_ = std::move(zero_points);
  layer->bias_ = std::move(bias);
  layer->g_idx_ = std::move(g_idx);
  return layer;
}

absl::StatusOr<std::unique_ptr<PackedIntLinear>> PackedIntLinear::FromStored(
    const std::string& module, const std::map<std::string, TensorView>& tensors) {
  std::vector<int32_t> qparams;
  std::vector<int64_t> shape;
  if (absl::Status s = CopyStoredTensor(module, tensors, "weight_qparams", DType::kI32, {4}, &qparams); !s.ok()) return s;
  if (absl::Status s = CopyStoredTensor(module, tensors, "weight_shape", DType::kI64, {2}, &shape); !s.ok()) return s;
  WeightQuantArgs args;
  args.num_bits = qparams[0];
  args.symmetric = qparams[1] != 0;
  if (qparams[2] < 0 || qparams[2] > 2) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".weight_qparams: strategy ", qparams[2], " is not 0, 1 or 2"));
  }
  args.strategy = static_cast<QuantStrategy>(qparams[2]);
  args.group_size = qparams[3];
  if (absl::Status s = args.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".weight_qparams: ", s.message()));
  }
  const int64_t out = shape[0], in = shape[1];
  if (out <= 0 || in <= 0 || out > (1LL << 32) || in > (1LL << 32)) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".weight_shape: bad shape [", out, ", ", in, "]"));
  }
  std::unique_ptr<PackedIntLinear> layer(new PackedIntLinear(args, out, in));
  const std::vector<int64_t> gshape = {out, layer->groups_per_row_};
  if (absl::Status s = CopyStoredTensor(module, tensors, "weight_packed", DType::kI32,
                                  {out, layer->words_per_row_}, &layer->packed_); !s.ok()) return s;
  if (absl::Status s = CopyStoredTensor(module, tensors, "weight_scale", DType::kF32, gshape, &layer->scales_); !s.ok()) return s;
  if (!args.symmetric) {
    if (absl::Status s = CopyStoredTensor(module, tensors, "weight_zero_point", DType::kI32, gshape,
                                    &layer->zero_points_); !s.ok()) return s;
    for (int32_t z : layer->zero_points_) {
      if (z < args.qmin() || z > args.qmax()) {
        return absl::InvalidArgumentError(absl::StrCat(module, ".weight_zero_point: ", z, " is outside [",
                                                       args.qmin(), ", ", args.qmax(), "]"));
      }
    }
  } else if (tensors.count("weight_zero_point")) {
    return absl::InvalidArgumentError(absl::StrCat(module, ": weight_zero_point given for a symmetric layer"));
  }
  if (tensors.count("bias")) {
    if (absl::Status s = CopyStoredTensor(module, tensors, "bias", DType::kF32, {out}, &layer->bias_); !s.ok()) return s;
  }
  if (tensors.count("weight_g_idx")) {
    if (absl::Status s = CopyStoredTensor(module, tensors, "weight_g_idx", DType::kI32, {in}, &layer->g_idx_); !s.ok()) return s;
    for (int64_t c = 0; c < in; ++c) {
      if (layer->g_idx_[c] < 0 || layer->g_idx_[c] >= layer->groups_per_row_) {
        return absl::InvalidArgumentError(absl::StrCat(module, ".weight_g_idx[", c, "]: ", layer->g_idx_[c],
                                                       " is outside [0, ", layer->groups_per_row_, ")"));
      }
    }
  }
  // Codes beyond 2^bits - 1 cannot occur by construction of the mask; unused
  // bits (padding, the top bits of a word) must be zero so that files are
  // canonical: re-saving gives the same bytes.
  const int per_word = ValuesPerWord(args.num_bits);
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t w = 0; w < layer->words_per_row_; ++w) {
      const int64_t used = std::min<int64_t>(per_word, in - w * per_word);
      const uint64_t used_mask = used * args.num_bits >= 32 ? 0xffffffffull : ((1ull << (used * args.num_bits)) - 1);
      if ((layer->packed_[r * layer->words_per_row_ + w] & ~used_mask & 0xffffffffull) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(module, ".weight_packed: row ", r, " word ", w,
                                                       " has bits set outside its values"));
      }
    }
  }
  return layer;
}

int32_t PackedIntLinear::Code(int64_t r, int64_t c) const {
  const int per_word = ValuesPerWord(args_.num_bits);
  const uint32_t mask = (1u << args_.num_bits) - 1u;
  const uint32_t word = packed_[r * words_per_row_ + c / per_word];
  return static_cast<int32_t>((word >> ((c % per_word) * args_.num_bits)) & mask) + args_.qmin();
}

void PackedIntLinear::DequantizeRows(int64_t r0, int64_t r1, float* dst) const {
  std::vector<int32_t> codes(static_cast<size_t>(in_));
  for (int64_t r = r0; r < r1; ++r) {
    UnpackRow(packed_.data() + r * words_per_row_, in_, args_.num_bits, codes.data());
    float* row = dst + (r - r0) * in_;
    if (!g_idx_.empty()) {
      for (int64_t c = 0; c < in_; ++c) {
        const int64_t g = g_idx_[c];
        row[c] = static_cast<float>(codes[c] - ZeroPoint(r, g)) * Scale(r, g);
      }
      continue;
    }
    for (int64_t g = 0; g < groups_per_row_; ++g) {
      const float s = Scale(r, g);
      const int32_t z = ZeroPoint(r, g);
      const int64_t c1 = std::min(in_, (g + 1) * group_size_);
      for (int64_t c = g * group_size_; c < c1; ++c) row[c] = static_cast<float>(codes[c] - z) * s;
    }
  }
}

void PackedIntLinear::Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const {
  // The dispatching SIMD kernel (workers/kernels/cpu/packed_int_gemm.h) for
  // the layouts it covers; the dequantizing loop below is the reference
  // (it also runs under SQUEEZE_KERNELS=reference) and serves the rest.
  const kernels::PackedIntWeights kw{args_.num_bits, out_, in_, words_per_row_, packed_.data(), groups_per_row_,
                                     group_size_, scales_.data(),
                                     zero_points_.empty() ? nullptr : zero_points_.data(),
                                     g_idx_.empty() ? nullptr : g_idx_.data()};
  if (activations() == PackedActivations::kInt8) {
    // Every layout is served: SIMD kernels where PackedIntFastPathApplies,
    // else the plain int8 reference (also under SQUEEZE_KERNELS=reference).
    kernels::PackedIntGemmQ8(kw, x, n_rows, bias_.empty() ? nullptr : bias_.data(), y, pool);
    return;
  }
  if (kernels::ActiveIsa() != kernels::KernelIsa::kReference && kernels::PackedIntFastPathApplies(kw)) {
    kernels::PackedIntGemm(kw, x, n_rows, bias_.empty() ? nullptr : bias_.data(), y, pool);
    return;
  }
  ConstMapMatrixRM X(x, n_rows, in_);
  MapMatrixRM Y(y, n_rows, out_);
  const int64_t n_tiles = (out_ + kRowsPerTile - 1) / kRowsPerTile;
  pool.ParallelFor(n_tiles, 1, [&](int64_t t0, int64_t t1) {
    MatrixRM W(kRowsPerTile, in_);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * kRowsPerTile, r1 = std::min(out_, r0 + kRowsPerTile);
      DequantizeRows(r0, r1, W.data());
      Y.middleCols(r0, r1 - r0).noalias() = X * W.topRows(r1 - r0).transpose();
      if (!bias_.empty()) {
        Eigen::Map<const Eigen::RowVectorXf> b(bias_.data() + r0, r1 - r0);
        Y.middleCols(r0, r1 - r0).rowwise() += b;
      }
    }
  });
}

MatrixRM PackedIntLinear::DenseWeight() const {
  MatrixRM w(out_, in_);
  DequantizeRows(0, out_, w.data());
  return w;
}

int64_t PackedIntLinear::StorageBytes() const {
  return static_cast<int64_t>(packed_.size() * sizeof(uint32_t) + scales_.size() * sizeof(float) +
                              zero_points_.size() * sizeof(int32_t) + bias_.size() * sizeof(float) +
                              g_idx_.size() * sizeof(int32_t));
}

std::vector<std::pair<std::string, TensorView>> PackedIntLinear::StoredTensors() const {
  std::vector<std::pair<std::string, TensorView>> t;
  t.emplace_back("weight_packed", VectorView(packed_, DType::kI32, {out_, words_per_row_}));
  t.emplace_back("weight_scale", VectorView(scales_, DType::kF32, {out_, groups_per_row_}));
  if (!zero_points_.empty()) {
    t.emplace_back("weight_zero_point", VectorView(zero_points_, DType::kI32, {out_, groups_per_row_}));
  }
  TensorView shape;
  shape.dtype = DType::kI64;
  shape.shape = {2};
  shape.data = shape_;
  shape.nbytes = sizeof(shape_);
  t.emplace_back("weight_shape", std::move(shape));
  TensorView qp;
  qp.dtype = DType::kI32;
  qp.shape = {4};
  qp.data = qparams_;
  qp.nbytes = sizeof(qparams_);
  t.emplace_back("weight_qparams", std::move(qp));
  if (!bias_.empty()) t.emplace_back("bias", VectorView(bias_, DType::kF32, {out_}));
  if (!g_idx_.empty()) t.emplace_back("weight_g_idx", VectorView(g_idx_, DType::kI32, {in_}));
  return t;
}

}  // namespace squeeze
