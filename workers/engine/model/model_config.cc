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
  const bool per_layer = !layer_n_heads.empty() || !layer_n_kv_heads.empty() || !layer_hidden_dim.empty();
  if (per_layer) {
    for (auto [name, v] : {std::pair{"layer_n_heads", &layer_n_heads}, {"layer_n_kv_heads", &layer_n_kv_heads},
                           {"layer_hidden_dim", &layer_hidden_dim}}) {
      if (static_cast<int>(v->size()) != n_layers) {
        return absl::InvalidArgumentError(
            absl::StrCat("config: ", name, " has ", v->size(), " entries, expected n_layers = ", n_layers));
      }
    }
    for (int l = 0; l < n_layers; ++l) {
      const int hq = layer_n_heads[l], hkv = layer_n_kv_heads[l], h = layer_hidden_dim[l];
      if (hq <= 0 || hq > n_heads || hkv <= 0 || hkv > n_kv_heads || hq % hkv != 0 || h <= 0 || h > hidden_dim) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config: layer ", l, " widths (", hq, " heads, ", hkv, " kv heads, hidden ", h,
            ") must be positive, at most (", n_heads, ", ", n_kv_heads, ", ", hidden_dim,
            ") and heads a multiple of kv heads"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace squeeze
