// LowRankTrainable: y = (x V^T) U^T + b with U [out, r], V [r, in] trained.
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/train/trainable_linear.h"

namespace squeeze::train {
namespace {

class LowRankTrainable final : public TrainableLinear {
 public:
  LowRankTrainable(const MatrixRM& u, const MatrixRM& v, std::vector<float> bias)
      : out_(u.rows()), in_(v.cols()), r_(u.cols()) {
    u_.Init({out_, r_}, std::vector<float>(u.data(), u.data() + u.size()), true);
    v_.Init({r_, in_}, std::vector<float>(v.data(), v.data() + v.size()), true);
    if (!bias.empty()) bias_.Init({out_}, std::move(bias), false);
  }
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void Forward(const float* x, int64_t n, float* y, ThreadPool& pool) const override {
    std::vector<float> t(n * r_);
    MatMulNT(x, n, in_, v_.value.data(), r_, t.data(), pool);
    MatMulNT(t.data(), n, r_, u_.value.data(), out_, y, pool);
    if (!bias_.value.empty())
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < out_; ++c) y[i * out_ + c] += bias_.value[c];
  }
  void Backward(const float* x, const float* dy, int64_t n, float* dx, ThreadPool& pool) override {
    std::vector<float> t(n * r_), dt(n * r_);
    MatMulNT(x, n, in_, v_.value.data(), r_, t.data(), pool);  // recomputed: cheap, r small
    AccumulateTN(dy, n, out_, t.data(), r_, u_.grad.data(), pool);  // dU += dy^T t
    MatMulNN(dy, n, out_, u_.value.data(), r_, dt.data(), pool);    // dt = dy U
    AccumulateTN(dt.data(), n, r_, x, in_, v_.grad.data(), pool);   // dV += dt^T x
    if (!bias_.value.empty()) AccumulateColumnSums(dy, n, out_, bias_.grad.data());
    if (dx != nullptr) MatMulNN(dt.data(), n, r_, v_.value.data(), in_, dx, pool);
  }
  std::vector<std::pair<std::string, Param*>> Params() override {
    std::vector<std::pair<std::string, Param*>> p{{"weight_u", &u_}, {"weight_v", &v_}};
    if (!bias_.value.empty()) p.emplace_back("bias", &bias_);
    return p;
  }
  std::unique_ptr<LinearLayer> ToInference() const override;
  std::string kind() const override { return "lowrank_r" + std::to_string(r_); }

 private:
  int64_t out_, in_, r_;
  Param u_, v_, bias_;
};

std::unique_ptr<LinearLayer> LowRankTrainable::ToInference() const {
  // The dense product U V: engine code cannot depend on workers/methods'
  // FactorizedLinear; workers/methods/distill converts back to factors.
  MatrixRM w = ConstMapMatrixRM(u_.value.data(), out_, r_) * ConstMapMatrixRM(v_.value.data(), r_, in_);
  return DenseLinear::FromMatrix(std::move(w), bias_.value);
}

}  // namespace

std::unique_ptr<TrainableLinear> MakeLowRankTrainable(const MatrixRM& u, const MatrixRM& v,
                                                      std::vector<float> bias) {
  return std::make_unique<LowRankTrainable>(u, v, std::move(bias));
}

}  // namespace squeeze::train
