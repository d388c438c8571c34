// Structured pruning of one transformer block (in the spirit of LLM-Pruner,
// Ma et al. 2023, and Wanda-sp / FLAP, An et al. 2024): remove whole
// attention head groups and whole MLP intermediate channels, so the block
// becomes physically narrower (the forward pass takes per-layer widths from
// the linears, model.h).
//
// Structures:
//   head group g (GQA-aware): key/value head g together with the query heads
//     that share it (query head h uses kv head h / n_rep, n_rep = n_heads /
//     n_kv_heads, as in transformers' repeat_kv): q_proj rows of those heads,
//     k_proj / v_proj rows of kv head g (and their bias entries), o_proj
//     columns of those query heads. Without GQA a group is one head.
//     Removing whole groups keeps n_rep, so the block stays a valid GQA block.
//   MLP channel c: gate_proj row c, up_proj row c, down_proj column c.
//
// Importance of a structure (higher = keep), from the structure's weights and
// the L2 norms ||x_j||_2 over the calibration rows of each input channel j of
// the linear the weight belongs to (ActivationStats::ChannelNorms):
//   kMagnitude  sum |w| over every weight of the structure (LLM-Pruner's
//               element-wise L1; no calibration).
//   kWanda      sum |w_ij| * ||x_j||_2 over every weight of the structure
//               (Wanda's score summed over the structure: Wanda-sp).
//   kOutput     sum over the structure's o_proj / down_proj input columns c of
//               ||W[:, c]||_2 * ||x_c||_2: for one channel this is exactly the
//               Frobenius norm of the change of the block's output on the
//               calibration set when the channel is removed
//               (||W[:, c] x_c^T||_F); for a head group it is the
//               triangle-inequality bound of its columns' sum. Like FLAP's
//               fluctuation metric, but without centering (no running mean).
// A structure whose every weight is zero scores 0 under all three.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/model/model.h"

namespace squeeze {

enum class StructureImportance { kMagnitude, kWanda, kOutput };

// Per-input-channel L2 norms of the block's linear inputs on the calibration
// set. Needed (sizes checked) for kWanda and kOutput; ignored by kMagnitude.
struct BlockInputNorms {
  std::vector<double> attn_in;     // [dim]               input of q/k/v_proj
  std::vector<double> attn_out;    // [n_heads*head_dim]  input of o_proj
  std::vector<double> mlp_in;      // [dim]               input of gate/up_proj
  std::vector<double> mlp_hidden;  // [hidden]            input of down_proj
};

// Importance of each head group of `block` (size = its kv heads).
// InvalidArgument on inconsistent shapes or norms of the wrong size.
absl::StatusOr<std::vector<double>> HeadGroupImportance(const TransformerBlock& block, int head_dim,
                                                        StructureImportance metric, const BlockInputNorms& norms);

// Importance of each MLP channel of `block` (size = gate_proj.out).
absl::StatusOr<std::vector<double>> ChannelImportance(const TransformerBlock& block, StructureImportance metric,
                                                      const BlockInputNorms& norms);

// The indices of the `n` lowest scores, ascending by index. Ties are broken
// by the lower index (so the choice is deterministic).
std::vector<int> LowestScored(const std::vector<double>& scores, int n);

// How many of `total` structures a ratio removes: round(ratio * total),
// clamped to [0, total - 1] (a block keeps at least one of each).
int StructuresToRemove(double ratio, int total);

// Removes the head groups `groups` (distinct, in range, not all) from
// `block`: q/k/v/o become fp32 DenseLinear layers (biases sliced).
absl::Status RemoveHeadGroups(TransformerBlock& block, int head_dim, const std::vector<int>& groups);

// Removes the MLP channels `channels` (distinct, in range, not all).
absl::Status RemoveChannels(TransformerBlock& block, const std::vector<int>& channels);

// Parameters (weights + biases) of the block's linears.
int64_t BlockLinearParams(const TransformerBlock& block);

}  // namespace squeeze
