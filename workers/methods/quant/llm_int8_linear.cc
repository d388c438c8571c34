#include "workers/methods/quant/llm_int8_linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/methods/quant/int8_matmul.h"

namespace squeeze {
namespace {
constexpr int64_t kRowsPerChunk = 8;  // fixed: results never depend on the pool
}  // namespace

absl::StatusOr<std::unique_ptr<LLMInt8Linear>> LLMInt8Linear::Create(Int8Weight w, float threshold) {
  if (!(threshold > 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("threshold ", threshold, " must be > 0"));
  }
  return std::unique_ptr<LLMInt8Linear>(new LLMInt8Linear(std::move(w), threshold));
}

absl::StatusOr<std::unique_ptr<LLMInt8Linear>> LLMInt8Linear::FromStored(
    const std::string& module, const std::map<std::string, TensorView>& tensors) {
  auto it = tensors.find("llm_int8_threshold");
  if (it == tensors.end()) return absl::InvalidArgumentError(absl::StrCat(module, ": missing tensor llm_int8_threshold"));
  const TensorView& t = it->second;
  if (t.dtype != DType::kF32 || t.shape != std::vector<int64_t>{1} || t.nbytes != sizeof(float)) {
    return absl::InvalidArgumentError(absl::StrCat(module, ".llm_int8_threshold: ", DTypeName(t.dtype), " ",
                                                   ShapeString(t.shape), ", expected F32 [1]"));
  }
  float threshold;
  std::memcpy(&threshold, t.data, sizeof(float));
  auto w = Int8Weight::FromStored(module, tensors);
  if (!w.ok()) return w.status();
  auto layer = Create(std::move(*w), threshold);
  if (!layer.ok()) return absl::InvalidArgumentError(absl::StrCat(module, ".llm_int8_threshold: ", layer.status().message()));
  return layer;
}

std::vector<uint8_t> LLMInt8Linear::OutlierColumns(const float* x, int64_t n_rows, int64_t in, float threshold) {
  std::vector<uint8_t> flag(static_cast<size_t>(in), 0);
  for (int64_t r = 0; r < n_rows; ++r) {
    for (int64_t c = 0; c < in; ++c) {
      if (std::fabs(x[r * in + c]) >= threshold) flag[c] = 1;
    }
  }
  return flag;
}

void LLMInt8Linear::Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const {
  const int64_t in = w_.in, out = w_.out;
  const std::vector<uint8_t> outlier = OutlierColumns(x, n_rows, in, threshold_[0]);
  std::vector<int64_t> cols;
  for (int64_t c = 0; c < in; ++c) {
    if (outlier[c]) cols.push_back(c);
  }
  // The dequantized weight columns of the outliers, [out, |O|].
  std::vector<float> w_out(static_cast<size_t>(out) * cols.size());
  for (int64_t o = 0; o < out; ++o) {
    for (size_t k = 0; k < cols.size(); ++k) {
      w_out[o * cols.size() + k] = static_cast<float>(w_.q[o * in + cols[k]]) * w_.scale[o];
    }
  }
  const int64_t n_chunks = (n_rows + kRowsPerChunk - 1) / kRowsPerChunk;
  pool.ParallelFor(n_chunks, 1, [&](int64_t c0, int64_t c1) {
    std::vector<int8_t> qx(static_cast<size_t>(in));
    std::vector<float> xo(cols.size());
    for (int64_t r = c0 * kRowsPerChunk; r < std::min(n_rows, c1 * kRowsPerChunk); ++r) {
      const float* xr = x + r * in;
      const float sx = QuantizeRowInt8(xr, in, qx.data(), outlier.data());
      for (size_t k = 0; k < cols.size(); ++k) xo[k] = xr[cols[k]];
      float* yr = y + r * out;
      for (int64_t o = 0; o < out; ++o) {
        const int32_t acc = DotInt8(qx.data(), w_.q.data() + o * in, in);
        float fp = 0.0f;
        const float* wo = w_out.data() + o * cols.size();
        for (size_t k = 0; k < cols.size(); ++k) fp += xo[k] * wo[k];
        yr[o] = static_cast<float>(acc) * sx * w_.scale[o] + fp;
        if (!w_.bias.empty()) yr[o] += w_.bias[o];
      }
    }
  });
}

MatrixRM LLMInt8Linear::ForwardReference(const MatrixRM& x) const {
  const int64_t in = w_.in;
  const std::vector<uint8_t> outlier = OutlierColumns(x.data(), x.rows(), in, threshold_[0]);
  Eigen::MatrixXd xd(x.rows(), in);
  std::vector<int8_t> qx(static_cast<size_t>(in));
  for (int64_t r = 0; r < x.rows(); ++r) {
    const float sx = QuantizeRowInt8(x.data() + r * in, in, qx.data(), outlier.data());
    for (int64_t c = 0; c < in; ++c) {
      xd(r, c) = outlier[c] ? static_cast<double>(x(r, c)) : static_cast<double>(qx[c]) * static_cast<double>(sx);
    }
  }
  Eigen::MatrixXd wd(w_.out, in);
  for (int64_t o = 0; o < w_.out; ++o) {
    for (int64_t c = 0; c < in; ++c) wd(o, c) = static_cast<double>(w_.q[o * in + c]) * w_.scale[o];
  }
  Eigen::MatrixXd y = xd * wd.transpose();
  if (!w_.bias.empty()) {
    for (int64_t r = 0; r < y.rows(); ++r) {
      for (int64_t o = 0; o < y.cols(); ++o) y(r, o) += w_.bias[o];
    }
  }
  return y.cast<float>();
}

std::vector<std::pair<std::string, TensorView>> LLMInt8Linear::StoredTensors() const {
  std::vector<std::pair<std::string, TensorView>> t;
  w_.AppendStored(&t);
  TensorView p;
  p.dtype = DType::kF32;
  p.shape = {1};
  p.data = threshold_;
  p.nbytes = sizeof(threshold_);
  t.emplace_back("llm_int8_threshold", std::move(p));
  return t;
}

}  // namespace squeeze
