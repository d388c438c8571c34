// Llama models <-> GGUF files as llama.cpp reads them (architecture "llama").
//
// Tensor names (llama.cpp's LLM_ARCH_LLAMA):
//   token_embd.weight [vocab, dim]        model.embed_tokens.weight
//   blk.N.attn_norm.weight [dim]          model.layers.N.input_layernorm.weight
//   blk.N.attn_q / attn_k / attn_v / attn_output.{weight,bias}
//                                         self_attn.q_proj / k_proj / v_proj / o_proj
//   blk.N.ffn_norm.weight                 post_attention_layernorm.weight
//   blk.N.ffn_gate / ffn_up / ffn_down.weight   mlp.gate_proj / up_proj / down_proj
//   output_norm.weight                    model.norm.weight
//   output.weight                         lm_head.weight (absent when tied)
// Norms and biases are F32; 2-D weights take the requested type.
//
// RoPE layout: llama.cpp's "llama" architecture rotates interleaved pairs
// (2i, 2i+1) (the original Meta layout, which convert_hf_to_gguf.py restores
// by permuting q/k rows); the engine holds HF's half-split layout. The writer
// permutes q/k rows (and biases) per head, row h*hd + 2i + j <- h*hd + j*hd/2 + i,
// the reader applies the inverse (PermuteInterleavedToHalfSplit in llama2c.h).
// Rows are permuted after quantization: a row's blocks move as a whole.
//
// Metadata written: general.architecture/name/file_type/alignment/
// quantization_version; llama.vocab_size, context_length, embedding_length,
// block_count, feed_forward_length, attention.head_count, head_count_kv,
// attention.key_length/value_length, rope.dimension_count, rope.freq_base,
// attention.layer_norm_rms_epsilon; tokenizer.ggml.* (GgufTokenizerMetadata).
//
// Types of 2-D weights: the requested type when the row length (in_features)
// is a multiple of its block size; otherwise, as llama.cpp's quantize does,
// a per-tensor fallback (reported): Q4_K -> Q4_0 -> F16 (llama.cpp falls back
// to Q5_0, which this project does not write), Q6_K -> Q8_0 -> F16,
// Q4_0 / Q4_1 / Q8_0 -> F16. With allow_fallback = false that is an error.
//
// Packed-int layers (our "packed_int_*" kinds, layout in
// methods/quant/packed_int_linear.h, read here from StoredTensors()) map onto
// a GGUF type without re-quantization when every 32-value block lies in one
// scale group (group size a multiple of 32, no act-order g_idx, in % 32 == 0)
// and the codes fit: Q8_0 takes any code with q - z in [-128, 127]
// (d = scale, qs = q - z); Q4_0 takes symmetric codes in [-8, 7]
// (nibble = q + 8); Q4_1 takes codes in [-8, 7] with any zero point
// (d = scale, m = -(8 + z) * scale). The only change is the fp16 rounding of
// d (and m). Every other layer (dense, low-rank, sparse, or packed that does
// not fit) is re-quantized from its DenseWeight(). Each tensor's report gives
// how it was written and its relative error ||W_gguf - W|| / ||W|| against
// the layer's own effective weight W.
//
// Reader: F32/F16 tensors and every quantized type are dequantized to dense
// fp32 (DenseLinear) at load: llama.cpp's own kernels run the quantized
// bytes; our engine runs the exact values those bytes encode.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/formats/checkpoint_tensors.h"
#include "workers/engine/formats/ggml_blocks.h"
#include "workers/engine/formats/gguf.h"
#include "workers/engine/model/model.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze {

inline constexpr char kGgufArchLlama[] = "llama";
inline constexpr char kGgufArchDeci[] = "deci";

// llama.cpp token types (tokenizer.ggml.token_type).
enum GgufTokenType : int32_t {
  kGgufTokenNormal = 1,
  kGgufTokenUnknown = 2,
  kGgufTokenControl = 3,
  kGgufTokenUserDefined = 4,
  kGgufTokenUnused = 5,
  kGgufTokenByte = 6,
};

struct GgufExportOptions {
  // Type of 2-D weights; nullopt = "auto": dense layers F32 (F16 when stored
  // as F16), packed-int layers the smallest GGUF type that holds their codes
  // exactly (Q4_0, Q4_1, then Q8_0), else Q8_0 re-quantized (the least
  // added error; e.g. act-order groups).
  std::optional<GgmlType> type;
  bool allow_fallback = true;
  std::string name;  // general.name ("" = none)
};

struct GgufTensorReport {
  std::string name;        // GGUF tensor name
  std::string source;      // layer kind, "embedding", "norm", "bias"
  GgmlType requested = GgmlType::kF32;
  GgmlType type = GgmlType::kF32;  // written
  // "stored" (F32 as is), "converted" (F16), "quantized" (dense -> Q),
  // "exact" (packed codes copied), "re-quantized" (packed layer that no
  // GGUF type holds as is), prefixed with "fallback (reason): " when the
  // requested type could not be used.
  std::string how;
  double rel_error = 0.0;  // ||W_gguf - W||_F / ||W||_F (0 when W == 0)
};

struct GgufExportResult {
  std::vector<GgufTensorReport> tensors;
  uint32_t file_type = 0;  // general.file_type written
  uint64_t bytes = 0;      // file size
};

