// AWQ: activation-aware weight quantization (Lin et al. 2023), the scale and
// clip search that runs before round-to-nearest.
//
// A smoothing group is a set of linears that read the same input x [n, in]
// (q/k/v after input_layernorm, gate/up after post_attention_layernorm, o
// after v, down after up). For a per-input-channel scale s > 0,
//   W x = (W diag(s)) (x / s),
// and x / s is folded into whatever produces x (the RMSNorm weight, or the
// rows of the preceding linear and its bias), so the float model is
// unchanged. Quantizing W diag(s) instead of W protects the channels with
// large activations. The scale is searched on a grid of ratios
// alpha = i / n_grid, i in [0, n_grid):
//   s = x_mag^alpha                          (duo_scaling = false)
//   s = x_mag^alpha / w_mag^(1 - alpha)      (duo_scaling = true)
//   s = max(s, 1e-4);  s /= sqrt(max(s) * min(s))
// where x_mag[c] is the activation magnitude of channel c and w_mag[c] the
// mean over the group's rows of |W[r, c]| / max|W[r, group(c)]|. Deviation
// from the reference: x_mag is the RMS sqrt(sum x_c^2 / n) (what
// ActivationStats keeps) instead of mean |x_c|.
// The loss of a ratio is the summed output error of the group's linears on
// the calibration inputs, computed exactly from H = X^T X (double):
//   loss(W, W_hat) = trace((W_hat - W) H (W_hat - W)^T) = ||(W_hat - W) X^T||_F^2
// with W_hat = RTN(W diag(s)) diag(1/s). Ratio 0 without duo scaling gives
// s = 1, i.e. plain RTN, so the chosen loss is never above RTN's.
//
// Clipping (after scaling): for each (row, group) of the scaled weight W'
// (inputs x' = x / s, H' = diag(1/s) H diag(1/s)), try
//   m_k = max|w_g| * (1 - k / clip_grid), k in [0, max_shrink * clip_grid)
// clip w_g to [-m_k, m_k], quantize, and keep the m_k of least
// d^T H'_gg d (d = RTN(clip(w_g)) - w_g), as the AWQ reference's
// auto_clip (which also measures each group's output on its own). k = 0 is
// no clipping, so the clipped loss per group is never above RTN's. The tensor
// strategy (one scale for the whole matrix) is not clipped.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/model/model.h"
#include "workers/methods/quant/quant_args.h"

namespace squeeze {

struct AwqOptions {
  int n_grid = 20;           // ratios alpha = i / n_grid, i in [0, n_grid)
  bool duo_scaling = true;   // divide by w_mag^(1 - alpha) (llm-compressor's default)
  bool apply_clip = true;
  double max_shrink = 0.5;   // clipping tries shrinks in [0, max_shrink)
  int clip_grid = 20;
  // Tests: when >= 0, the only ratio tried (no search).
  double fixed_ratio = -1.0;
};

// One linear of a smoothing group as the search sees it.
struct AwqGroupMember {
  const MatrixRM* w = nullptr;          // [out, in] dense weight
  const WeightQuantArgs* args = nullptr;  // its quantization scheme
  const Eigen::MatrixXd* h = nullptr;   // [in, in] X^T X of its input
};

struct AwqScaleResult {
  std::vector<float> scales;  // [in], > 0
  double ratio = 0.0;         // the chosen alpha
  double loss = 0.0;          // summed loss at the chosen scales
  double rtn_loss = 0.0;      // summed loss with s = 1 (plain RTN)
};

// trace((W_hat - W) H (W_hat - W)^T), in double.
double AwqOutputLoss(const MatrixRM& w, const MatrixRM& w_hat, const Eigen::MatrixXd& h);

// Searches the scale of one group. x_mag [in] >= 0. InvalidArgument on
// mismatched shapes or an empty group.
absl::StatusOr<AwqScaleResult> SearchAwqScales(const std::vector<AwqGroupMember>& members,
                                               const std::vector<double>& x_mag, const AwqOptions& options);

// W diag(s) (columns scaled) and diag(1/s) H diag(1/s).
MatrixRM ScaleColumns(const MatrixRM& w, const std::vector<float>& s);
Eigen::MatrixXd ScaleHessian(const Eigen::MatrixXd& h, const std::vector<float>& s);

// The clipped weight (see above) of `w` whose input has X^T X `h`. Returns w
// unchanged for the tensor strategy.
MatrixRM AwqClipWeight(const MatrixRM& w, const Eigen::MatrixXd& h, const WeightQuantArgs& args,
                       const AwqOptions& options);

// The block-level scaling step. Index = BlockLinear (q, k, v, o, gate, up,
// down). For each linear: args[i] its scheme (nullptr = not quantized by this
// run: then no group containing it is scaled), h[i] its input's X^T X,
// x_mag[i] its input's channel magnitude. Groups: attn_norm -> q,k,v;
// v -> o (only when v's outputs are o's inputs one to one, i.e. no GQA);
// ffn_norm -> gate,up; up -> down. Scaled layers become DenseLinear with the
// new weights; norms are updated in place. On return h_out[i] is the X^T X of
// the (rescaled) input of linear i, input_scales[i] its scale (empty =
// unscaled) and group results are in results[i] for each consumer i.
struct AwqBlockResult {
  std::array<Eigen::MatrixXd, 7> h;
  std::array<std::vector<float>, 7> input_scales;
  std::array<AwqScaleResult, 7> search;
  std::array<bool, 7> scaled{};
};
absl::StatusOr<AwqBlockResult> ApplyAwqBlockScales(const ModelConfig& config, TransformerBlock& block,
                                                   const std::array<const WeightQuantArgs*, 7>& args,
                                                   const std::array<const Eigen::MatrixXd*, 7>& h,
                                                   const std::array<std::vector<double>, 7>& x_mag,
                                                   const AwqOptions& options);

}  // namespace squeeze
