#include "workers/engine/model/model_config.h"

#include "absl/strings/str_cat.h"

namespace squeeze {

absl::Status ModelConfig::Validate() const {
  auto positive = [](const char* name, int v) -> absl::Status {
    if (v <= 0) return absl::InvalidArgumentError(absl::StrCat("config: ", name, " must be > 0, got ", v));
    return absl::OkStatus();
  };
  for (auto [name, v] : {std::pair{"dim", dim}, {"hidden_dim", hidden_dim}, {"n_layers", n_layers},
                         {"n_heads", n_heads}, {"n_kv_heads", n_kv_heads}, {"head_dim", head_dim},
                         {"vocab_size", vocab_size}, {"max_seq_len", max_seq_len}}) {
    if (auto s = positive(name, v); !s.ok()) return s;
  }
  if (n_heads % n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config: n_heads (", n_heads,
                                                   ") is not a multiple of n_kv_heads (", n_kv_heads, ")"));
  }
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config: head_dim must be even for RoPE, got ", head_dim));
  }
  if (!(rope_theta > 0.0f)) return absl::InvalidArgumentError("config: rope_theta must be > 0");
  if (!(norm_eps > 0.0f)) return absl::InvalidArgumentError("config: norm_eps must be > 0");
  return absl::OkStatus();
}

}  // namespace squeeze
