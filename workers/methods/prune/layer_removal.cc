#include "workers/methods/prune/layer_removal.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/model/forward.h"

namespace squeeze {

absl::StatusOr<std::vector<double>> BlockInfluence(const Model& model, const std::vector<std::vector<int>>& sequences,
                                                   ThreadPool& pool) {
  SQ_RETURN_IF_ERROR(ValidateModel(model));
  if (sequences.empty()) return absl::InvalidArgumentError("BlockInfluence: no calibration sequences");
  const int n_layers = static_cast<int>(model.blocks.size());
  std::vector<double> cos_sum(n_layers, 0.0);
  int64_t tokens = 0;
  for (const std::vector<int>& seq : sequences) {
    if (seq.empty()) return absl::InvalidArgumentError("BlockInfluence: empty calibration sequence");
    MatrixRM h;
    SQ_RETURN_IF_ERROR(Embed(model, seq, h));
    for (int l = 0; l < n_layers; ++l) {
      MatrixRM in = h;
      SQ_RETURN_IF_ERROR(RunBlock(model, l, h, 0, nullptr, nullptr, pool));
      for (int64_t t = 0; t < h.rows(); ++t) {
        const Eigen::VectorXd a = in.row(t).transpose().cast<double>(), b = h.row(t).transpose().cast<double>();
        const double den = a.norm() * b.norm();
        cos_sum[l] += den > 0.0 ? a.dot(b) / den : 1.0;
      }
    }
    tokens += static_cast<int64_t>(seq.size());
  }
  std::vector<double> bi(n_layers);
  for (int l = 0; l < n_layers; ++l) bi[l] = 1.0 - cos_sum[l] / static_cast<double>(tokens);
  return bi;
}

absl::Status RemoveBlocks(Model& model, const std::vector<int>& layers) {
  const int n = static_cast<int>(model.blocks.size());
  std::vector<bool> gone(n, false);
  for (int l : layers) {
    if (l < 0 || l >= n || gone[l]) {
      return absl::InvalidArgumentError(
          absl::StrCat("RemoveBlocks: layer ", l, " is out of range [0, ", n, ") or repeated"));
    }
    gone[l] = true;
  }
  if (static_cast<int>(layers.size()) >= n) {
    return absl::InvalidArgumentError(absl::StrCat("RemoveBlocks: cannot remove all ", n, " layers"));
  }
  ModelConfig& c = model.config;
  const bool per_layer = static_cast<int>(c.layer_n_heads.size()) == n;
  std::vector<TransformerBlock> kept;
  std::vector<int> heads, kv, hidden, source;
  const bool has_source = static_cast<int>(c.source_layers.size()) == n;
  for (int l = 0; l < n; ++l) {
    if (gone[l]) continue;
    source.push_back(has_source ? c.source_layers[l] : l);
    kept.push_back(std::move(model.blocks[l]));
    if (per_layer) {
      heads.push_back(c.layer_n_heads[l]);
      kv.push_back(c.layer_n_kv_heads[l]);
      hidden.push_back(c.layer_hidden_dim[l]);
    }
  }
  model.blocks = std::move(kept);
  c.n_layers = static_cast<int>(model.blocks.size());
  c.source_layers = std::move(source);
  if (per_layer) {
    c.layer_n_heads = std::move(heads);
    c.layer_n_kv_heads = std::move(kv);
    c.layer_hidden_dim = std::move(hidden);
  }
  return absl::OkStatus();
}

}  // namespace squeeze
