// LoraTrainable: y = base(x) + s * (x A^T) B^T, s = alpha / r; base frozen.
#include <random>

#include "workers/engine/model/dense_linear.h"
#include "workers/engine/train/trainable_linear.h"

namespace squeeze::train {
namespace {

class LoraTrainable final : public TrainableLinear {
 public:
  LoraTrainable(std::shared_ptr<const LinearLayer> base, int rank, float alpha, uint64_t seed)
      : base_(std::move(base)), out_(base_->out_features()), in_(base_->in_features()), r_(rank),
        scale_(alpha / static_cast<float>(rank)) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f / std::sqrt(static_cast<float>(in_)));
    std::vector<float> a(r_ * in_);
    for (float& x : a) x = dist(rng);
    a_.Init({r_, in_}, std::move(a), true);
    b_.Init({out_, r_}, std::vector<float>(out_ * r_, 0.0f), true);
    base_weight_ = base_->DenseWeight();  // for dx = dy W (frozen)
  }
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void Forward(const float* x, int64_t n, float* y, ThreadPool& pool) const override {
    base_->Forward(x, n, y, pool);
    std::vector<float> t(n * r_), z(n * out_);
    MatMulNT(x, n, in_, a_.value.data(), r_, t.data(), pool);
    MatMulNT(t.data(), n, r_, b_.value.data(), out_, z.data(), pool);
    for (int64_t i = 0; i < n * out_; ++i) y[i] += scale_ * z[i];
  }
  void Backward(const float* x, const float* dy, int64_t n, float* dx, ThreadPool& pool) override {
    std::vector<float> t(n * r_), dt(n * r_), sdy(n * out_);
    for (int64_t i = 0; i < n * out_; ++i) sdy[i] = scale_ * dy[i];
    MatMulNT(x, n, in_, a_.value.data(), r_, t.data(), pool);
    AccumulateTN(sdy.data(), n, out_, t.data(), r_, b_.grad.data(), pool);  // dB += s dy^T t
    MatMulNN(sdy.data(), n, out_, b_.value.data(), r_, dt.data(), pool);    // dt = s dy B
    AccumulateTN(dt.data(), n, r_, x, in_, a_.grad.data(), pool);           // dA += dt^T x
    if (dx != nullptr) {
      MatMulNN(dy, n, out_, base_weight_.data(), in_, dx, pool);
      std::vector<float> dx2(n * in_);
      MatMulNN(dt.data(), n, r_, a_.value.data(), in_, dx2.data(), pool);
      for (int64_t i = 0; i < n * in_; ++i) dx[i] += dx2[i];
    }
  }
  std::vector<std::pair<std::string, Param*>> Params() override {
    return {{"lora_a", &a_}, {"lora_b", &b_}};
  }
  std::unique_ptr<LinearLayer> ToInference() const override {
    MatrixRM w = base_weight_;
    w.noalias() += scale_ * (ConstMapMatrixRM(b_.value.data(), out_, r_) * ConstMapMatrixRM(a_.value.data(), r_, in_));
    auto b = base_->bias();
    return DenseLinear::FromMatrix(std::move(w), std::vector<float>(b.begin(), b.end()));
  }
  std::string kind() const override { return "lora_r" + std::to_string(r_) + "_on_" + base_->kind(); }

 private:
  std::shared_ptr<const LinearLayer> base_;
  int64_t out_, in_, r_;
  float scale_;
  MatrixRM base_weight_;
  Param a_, b_;
};

}  // namespace

std::unique_ptr<TrainableLinear> MakeLoraTrainable(std::shared_ptr<const LinearLayer> base, int rank,
                                                   float alpha, uint64_t seed) {
  return std::make_unique<LoraTrainable>(std::move(base), rank, alpha, seed);
}

}  // namespace squeeze::train
