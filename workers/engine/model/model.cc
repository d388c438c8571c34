#include "workers/engine/model/model.h"

#include "absl/strings/str_cat.h"

namespace squeeze {

std::vector<LinearSlot> Model::BlockLinears(int layer) {
  TransformerBlock& b = blocks.at(layer);
  const std::string p = absl::StrCat("model.layers.", layer, ".");
  return {
      {p + "self_attn.q_proj", layer, &b.q_proj}, {p + "self_attn.k_proj", layer, &b.k_proj},
      {p + "self_attn.v_proj", layer, &b.v_proj}, {p + "self_attn.o_proj", layer, &b.o_proj},
      {p + "mlp.gate_proj", layer, &b.gate_proj}, {p + "mlp.up_proj", layer, &b.up_proj},
      {p + "mlp.down_proj", layer, &b.down_proj},
  };
}

std::vector<LinearSlot> Model::AllLinears() {
  std::vector<LinearSlot> all;
  for (int i = 0; i < static_cast<int>(blocks.size()); ++i) {
    for (LinearSlot& s : BlockLinears(i)) all.push_back(std::move(s));
  }
  if (lm_head) all.push_back({"lm_head", -1, &lm_head});
  return all;
}

}  // namespace squeeze
