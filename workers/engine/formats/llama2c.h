// llama2.c legacy (v0) checkpoints (karpathy/llama2.c run.c).
//
// Layout: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; vocab_size < 0 means an unshared classifier follows at the end),
// then fp32: token_embedding[vocab, dim], rms_att[L, dim], wq[L, dim, dim],
// wk[L, kv_dim, dim], wv[L, kv_dim, dim], wo[L, dim, dim], rms_ffn[L, dim],
// w1[L, hidden, dim] (gate), w2[L, dim, hidden] (down), w3[L, hidden, dim] (up),
// rms_final[dim], freq_cis_real[seq_len, head_size/2], freq_cis_imag[same],
// then wcls[vocab, dim] if unshared. kv_dim = dim * n_kv_heads / n_heads.
//
// llama2.c's RoPE rotates interleaved pairs (2i, 2i+1) within each head; the
// engine uses HF's half-split pairs (i, i + head_dim/2). The q and k rows are
// permuted per head exactly like transformers' convert_llama_weights_to_hf:
//   w.view(n_heads, head_dim/2, 2, dim).transpose(1, 2).reshape(-1, dim)
// i.e. new row h*hd + j*(hd/2) + i  <-  old row h*hd + 2*i + j.
// All other tensors are zero-copy views into the memory-mapped file.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/formats/checkpoint_tensors.h"

namespace squeeze {

// Maps `path` and returns its tensors under HF names (q/k permuted). The file
// size must equal exactly what the header implies; a mismatch is an
// InvalidArgument stating the expected and the actual byte counts.
absl::StatusOr<CheckpointTensors> ReadLlama2c(const std::string& path);

// The permutation above on a row-major [n_heads * head_dim, cols] fp32 matrix
// (exposed for tests). `src` and `dst` must not alias.
void PermuteInterleavedToHalfSplit(const float* src, float* dst, int64_t n_heads, int64_t head_dim,
                                   int64_t cols);

}  // namespace squeeze
