// SmoothQuant (Xiao et al. 2022, "SmoothQuant: Accurate and Efficient
// Post-Training Quantization for Large Language Models"): migrate the
// quantization difficulty of activation outliers into the weights with a
// per-input-channel scale, folded into the preceding RMSNorm so that the
// float model is unchanged, before W8A8 quantization (w8a8_linear.h).
//
// For a group of linears reading the same normalized input x (q/k/v after
// attn_norm, gate/up after ffn_norm) and channel j:
//   a_j = max over calibration rows of |x_j|      (ActivationStats::max_abs)
//   w_j = max over the group's rows of |W[r, j]|
//   s_j = max(a_j^alpha / max(w_j, 1e-5)^(1 - alpha), 1e-5)   (alpha = smoothing_strength)
//   s_j = 1 where a_j == 0 (a channel that never fires is left alone)
// then norm[j] /= s_j and W[:, j] *= s_j for every linear of the group, so
// x' = x / s and W' x' = W x. This is the reference's smooth_ln_fcs (with
// its 1e-5 clamps), alpha 0.5 by default as in the paper.
#pragma once

#include <array>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/model/model.h"

namespace squeeze {

// s for one group (formulas above). act_max [in]; every weight [*, in].
// InvalidArgument on mismatched widths, an empty group or alpha outside [0, 1].
absl::StatusOr<std::vector<float>> SmoothQuantScales(const std::vector<float>& act_max,
                                                     const std::vector<const MatrixRM*>& weights, double alpha);

// The two mappings of a Llama block. Index 0: attn_norm -> q, k, v;
// 1: ffn_norm -> gate, up.
enum SmoothMapping : int { kSmoothAttn = 0, kSmoothMlp = 1 };

struct SmoothQuantBlockResult {
  std::array<bool, 2> applied{};
  std::array<std::vector<float>, 2> scales;  // [dim] when applied
};

// Applies the mappings whose act_max is non-null: computes s, divides the
// norm, replaces the group's linears by DenseLinear with W diag(s) (biases
// unchanged). InvalidArgument when act_max's width is not the norm's.
absl::StatusOr<SmoothQuantBlockResult> ApplySmoothQuantBlock(TransformerBlock& block,
                                                             const std::array<const std::vector<float>*, 2>& act_max,
                                                             double alpha);

}  // namespace squeeze
