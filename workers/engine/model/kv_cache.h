// KVCache: the keys and values of every block for positions [0, max_seq).
//
// Per layer two fp32 row-major buffers [max_seq, kv_width(layer)], where
// kv_width(layer) = k_proj.out_features of that block (per-layer widths so
// structurally pruned models work). Row p holds position p's RoPE-rotated key
// and its value. Forward writes rows [start_pos, start_pos + n) and attends
// rows [0, start_pos + n); it does not track a "length": the caller says
// where a call starts (positions past the last written row are never read).
#pragma once

#include <cstdint>
#include <vector>

#include "workers/engine/model/model.h"

namespace squeeze {

class KVCache {
 public:
  KVCache() = default;
  // Sized for `model` (per-layer kv widths from its k_proj) and max_seq
  // positions. max_seq <= 0 means model.config.max_seq_len.
  KVCache(const Model& model, int max_seq);

  int max_seq() const { return max_seq_; }
  int n_layers() const { return static_cast<int>(k_.size()); }
  int64_t kv_width(int layer) const { return kv_width_.at(layer); }
  float* k(int layer) { return k_.at(layer).data(); }
  float* v(int layer) { return v_.at(layer).data(); }
  const float* k(int layer) const { return k_.at(layer).data(); }
  const float* v(int layer) const { return v_.at(layer).data(); }
  // Bytes held by the buffers.
  int64_t bytes() const;

 private:
  int max_seq_ = 0;
  std::vector<int64_t> kv_width_;
  std::vector<std::vector<float>> k_, v_;
};

}  // namespace squeeze
