#include "workers/methods/quant/w8a8_linear.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/kernels/cpu/cpu_features.h"
#include "workers/kernels/cpu/int8_gemm.h"
#include "workers/methods/quant/int8_matmul.h"

namespace squeeze {
namespace {
// Input rows per parallel chunk: fixed, so results never depend on the pool.
constexpr int64_t kRowsPerChunk = 8;
}  // namespace

absl::StatusOr<std::unique_ptr<W8A8Linear>> W8A8Linear::FromDense(const MatrixRM& w, std::vector<float> bias) {
  auto q = Int8Weight::Quantize(w, std::move(bias));
  if (!q.ok()) return q.status();
  return std::make_unique<W8A8Linear>(std::move(*q));
}

absl::StatusOr<std::unique_ptr<W8A8Linear>> W8A8Linear::FromPacked(const PackedIntLinear& p) {
  const WeightQuantArgs& a = p.args();
  if (a.num_bits != 8 || !a.symmetric || a.strategy != QuantStrategy::kChannel || !p.g_idx().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("W8A8 needs 8-bit symmetric per-channel weights, got ", a.ShortName()));
  }
  const int64_t out = p.out_features(), in = p.in_features();
  std::vector<int32_t> codes(static_cast<size_t>(out * in));
  std::vector<float> scales(static_cast<size_t>(out));
  for (int64_t r = 0; r < out; ++r) {
    scales[r] = p.Scale(r, 0);
    for (int64_t c = 0; c < in; ++c) codes[r * in + c] = p.Code(r, c);
  }
  auto w = Int8Weight::FromCodes(out, in, codes, std::move(scales), std::vector<float>(p.bias().begin(), p.bias().end()));
  if (!w.ok()) return w.status();
  return std::make_unique<W8A8Linear>(std::move(*w));
}

absl::StatusOr<std::unique_ptr<W8A8Linear>> W8A8Linear::FromStored(const std::string& module,
                                                                   const std::map<std::string, TensorView>& tensors) {
  auto it = tensors.find("input_qparams");
  if (it == tensors.end()) return absl::InvalidArgumentError(absl::StrCat(module, ": missing tensor input_qparams"));
  const TensorView& p = it->second;
  if (p.dtype != DType::kI32 || p.shape != std::vector<int64_t>{3} || p.nbytes != 3 * sizeof(int32_t)) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".input_qparams: ", DTypeName(p.dtype), " ",
                                                   ShapeString(p.shape), ", expected I32 [3]"));
  }
  int32_t v[3];
  std::memcpy(v, p.data, sizeof(v));
  if (v[0] != 8 || v[1] != 1 || v[2] != 1) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".input_qparams: {", v[0], ", ", v[1], ", ", v[2],
                                                   "} is not the supported {8, 1, 1} (int8 symmetric per-token dynamic)"));
  }
  auto w = Int8Weight::FromStored(module, tensors);
  if (!w.ok()) return w.status();
  return std::make_unique<W8A8Linear>(std::move(*w));
}

void W8A8Linear::Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const {
  const int64_t in = w_.in, out = w_.out;
  // Fast path: the dispatching int8 kernel (kernels/cpu/int8_gemm.h) gives
  // bit-identical y from the same int8 rows and scales; the loop below is
  // the reference (SQUEEZE_KERNELS=reference), compared in
  // tests/unit/kernels/layer_dispatch_test.cc.
  if (kernels::ActiveIsa() != kernels::KernelIsa::kReference && in <= (int64_t{1} << 17)) {
    std::vector<int8_t> qx(static_cast<size_t>(n_rows * in));
    std::vector<float> sx(static_cast<size_t>(n_rows));
    kernels::QuantizeRowsInt8(x, n_rows, in, qx.data(), sx.data());
    kernels::Int8GemmNT(qx.data(), n_rows, in, sx.data(), w_.q.data(), out, w_.scale.data(),
                        w_.bias.empty() ? nullptr : w_.bias.data(), y, pool);
    return;
  }
  const int64_t n_chunks = (n_rows + kRowsPerChunk - 1) / kRowsPerChunk;
  pool.ParallelFor(n_chunks, 1, [&](int64_t c0, int64_t c1) {
    std::vector<int8_t> qx(static_cast<size_t>(in));
    for (int64_t r = c0 * kRowsPerChunk; r < std::min(n_rows, c1 * kRowsPerChunk); ++r) {
      const float sx = QuantizeRowInt8(x + r * in, in, qx.data());
      float* yr = y + r * out;
      for (int64_t o = 0; o < out; ++o) {
        const int32_t acc = DotInt8(qx.data(), w_.q.data() + o * in, in);
        yr[o] = static_cast<float>(acc) * sx * w_.scale[o];
        if (!w_.bias.empty()) yr[o] += w_.bias[o];
      }
    }
  });
}

MatrixRM W8A8Linear::ForwardFakeQuantReference(const MatrixRM& x) const {
  Eigen::MatrixXd xd(x.rows(), x.cols());
  std::vector<int8_t> qx(static_cast<size_t>(x.cols()));
  for (int64_t r = 0; r < x.rows(); ++r) {
    const float sx = QuantizeRowInt8(x.data() + r * x.cols(), x.cols(), qx.data());
    for (int64_t c = 0; c < x.cols(); ++c) xd(r, c) = static_cast<double>(qx[c]) * static_cast<double>(sx);
  }
  Eigen::MatrixXd wd(w_.out, w_.in);
  for (int64_t o = 0; o < w_.out; ++o) {
    for (int64_t c = 0; c < w_.in; ++c) wd(o, c) = static_cast<double>(w_.q[o * w_.in + c]) * w_.scale[o];
  }
  Eigen::MatrixXd y = xd * wd.transpose();
  if (!w_.bias.empty()) {
    for (int64_t r = 0; r < y.rows(); ++r) {
      for (int64_t o = 0; o < y.cols(); ++o) y(r, o) += w_.bias[o];
    }
  }
  return y.cast<float>();
}

std::vector<std::pair<std::string, TensorView>> W8A8Linear::StoredTensors() const {
  std::vector<std::pair<std::string, TensorView>> t;
  w_.AppendStored(&t);
  TensorView p;
  p.dtype = DType::kI32;
  p.shape = {3};
  p.data = input_qparams_;
  p.nbytes = sizeof(input_qparams_);
  t.emplace_back("input_qparams", std::move(p));
  return t;
}

}  // namespace squeeze
