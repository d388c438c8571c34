// A TrainableLinear that trains through another one (the "inner" layer) and
// differs from it only in how the trained parameters become an inference
// layer again (ToInference) and, optionally, in kind(). Forward, backward and
// the parameter list are the inner layer's, unchanged.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "workers/engine/train/trainable_linear.h"

namespace squeeze {

class WrappedTrainable : public train::TrainableLinear {
 public:
  explicit WrappedTrainable(std::unique_ptr<train::TrainableLinear> inner) : inner_(std::move(inner)) {}
  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  void Forward(const float* x, int64_t n, float* y, ThreadPool& pool) const override { inner_->Forward(x, n, y, pool); }
  void Backward(const float* x, const float* dy, int64_t n, float* dx, ThreadPool& pool) override {
    inner_->Backward(x, dy, n, dx, pool);
  }
  std::vector<std::pair<std::string, train::Param*>> Params() override { return inner_->Params(); }
  std::string kind() const override { return inner_->kind(); }

 protected:
  // The inner layer's parameters, in its order, for reading trained values
  // in ToInference() (which is const; Params() of the inner layer is not).
  std::vector<std::pair<std::string, train::Param*>> InnerParams() const { return inner_->Params(); }

 private:
  std::unique_ptr<train::TrainableLinear> inner_;
};

}  // namespace squeeze
