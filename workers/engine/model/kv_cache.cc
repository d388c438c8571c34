#include "workers/engine/model/kv_cache.h"

namespace squeeze {

KVCache::KVCache(const Model& model, int max_seq)
    : max_seq_(max_seq > 0 ? max_seq : model.config.max_seq_len) {
  for (const TransformerBlock& b : model.blocks) {
    const int64_t w = b.k_proj ? b.k_proj->out_features() : 0;
    kv_width_.push_back(w);
    k_.emplace_back(static_cast<size_t>(w * max_seq_), 0.0f);
    v_.emplace_back(static_cast<size_t>(w * max_seq_), 0.0f);
  }
}

int64_t KVCache::bytes() const {
  int64_t total = 0;
  for (size_t i = 0; i < k_.size(); ++i) total += static_cast<int64_t>((k_[i].size() + v_[i].size()) * sizeof(float));
  return total;
}

}  // namespace squeeze