// Writes `model` with the tokenizer at `tokenizer_path` (llama2.c
// tokenizer.bin or HF tokenizer.json) to `out_path` atomically. Refuses
// (InvalidArgument / Unimplemented, naming the reason) what llama.cpp's llama
// loader cannot run: architectures other than llama / mistral (without
// sliding window), a tokenizer larger than the model's vocabulary.
// Per-layer widths (structured pruning: blocks with fewer query / key-value
// heads or MLP channels than others) are written with general.architecture
// "deci" (llama.cpp's DeciLM / Nemotron-NAS architecture: the llama tensor
// names and RoPE, but deci.attention.head_count, .head_count_kv and
// .feed_forward_length are int32 arrays, one entry per block, read by
// llama.cpp's get_key_or_arr); the llama architecture sizes every block from
// layer 0 and would refuse such a file. Uniform widths (also uniformly
// pruned ones) are written as "llama" with scalars equal to the blocks'
// widths.
absl::StatusOr<GgufExportResult> ExportGguf(const Model& model, const std::string& tokenizer_path,
                                           const std::string& out_path, const GgufExportOptions& options);

// tokenizer.ggml.* for the tokenizer at `path`, padded with unused tokens to
// `vocab_size` entries (llama.cpp requires one token per embedding row).
//  - llama2.c tokenizer.bin -> model "llama": tokens (spaces written as
//    U+2581 as SentencePiece spells them; the control tokens <s> / </s>
//    without llama2.c's surrounding newlines), scores, token_type
//    (0 unknown, 1/2 control, <0xXX> byte, others normal), bos 1, eos 2, unk 0.
//  - HF tokenizer.json, SentencePiece style (byte fallback, "▁") -> "llama":
//    tokens as stored; score of a token = -(rank of the first merge that
//    produces it) (0 for tokens no merge produces), which makes llama.cpp's
//    score-ordered merging follow the merge ranks.
//  - HF tokenizer.json, byte-level with the GPT-2 regex -> model "gpt2",
//    pre "gpt-2": tokens, merges ("a b"), token_type (added special tokens
//    control, other added tokens user-defined).
// Other tokenizers are Unimplemented, naming what is not supported.
absl::StatusOr<std::vector<GgufKV>> GgufTokenizerMetadata(const std::string& path, int vocab_size);

// The tokenizer described by a GGUF file's tokenizer.ggml.* metadata:
//  - "llama": a llama2.c-style tokenizer (score-ordered merges, byte
//    fallback) built from tokens / scores; requires <unk>, <s>, </s> at ids
//    0, 1, 2 and the byte tokens <0x00>..<0xFF> at ids 3..258 (the layout of
//    llama2.c and Llama-2 vocabularies).
//  - "gpt2" with pre "gpt-2" (or absent): a byte-level BPE tokenizer.
// Errors name the file and the key.
absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerFromGguf(const GgufFile& file);

// The model tensors of a parsed GGUF file under HF names, dequantized to
// fp32, q/k rows permuted back to the half-split layout, with the config
// from the llama.* (or deci.*) metadata: per-layer arrays of head_count /
// head_count_kv / feed_forward_length become ModelConfig::layer_* (config
// widths = the largest); an entry of 0 (DeciLM's attention-free or
// FFN-free blocks) is Unimplemented.
absl::StatusOr<CheckpointTensors> GgufToCheckpoint(const GgufFile& file);

// Kinds of the linears kept as ggml blocks (GgufImportOptions below); the
// layer class is GgmlBlockLinear (methods/quant/ggml_block_linear.h), whose
// kind() spells the same strings.
inline constexpr char kGgufQ4_0LinearKind[] = "gguf_q4_0";
inline constexpr char kGgufQ8_0LinearKind[] = "gguf_q8_0";

struct GgufImportOptions {
  // false: every tensor is dequantized to fp32 (GgufToCheckpoint above).
  // true: the 2-D weights of linear modules (blk.N.attn_* / ffn_* and
  // output.weight; never token_embd, which is only gathered) stored as Q4_0
  // or Q8_0 are handed over as their blocks, never dequantized:
  //   "<module>.weight_blocks" U8 [out, in / 32 * block bytes]  (zero copy
  //       from the mapping; q/k rows are permuted back to the half-split
  //       layout as whole rows, which needs one copy of the blocks)
  //   "<module>.weight_shape"  I64 [2] = {out, in}
  // with linear_kinds[module] = kGgufQ4_0LinearKind / kGgufQ8_0LinearKind,
  // the stored layout of GgmlBlockLinear; BuildModel builds them through the
  // loader registered for "gguf_q" (RegisterMethodLinearLoaders). Every fp16
  // scale must be finite (the dequantizing path refuses the NaN / Inf
  // weights such a scale gives): InvalidArgument naming the tensor, the row
  // and the block. Other types and tensors take the fp32 path unchanged.
  bool keep_ggml_blocks = false;
};
absl::StatusOr<CheckpointTensors> GgufToCheckpoint(const GgufFile& file, const GgufImportOptions& options);

struct GgufModel {
  Model model;
  std::unique_ptr<Tokenizer> tokenizer;
};
// ReadGguf + GgufToCheckpoint + BuildModel + TokenizerFromGguf.
absl::StatusOr<GgufModel> LoadGgufModel(const std::string& path);
absl::StatusOr<GgufModel> LoadGgufModel(const std::string& path, const GgufImportOptions& options);

}  // namespace squeeze
