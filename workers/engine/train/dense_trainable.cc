// DenseTrainable: W [out, in] (+ b) trained directly; optional sparsity mask.
#include <random>

#include "workers/engine/model/dense_linear.h"
#include "workers/engine/train/trainable_linear.h"

namespace squeeze::train {
namespace {

class DenseTrainable final : public TrainableLinear {
 public:
  DenseTrainable(const MatrixRM& w, std::vector<float> bias, bool mask_zeros) : out_(w.rows()), in_(w.cols()) {
    weight_.Init({out_, in_}, std::vector<float>(w.data(), w.data() + w.size()), true);
    if (mask_zeros) {
      weight_.mask.resize(weight_.value.size());
      bool any_zero = false;
      for (size_t i = 0; i < weight_.value.size(); ++i) {
        weight_.mask[i] = weight_.value[i] != 0.0f;
        any_zero |= !weight_.mask[i];
      }
      if (!any_zero) weight_.mask.clear();
    }
    if (!bias.empty()) bias_.Init({out_}, std::move(bias), false);
  }
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void Forward(const float* x, int64_t n, float* y, ThreadPool& pool) const override {
    MatMulNT(x, n, in_, weight_.value.data(), out_, y, pool);
    if (!bias_.value.empty()) {
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < out_; ++c) y[r * out_ + c] += bias_.value[c];
    }
  }
  void Backward(const float* x, const float* dy, int64_t n, float* dx, ThreadPool& pool) override {
    AccumulateTN(dy, n, out_, x, in_, weight_.grad.data(), pool);
    weight_.ApplyMaskToGrad();
    if (!bias_.value.empty()) AccumulateColumnSums(dy, n, out_, bias_.grad.data());
    if (dx != nullptr) MatMulNN(dy, n, out_, weight_.value.data(), in_, dx, pool);
  }
  std::vector<std::pair<std::string, Param*>> Params() override {
    std::vector<std::pair<std::string, Param*>> p{{"weight", &weight_}};
    if (!bias_.value.empty()) p.emplace_back("bias", &bias_);
    return p;
  }
  std::unique_ptr<LinearLayer> ToInference() const override {
    MatrixRM w = ConstMapMatrixRM(weight_.value.data(), out_, in_);
    return DenseLinear::FromMatrix(std::move(w), bias_.value);
  }
  std::string kind() const override { return weight_.mask.empty() ? "dense" : "masked_sparse"; }

 private:
  int64_t out_, in_;
  Param weight_;
  Param bias_;
};

}  // namespace

std::unique_ptr<TrainableLinear> MakeDenseTrainable(const MatrixRM& w, std::vector<float> bias,
                                                    bool keep_zeros_as_mask) {
  return std::make_unique<DenseTrainable>(w, std::move(bias), keep_zeros_as_mask);
}

std::unique_ptr<TrainableLinear> DenseTrainableFrom(const LinearLayer& layer, bool keep_zeros_as_mask) {
  auto b = layer.bias();
  return MakeDenseTrainable(layer.DenseWeight(), std::vector<float>(b.begin(), b.end()), keep_zeros_as_mask);
}

}  // namespace squeeze::train
