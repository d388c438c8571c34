#include "workers/engine/formats/llama2c.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/mapped_file.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze {

void PermuteInterleavedToHalfSplit(const float* src, float* dst, int64_t n_heads, int64_t head_dim,
                                   int64_t cols) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const float* from = src + (h * head_dim + 2 * i + j) * cols;
        float* to = dst + (h * head_dim + j * half + i) * cols;
        std::memcpy(to, from, static_cast<size_t>(cols) * sizeof(float));
      }
    }
  }
}

absl::StatusOr<CheckpointTensors> ReadLlama2c(const std::string& path) {
  SQ_ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> file, MappedFile::Open(path));
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": llama2.c checkpoint: ", what));
  };
  constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);
  if (file->size() < kHeaderBytes) {
    return bad(
        absl::StrCat("file is ", file->size(), " bytes, too short for the ", kHeaderBytes, "-byte header"));
  }
  int32_t hdr[7];
  std::memcpy(hdr, file->data(), kHeaderBytes);
  const int64_t dim = hdr[0], hidden = hdr[1], n_layers = hdr[2], n_heads = hdr[3], n_kv_heads = hdr[4],
                seq_len = hdr[6];
  const bool shared = hdr[5] > 0;
  const int64_t vocab = hdr[5] < 0 ? -static_cast<int64_t>(hdr[5]) : hdr[5];
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  // Bounds keep every size computation below far from int64 overflow.
  constexpr int64_t kMaxField = 1 << 18;  // products of three stay < 2^54
  for (int i = 0; i < 7; ++i) {
    const int64_t v = i == 5 ? vocab : hdr[i];
    if (v <= 0 || v > kMaxField) {
      return bad(absl::StrCat("header field ", names[i], " = ", hdr[i], " is out of range (1..", kMaxField,
                              "); not a llama2.c v0 checkpoint?"));
    }
  }
  if (dim % n_heads != 0 || n_heads % n_kv_heads != 0 || (dim / n_heads) % 2 != 0) {
    return bad(absl::StrCat("inconsistent header: dim ", dim, ", n_heads ", n_heads, ", n_kv_heads ",
                            n_kv_heads,
                            " (need dim % n_heads == 0, n_heads % n_kv_heads == 0, even head size)"));
  }
  const int64_t hd = dim / n_heads;
  const int64_t kv_dim = hd * n_kv_heads;
  const int64_t L = n_layers;

  // Element counts in file order.
  struct Part {
    const char* name;
    int64_t numel;
  };
  const Part parts[] = {
      {"token_embedding", vocab * dim},
      {"rms_att", L * dim},
      {"wq", L * dim * dim},
      {"wk", L * kv_dim * dim},
      {"wv", L * kv_dim * dim},
      {"wo", L * dim * dim},
      {"rms_ffn", L * dim},
      {"w1", L * hidden * dim},
      {"w2", L * dim * hidden},
      {"w3", L * hidden * dim},
      {"rms_final", dim},
      {"freq_cis_real", seq_len * hd / 2},
      {"freq_cis_imag", seq_len * hd / 2},
      {"wcls", shared ? 0 : vocab * dim},
  };
  int64_t total = 0;
  std::map<std::string, const float*> at;
  const auto* base = reinterpret_cast<const float*>(file->data() + kHeaderBytes);
  for (const Part& p : parts) {
    at[p.name] = base + total;
    total += p.numel;
  }
  const uint64_t expected = kHeaderBytes + static_cast<uint64_t>(total) * sizeof(float);
  if (file->size() != expected) {
    return bad(absl::StrCat("file is ", file->size(), " bytes but its header (dim ", dim, ", hidden_dim ",
                            hidden, ", n_layers ", L, ", n_heads ", n_heads, ", n_kv_heads ", n_kv_heads,
                            ", vocab_size ", hdr[5], ", seq_len ", seq_len, ") implies ", expected,
                            " bytes (", file->size() < expected ? "truncated" : "trailing data", ")"));
  }

  CheckpointTensors ck;
  ModelConfig& c = ck.config;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.dim = static_cast<int>(dim);
  c.hidden_dim = static_cast<int>(hidden);
  c.n_layers = static_cast<int>(L);
  c.n_heads = static_cast<int>(n_heads);
  c.n_kv_heads = static_cast<int>(n_kv_heads);
  c.head_dim = static_cast<int>(hd);
  c.vocab_size = static_cast<int>(vocab);
  c.max_seq_len = static_cast<int>(seq_len);
  c.rope_theta = 10000.0f;  // llama2.c's fixed RoPE base
  c.norm_eps = 1e-5f;       // llama2.c's rmsnorm epsilon
  c.tie_word_embeddings = shared;
  c.attention_bias = false;
  c.bos_token_id = 1;
  c.eos_token_id = 2;

  const std::shared_ptr<const void> owner = file;
  auto view = [&](const float* data, std::vector<int64_t> shape) {
    TensorView v;
    v.dtype = DType::kF32;
    v.shape = std::move(shape);
    v.data = data;
    v.nbytes = static_cast<size_t>(v.numel()) * sizeof(float);
    v.owner = owner;
    return v;
  };
  auto put = [&](const std::string& name, TensorView v) {
    ck.tensors[name] = SourceTensor{std::move(v), path};
  };
  auto permuted = [&](const float* data, int64_t heads, int64_t rows) {
    std::vector<float> out(static_cast<size_t>(rows * dim));
    PermuteInterleavedToHalfSplit(data, out.data(), heads, hd, dim);
    return OwnedF32(std::move(out), {rows, dim});
  };

  put("model.embed_tokens.weight", view(at["token_embedding"], {vocab, dim}));
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    put(p + "input_layernorm.weight", view(at["rms_att"] + l * dim, {dim}));
    put(p + "post_attention_layernorm.weight", view(at["rms_ffn"] + l * dim, {dim}));
    put(p + "self_attn.q_proj.weight", permuted(at["wq"] + l * dim * dim, n_heads, dim));
    put(p + "self_attn.k_proj.weight", permuted(at["wk"] + l * kv_dim * dim, n_kv_heads, kv_dim));
    put(p + "self_attn.v_proj.weight", view(at["wv"] + l * kv_dim * dim, {kv_dim, dim}));
    put(p + "self_attn.o_proj.weight", view(at["wo"] + l * dim * dim, {dim, dim}));
    put(p + "mlp.gate_proj.weight", view(at["w1"] + l * hidden * dim, {hidden, dim}));
    put(p + "mlp.down_proj.weight", view(at["w2"] + l * dim * hidden, {dim, hidden}));
    put(p + "mlp.up_proj.weight", view(at["w3"] + l * hidden * dim, {hidden, dim}));
  }
  put("model.norm.weight", view(at["rms_final"], {dim}));
  if (!shared) put("lm_head.weight", view(at["wcls"], {vocab, dim}));
  return ck;
}

}  // namespace squeeze
