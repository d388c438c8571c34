// A trainable parameter tensor: fp32 values, their gradient and an optional
// sparsity mask.
//
// Invariants:
//  - value.size() == grad.size() == product(shape).
//  - mask is empty (every entry trainable) or has value.size() entries; an
//    entry with mask 0 is a pruned weight: its value is 0 and stays 0 — the
//    backward pass never writes a nonzero gradient there and the optimizer
//    never moves it (see adamw.h), so masks survive any number of steps.
//  - `decay` selects decoupled weight decay (matrices yes, norms no).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace squeeze::train {

struct Param {
  std::vector<int64_t> shape;
  std::vector<float> value;
  std::vector<float> grad;
  std::vector<uint8_t> mask;  // empty = dense
  bool decay = true;

  int64_t numel() const { return static_cast<int64_t>(value.size()); }
  // Sets shape, value (copied) and a zero gradient of the same size.
  void Init(std::vector<int64_t> s, std::vector<float> v, bool weight_decay) {
    shape = std::move(s);
    value = std::move(v);
    grad.assign(value.size(), 0.0f);
    decay = weight_decay;
  }
  void ZeroGrad() { std::fill(grad.begin(), grad.end(), 0.0f); }
  // Zeroes gradient entries whose mask is 0 (no-op when dense).
  void ApplyMaskToGrad() {
    for (size_t i = 0; i < mask.size(); ++i)
      if (!mask[i]) grad[i] = 0.0f;
  }
};

// A parameter with its full name, e.g. "model.layers.0.self_attn.q_proj.weight".
struct NamedParam {
  std::string name;
  Param* param = nullptr;
};

}  // namespace squeeze::train
