#include "workers/methods/distill/qat_linear.h"

#include <cmath>

#include "workers/engine/core/status_macros.h"
#include "workers/methods/quant/quant_grid.h"

namespace squeeze {
namespace {

class QatLinear final : public train::TrainableLinear {
 public:
  QatLinear(const MatrixRM& w, std::vector<float> bias, const WeightQuantArgs& args,
            std::vector<QuantGroupParams> grid, std::vector<int32_t> g_idx)
      : args_(args), out_(w.rows()), in_(w.cols()), groups_(args.GroupsPerRow(w.cols())),
        group_size_(args.EffectiveGroupSize(w.cols())), grid_(std::move(grid)), g_idx_(std::move(g_idx)) {
    weight_.Init({out_, in_}, std::vector<float>(w.data(), w.data() + w.size()), true);
    if (!bias.empty()) bias_.Init({out_}, std::move(bias), false);
  }
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }

  void Forward(const float* x, int64_t n, float* y, ThreadPool& pool) const override {
    const std::vector<float> wq = Quantized(nullptr);
    train::MatMulNT(x, n, in_, wq.data(), out_, y, pool);
    if (!bias_.value.empty())
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < out_; ++c) y[i * out_ + c] += bias_.value[c];
  }
  void Backward(const float* x, const float* dy, int64_t n, float* dx, ThreadPool& pool) override {
    std::vector<uint8_t> pass;
    const std::vector<float> wq = Quantized(&pass);
    std::vector<float> dwq(out_ * in_, 0.0f);
    train::AccumulateTN(dy, n, out_, x, in_, dwq.data(), pool);
    for (int64_t i = 0; i < out_ * in_; ++i)
      if (pass[i]) weight_.grad[i] += dwq[i];  // straight-through inside the clamp range
    if (!bias_.value.empty()) train::AccumulateColumnSums(dy, n, out_, bias_.grad.data());
    if (dx != nullptr) train::MatMulNN(dy, n, out_, wq.data(), in_, dx, pool);
  }
  std::vector<std::pair<std::string, train::Param*>> Params() override {
    std::vector<std::pair<std::string, train::Param*>> p{{"weight", &weight_}};
    if (!bias_.value.empty()) p.emplace_back("bias", &bias_);
    return p;
  }
  std::unique_ptr<LinearLayer> ToInference() const override {
    std::vector<int32_t> codes(out_ * in_);
    for (int64_t r = 0; r < out_; ++r)
      for (int64_t c = 0; c < in_; ++c) codes[r * in_ + c] = Code(r, c, nullptr);
    std::vector<float> scales;
    std::vector<int32_t> zeros;
    SplitQuantGroupParams(grid_, args_, &scales, &zeros);
    auto packed = PackedIntLinear::FromCodes(args_, out_, in_, codes, std::move(scales), std::move(zeros),
                                             bias_.value, g_idx_);
    // Codes are clamped to the grid and sizes come from a valid grid.
    return std::move(packed).value();
  }
  std::string kind() const override { return "qat_" + args_.ShortName(); }

 private:
  const QuantGroupParams& GroupParams(int64_t r, int64_t c) const {
    const int64_t g = g_idx_.empty() ? c / group_size_ : g_idx_[c];
    return grid_[r * groups_ + g];
  }
  int32_t Code(int64_t r, int64_t c, bool* in_range) const {
    const QuantGroupParams& p = GroupParams(r, c);
    const float v = weight_.value[r * in_ + c];
    const double unclamped = std::round(static_cast<double>(v) / p.scale) + p.zero;
    if (in_range) *in_range = unclamped >= args_.qmin() && unclamped <= args_.qmax();
    return QuantCode(v, p, args_);
  }
  std::vector<float> Quantized(std::vector<uint8_t>* pass) const {
    std::vector<float> wq(out_ * in_);
    if (pass) pass->resize(out_ * in_);
    for (int64_t r = 0; r < out_; ++r)
      for (int64_t c = 0; c < in_; ++c) {
        bool ok = true;
        wq[r * in_ + c] = DequantCode(Code(r, c, &ok), GroupParams(r, c));
        if (pass) (*pass)[r * in_ + c] = ok;
      }
    return wq;
  }

  WeightQuantArgs args_;
  int64_t out_, in_, groups_, group_size_;
  std::vector<QuantGroupParams> grid_;  // [out, groups]
  std::vector<int32_t> g_idx_;
  train::Param weight_, bias_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<train::TrainableLinear>> MakeQatFromPacked(const PackedIntLinear& packed) {
  const WeightQuantArgs& a = packed.args();
  std::vector<QuantGroupParams> grid(packed.out_features() * packed.groups_per_row());
  for (int64_t r = 0; r < packed.out_features(); ++r)
    for (int64_t g = 0; g < packed.groups_per_row(); ++g)
      grid[r * packed.groups_per_row() + g] = {packed.Scale(r, g), packed.ZeroPoint(r, g)};
  auto b = packed.bias();
  return std::unique_ptr<train::TrainableLinear>(new QatLinear(
      packed.DenseWeight(), std::vector<float>(b.begin(), b.end()), a, std::move(grid), packed.g_idx()));
}

absl::StatusOr<std::unique_ptr<train::TrainableLinear>> MakeQat(const MatrixRM& w, std::vector<float> bias,
                                                                const WeightQuantArgs& args) {
  SQ_RETURN_IF_ERROR(args.Validate());
  return std::unique_ptr<train::TrainableLinear>(
      new QatLinear(w, std::move(bias), args, ComputeAllQuantGroupParams(w, args), {}));
}

}  // namespace squeeze
