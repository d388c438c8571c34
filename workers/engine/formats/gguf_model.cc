#include "workers/engine/formats/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "workers/engine/core/half.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/llama2c.h"

namespace squeeze {
namespace {

// HF module suffix <-> llama.cpp tensor base name, per block.
struct NameMap {
  const char* hf;
  const char* gguf;
};
constexpr NameMap kBlockLinears[] = {
    {"self_attn.q_proj", "attn_q"},   {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
};
constexpr NameMap kBlockNorms[] = {
    {"input_layernorm", "attn_norm"},
    {"post_attention_layernorm", "ffn_norm"},
};

// general.file_type (llama_ftype) of a file whose weights are mostly `t`.
uint32_t FileTypeOf(GgmlType t) {
  switch (t) {
    case GgmlType::kF32: return 0;   // ALL_F32
    case GgmlType::kF16: return 1;   // MOSTLY_F16
    case GgmlType::kQ4_0: return 2;  // MOSTLY_Q4_0
    case GgmlType::kQ4_1: return 3;  // MOSTLY_Q4_1
    case GgmlType::kQ8_0: return 7;  // MOSTLY_Q8_0
    case GgmlType::kQ4_K: return 14; // MOSTLY_Q4_K_S
    case GgmlType::kQ6_K: return 18; // MOSTLY_Q6_K
  }
  return 0;
}

bool IsQuantized(GgmlType t) { return t != GgmlType::kF32 && t != GgmlType::kF16; }

int64_t BlockElems(GgmlType t) {
  for (const GgmlTypeInfo& i : SupportedGgmlTypes()) {
    if (i.type == t) return i.block_elems;
  }
  return 1;
}

// The next type to try when rows of `t` do not fit its block size.
GgmlType FallbackOf(GgmlType t) {
  switch (t) {
    case GgmlType::kQ4_K: return GgmlType::kQ4_0;
    case GgmlType::kQ6_K: return GgmlType::kQ8_0;
    default: return GgmlType::kF16;
  }
}

// Row permutation HF half-split -> interleaved (the inverse of
// PermuteInterleavedToHalfSplit) on rows of `row_bytes` bytes.
std::string PermuteRowsHalfSplitToInterleaved(const std::string& src, int64_t rows, int64_t row_bytes,
                                              int64_t head_dim) {
  std::string dst(src.size(), '\0');
  const int64_t half = head_dim / 2, heads = rows / head_dim;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t from = h * head_dim + j * half + i, to = h * head_dim + 2 * i + j;
        std::memcpy(dst.data() + to * row_bytes, src.data() + from * row_bytes, static_cast<size_t>(row_bytes));
      }
    }
  }
  return dst;
}

double RelError(const std::vector<float>& got, const float* want, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

std::vector<float> DequantizeAll(GgmlType type, const std::string& bytes, int64_t rows, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  const int64_t row_bytes = GgmlRowBytes(type, cols).value();
  for (int64_t r = 0; r < rows; ++r) {
    DequantizeRow(type, reinterpret_cast<const uint8_t*>(bytes.data()) + r * row_bytes, cols, out.data() + r * cols);
  }
  return out;
}

// ---- packed-int layers (methods/quant/packed_int_linear.h layout) -----------

struct PackedView {
  int bits = 0;
  bool symmetric = true;
  int64_t out = 0, in = 0, groups = 0, group_size = 0;
  const uint32_t* packed = nullptr;
  int64_t words_per_row = 0;
  const float* scales = nullptr;
  const int32_t* zeros = nullptr;  // null when symmetric
  bool has_g_idx = false;

  int32_t Code(int64_t r, int64_t c) const {
    const int per_word = 32 / bits;
    const uint32_t w = packed[r * words_per_row + c / per_word];
    const uint32_t u = (w >> ((c % per_word) * bits)) & ((1u << bits) - 1u);
    return static_cast<int32_t>(u) - (1 << (bits - 1));
  }
  float Scale(int64_t r, int64_t c) const { return scales[r * groups + c / group_size]; }
  int32_t Zero(int64_t r, int64_t c) const { return zeros ? zeros[r * groups + c / group_size] : 0; }
};

// Reads the stored tensors of a "packed_int_*" layer; nullopt when they are
// not in the documented layout (then the layer is simply re-quantized).
std::optional<PackedView> ReadPacked(const LinearLayer& layer) {
  if (!absl::StartsWith(layer.kind(), "packed_int_")) return std::nullopt;
  std::map<std::string, TensorView> t;
  for (auto& [suffix, view] : layer.StoredTensors()) t[suffix] = view;
  auto has = [&](const char* k, DType d) { return t.count(k) && t[k].dtype == d; };
  if (!has("weight_packed", DType::kI32) || !has("weight_scale", DType::kF32) || !has("weight_qparams", DType::kI32) ||
      t["weight_qparams"].numel() != 4 || t["weight_packed"].shape.size() != 2 || t["weight_scale"].shape.size() != 2) {
    return std::nullopt;
  }
  const int32_t* qp = static_cast<const int32_t*>(t["weight_qparams"].data);
  PackedView p;
  p.bits = qp[0];
  p.symmetric = qp[1] != 0;
  p.out = layer.out_features();
  p.in = layer.in_features();
  if (p.bits < 2 || p.bits > 8) return std::nullopt;
  p.words_per_row = t["weight_packed"].shape[1];
  p.groups = t["weight_scale"].shape[1];
  if (t["weight_packed"].shape[0] != p.out || t["weight_scale"].shape[0] != p.out || p.groups < 1 ||
      p.words_per_row * (32 / p.bits) < p.in) {
    return std::nullopt;
  }
  p.group_size = qp[2] == 2 ? qp[3] : p.in;
  if (p.group_size <= 0 || (p.in + p.group_size - 1) / p.group_size != p.groups) return std::nullopt;
  p.packed = static_cast<const uint32_t*>(t["weight_packed"].data);
  p.scales = static_cast<const float*>(t["weight_scale"].data);
  if (!p.symmetric) {
    if (!has("weight_zero_point", DType::kI32) || t["weight_zero_point"].numel() != p.out * p.groups) {
      return std::nullopt;
    }
    p.zeros = static_cast<const int32_t*>(t["weight_zero_point"].data);
  }
  p.has_g_idx = t.count("weight_g_idx") > 0;
  return p;
}

// The bytes of `p` as `type` when they fit exactly (see gguf_model.h), else
// nullopt with the reason in *why.
std::optional<std::string> PackedAsGgml(const PackedView& p, GgmlType type, std::string* why) {
  if (p.has_g_idx) {
    *why = "act-order groups (g_idx) are not contiguous";
    return std::nullopt;
  }
  if (type != GgmlType::kQ8_0 && type != GgmlType::kQ4_0 && type != GgmlType::kQ4_1) {
    *why = absl::StrCat(GgmlTypeName(type), " stores its own sub-block scales");
    return std::nullopt;
  }
  if (p.in % 32 != 0 || (p.group_size % 32 != 0 && p.groups != 1)) {
    *why = absl::StrCat("scale groups of ", p.group_size, " do not cover whole 32-value blocks");
    return std::nullopt;
  }
  if (type == GgmlType::kQ4_0 && !p.symmetric) {
    *why = "Q4_0 has no zero point";
    return std::nullopt;
  }
  if ((type == GgmlType::kQ4_0 || type == GgmlType::kQ4_1) && p.bits > 4) {
    *why = absl::StrCat(p.bits, "-bit codes do not fit 4 bits");
    return std::nullopt;
  }
  const int64_t row_bytes = GgmlRowBytes(type, p.in).value();
  std::string out(static_cast<size_t>(row_bytes * p.out), '\0');
  for (int64_t r = 0; r < p.out; ++r) {
    uint8_t* row = reinterpret_cast<uint8_t*>(out.data()) + r * row_bytes;
    for (int64_t b = 0; b < p.in / 32; ++b) {
      const int64_t c0 = b * 32;
      const float s = p.Scale(r, c0);
      const int32_t z = p.Zero(r, c0);
      if (type == GgmlType::kQ8_0) {
        BlockQ8_0* blk = reinterpret_cast<BlockQ8_0*>(row) + b;
        blk->d = FloatToF16(s);
        for (int i = 0; i < 32; ++i) {
          const int v = p.Code(r, c0 + i) - z;
          if (v < -128 || v > 127) {
            *why = absl::StrCat("code - zero point = ", v, " does not fit int8");
            return std::nullopt;
          }
          blk->qs[i] = static_cast<int8_t>(v);
        }
      } else {
        // Q4_0 / Q4_1 share the nibble order; Q4_1 adds m.
        uint8_t* qs;
        if (type == GgmlType::kQ4_0) {
          BlockQ4_0* blk = reinterpret_cast<BlockQ4_0*>(row) + b;
          blk->d = FloatToF16(s);
          qs = blk->qs;
        } else {
          BlockQ4_1* blk = reinterpret_cast<BlockQ4_1*>(row) + b;
          blk->d = FloatToF16(s);
          blk->m = FloatToF16(-static_cast<float>(8 + z) * s);
          qs = blk->qs;
        }
        for (int i = 0; i < 16; ++i) {
          const int lo = p.Code(r, c0 + i) + 8, hi = p.Code(r, c0 + i + 16) + 8;
          qs[i] = static_cast<uint8_t>(lo | (hi << 4));
        }
      }
    }
  }
  return out;
}

// ---- export --------------------------------------------------------------

struct Encoded {
  GgufTensorData data;
  GgufTensorReport report;
};

class Exporter {
 public:
  Exporter(const Model& m, const GgufExportOptions& o) : m_(m), o_(o) {}

  // A 2-D weight W [rows, cols] (fp32, row-major) of a layer of `kind`;
  // `packed` set for packed-int layers; `auto_type` the type "auto" picks.
  absl::StatusOr<Encoded> Weight(const std::string& name, const std::string& kind, const MatrixRM& w,
                                 const std::optional<PackedView>& packed, GgmlType auto_type, int64_t permute_head_dim) {
    const int64_t rows = w.rows(), cols = w.cols();
    Encoded e;
    e.report.name = name;
    e.report.source = kind;
    const GgmlType requested = o_.type.value_or(auto_type);
    e.report.requested = requested;
    GgmlType type = requested;
    std::string fallback;
    while (cols % BlockElems(type) != 0) {
      const GgmlType next = FallbackOf(type);
      absl::StrAppend(&fallback, fallback.empty() ? "" : ", ", "rows of ", cols, " values are not a multiple of the ",
                      GgmlTypeName(type), " block size ", BlockElems(type));
      if (!o_.allow_fallback) {
        return absl::InvalidArgumentError(absl::StrCat("GGUF export: tensor ", name, " [", rows, ", ", cols,
                                                       "]: cannot be stored as ", GgmlTypeName(type), ": ", fallback,
                                                       " (llama.cpp needs whole blocks per row)"));
      }
      type = next;
    }
    std::string bytes;
    std::string how;
    std::string why_not_exact;
    if (packed && IsQuantized(type)) {
      std::optional<std::string> exact = PackedAsGgml(*packed, type, &why_not_exact);
      if (exact) {
        bytes = std::move(*exact);
        how = "exact";
      }
    }
    if (bytes.empty()) {
      SQ_ASSIGN_OR_RETURN(bytes, QuantizeMatrix(type, w.data(), rows, cols));
      how = packed && IsQuantized(type) ? absl::StrCat("re-quantized (", why_not_exact, ")")
            : packed                  ? absl::StrCat("dequantized to ", GgmlTypeName(type))
            : type == GgmlType::kF32  ? "stored"
            : type == GgmlType::kF16  ? "converted"
                                      : "quantized";
    }
    if (!fallback.empty()) how = absl::StrCat("fallback (", fallback, "): ", how);
    e.report.how = how;
    e.report.type = type;
    e.report.rel_error = RelError(DequantizeAll(type, bytes, rows, cols), w.data(), rows * cols);
    if (permute_head_dim > 0) {
      bytes = PermuteRowsHalfSplitToInterleaved(bytes, rows, GgmlRowBytes(type, cols).value(), permute_head_dim);
    }
    e.data = GgufTensorData{name, {cols, rows}, type, std::move(bytes)};
    return e;
  }

  Encoded Vector(const std::string& name, const std::string& source, std::vector<float> v, int64_t permute_head_dim) {
    if (permute_head_dim > 0) {
      std::string src(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
      std::string dst =
          PermuteRowsHalfSplitToInterleaved(src, static_cast<int64_t>(v.size()), sizeof(float), permute_head_dim);
      std::memcpy(v.data(), dst.data(), dst.size());
    }
    Encoded e;
    e.report = {name, source, GgmlType::kF32, GgmlType::kF32, "stored", 0.0};
    e.data = GgufTensorData{name, {static_cast<int64_t>(v.size())},
                            GgmlType::kF32,
                            std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float))};
    return e;
  }

 private:
  const Model& m_;
  const GgufExportOptions& o_;
};

GgmlType AutoTypeOf(const LinearLayer& layer, const std::optional<PackedView>& packed) {
  if (packed) {
    // The smallest type that holds the codes as they are; Q8_0 (the least
    // added error) when none does.
    for (GgmlType t : {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0}) {
      std::string why;
      if (PackedAsGgml(*packed, t, &why)) return t;
    }
    return GgmlType::kQ8_0;
  }
  return layer.kind() == "dense_f16" ? GgmlType::kF16 : GgmlType::kF32;
}

absl::Status CheckExportable(const Model& model) {
  const ModelConfig& c = model.config;
  if (c.model_type != "llama" && c.model_type != "mistral") {
    return absl::UnimplementedError(absl::StrCat(
        "GGUF export: model_type \"", c.model_type,
        "\" is not supported yet (llama.cpp architecture \"llama\" covers llama and mistral without sliding window)"));
  }
  if (c.sliding_window > 0) {
    return absl::UnimplementedError(absl::StrCat("GGUF export: sliding-window attention (", c.sliding_window,
                                                 ") is not part of llama.cpp's \"llama\" architecture"));
  }
  if (c.head_dim % 2 != 0) return absl::InvalidArgumentError("GGUF export: head_dim must be even for RoPE");
  for (int l = 0; l < c.n_layers; ++l) {
    const TransformerBlock& b = model.blocks[l];
    const int64_t q = b.q_proj->out_features(), kv = b.k_proj->out_features();
    if (q % c.head_dim != 0 || kv % c.head_dim != 0 || kv == 0 || (q / c.head_dim) % (kv / c.head_dim) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("GGUF export: layer ", l, ": q_proj ", q, " / k_proj ", kv,
                                                     " rows are not whole GQA head groups of ", c.head_dim));
    }
  }
  return absl::OkStatus();
}

// The widths of every block, from its linears (the source of truth after
// structured pruning).
struct LayerWidths {
  std::vector<int64_t> heads, kv_heads, ff;
  bool uniform() const {
    for (size_t l = 1; l < heads.size(); ++l) {
      if (heads[l] != heads[0] || kv_heads[l] != kv_heads[0] || ff[l] != ff[0]) return false;
    }
    return true;
  }
};

LayerWidths WidthsOf(const Model& model) {
  LayerWidths w;
  for (const TransformerBlock& b : model.blocks) {
    w.heads.push_back(b.q_proj->out_features() / model.config.head_dim);
    w.kv_heads.push_back(b.k_proj->out_features() / model.config.head_dim);
    w.ff.push_back(b.gate_proj->out_features());
  }
  return w;
}

}  // namespace

absl::StatusOr<GgufExportResult> ExportGguf(const Model& model, const std::string& tokenizer_path,
                                           const std::string& out_path, const GgufExportOptions& options) {
  const ModelConfig& c = model.config;
  SQ_RETURN_IF_ERROR(c.Validate());
  SQ_RETURN_IF_ERROR(CheckExportable(model));
  SQ_ASSIGN_OR_RETURN(std::vector<GgufKV> tok_kv, GgufTokenizerMetadata(tokenizer_path, c.vocab_size));

  Exporter ex(model, options);
  std::vector<Encoded> enc;
  {
    const GgmlType auto_type = GgmlType::kF32;
    SQ_ASSIGN_OR_RETURN(Encoded e, ex.Weight("token_embd.weight", "embedding", model.embedding, std::nullopt,
                                             auto_type, 0));
    enc.push_back(std::move(e));
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const TransformerBlock& b = model.blocks[l];
    const std::string p = absl::StrCat("blk.", l, ".");
    enc.push_back(ex.Vector(p + "attn_norm.weight", "norm", b.attn_norm, 0));
    const LinearLayer* layers[] = {b.q_proj.get(),    b.k_proj.get(), b.v_proj.get(),  b.o_proj.get(),
                                   b.gate_proj.get(), b.up_proj.get(), b.down_proj.get()};
    for (int i = 0; i < 7; ++i) {
      const LinearLayer& layer = *layers[i];
      const std::string base = p + kBlockLinears[i].gguf;
      const int64_t permute = i < 2 ? c.head_dim : 0;  // q and k: HF half-split -> interleaved
      const std::optional<PackedView> packed = ReadPacked(layer);
      SQ_ASSIGN_OR_RETURN(Encoded e, ex.Weight(base + ".weight", layer.kind(), layer.DenseWeight(), packed,
                                               AutoTypeOf(layer, packed), permute));
      enc.push_back(std::move(e));
      if (!layer.bias().empty()) {
        enc.push_back(ex.Vector(base + ".bias", "bias", {layer.bias().begin(), layer.bias().end()}, permute));
      }
      if (i == 3) enc.push_back(ex.Vector(p + "ffn_norm.weight", "norm", b.ffn_norm, 0));
    }
  }
  enc.push_back(ex.Vector("output_norm.weight", "norm", model.final_norm, 0));
  if (model.lm_head != nullptr) {
    const std::optional<PackedView> packed = ReadPacked(*model.lm_head);
    SQ_ASSIGN_OR_RETURN(Encoded e, ex.Weight("output.weight", model.lm_head->kind(), model.lm_head->DenseWeight(),
                                             packed, AutoTypeOf(*model.lm_head, packed), 0));
    enc.push_back(std::move(e));
    if (!model.lm_head->bias().empty()) {
      return absl::UnimplementedError("GGUF export: an lm_head bias has no llama.cpp tensor");
    }
  }

  // general.file_type: the type most 2-D weights were written as.
  std::map<GgmlType, int64_t> count;
  bool any_quant = false;
  for (const Encoded& e : enc) {
    if (e.data.ne.size() == 2) count[e.data.type] += e.data.ne[0] * e.data.ne[1];
    any_quant = any_quant || IsQuantized(e.data.type);
  }
  GgmlType mostly = GgmlType::kF32;
  int64_t best = -1;
  for (const auto& [t, n] : count) {
    if (n > best) {
      best = n;
      mostly = t;
    }
  }
  GgufExportResult result;
  result.file_type = FileTypeOf(mostly);

  std::vector<GgufKV> kv;
  // Per-layer widths need llama.cpp's "deci" architecture (DeciLM /
  // Nemotron-NAS): the llama one sizes every block from one head count and
  // one feed-forward length.
  const LayerWidths widths = WidthsOf(model);
  const bool uniform = widths.uniform();
  const std::string a = uniform ? kGgufArchLlama : kGgufArchDeci;
  auto u32 = [](int64_t v) { return GgufValue::U32(static_cast<uint32_t>(v)); };
  auto width = [&](const std::vector<int64_t>& per_layer) {
    return uniform ? u32(per_layer[0]) : GgufValue::IntArray(GgufType::kInt32, per_layer);
  };
  kv.push_back({"general.architecture", GgufValue::Str(a)});
  if (!options.name.empty()) kv.push_back({"general.name", GgufValue::Str(options.name)});
  kv.push_back({"general.file_type", GgufValue::U32(result.file_type)});
  if (any_quant) kv.push_back({"general.quantization_version", GgufValue::U32(2)});
  kv.push_back({"general.alignment", GgufValue::U32(static_cast<uint32_t>(kGgufDefaultAlignment))});
  kv.push_back({a + ".vocab_size", u32(c.vocab_size)});
  kv.push_back({a + ".context_length", u32(c.max_seq_len)});
  kv.push_back({a + ".embedding_length", u32(c.dim)});
  kv.push_back({a + ".block_count", u32(c.n_layers)});
  kv.push_back({a + ".feed_forward_length", width(widths.ff)});
  kv.push_back({a + ".attention.head_count", width(widths.heads)});
  kv.push_back({a + ".attention.head_count_kv", width(widths.kv_heads)});
  kv.push_back({a + ".attention.key_length", u32(c.head_dim)});
  kv.push_back({a + ".attention.value_length", u32(c.head_dim)});
  kv.push_back({a + ".rope.dimension_count", u32(c.head_dim)});
  kv.push_back({a + ".rope.freq_base", GgufValue::F32(c.rope_theta)});
  kv.push_back({a + ".attention.layer_norm_rms_epsilon", GgufValue::F32(c.norm_eps)});
  for (GgufKV& t : tok_kv) {
    // The model's own BOS / EOS win over the tokenizer's defaults.
    if (t.key == "tokenizer.ggml.bos_token_id") t.value = u32(c.bos_token_id);
    if (t.key == "tokenizer.ggml.eos_token_id") t.value = u32(c.eos_token_id);
    kv.push_back(std::move(t));
  }

  std::vector<GgufTensorData> tensors;
  for (Encoded& e : enc) {
    result.tensors.push_back(e.report);
    tensors.push_back(std::move(e.data));
  }
  SQ_RETURN_IF_ERROR(WriteGguf(out_path, kv, tensors));
  std::error_code ec;
  result.bytes = std::filesystem::file_size(out_path, ec);
  return result;
}

// ---- import --------------------------------------------------------------

namespace {

// Tensors of a Q4_0 / Q8_0 linear weight kept as blocks (GgufImportOptions::
// keep_ggml_blocks): "<module>.weight_blocks" U8 [rows, row bytes] and
// "<module>.weight_shape" I64 {rows, cols}, the stored layout of the
// gguf_q4_0 / gguf_q8_0 kinds. head_dim > 0 (q/k): rows go from llama.cpp's
// interleaved to the half-split layout as whole rows, engine row
// h*hd + j*hd/2 + i <- file row h*hd + 2i + j (the inverse of
// PermuteRowsHalfSplitToInterleaved); otherwise the view points into the
// file's mapping (no copy).
absl::Status AddBlockLinear(const GgufFile& f, const GgufTensorInfo& t, const std::string& module, int64_t head_dim,
                            CheckpointTensors& ck) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(f.path, ": GGUF tensor ", t.name, ": ", what));
  };
  const int64_t cols = t.ne[0], rows = t.ne[1];
  const int64_t row_bytes = GgmlRowBytes(t.type, cols).value();
  const int64_t block_bytes = t.type == GgmlType::kQ4_0 ? int64_t{sizeof(BlockQ4_0)} : int64_t{sizeof(BlockQ8_0)};
  // The reader checked nbytes against the type and ne; a mismatch here
  // would be a reader bug, still refused rather than read past.
  if (static_cast<int64_t>(t.nbytes) != rows * row_bytes) {
    return bad(absl::StrCat(t.nbytes, " bytes of blocks, expected ", rows * row_bytes, " for [", rows, ", ", cols,
                            "]"));
  }
  // d (the block's first field, fp16) must be finite: the fp32 path refuses
  // the NaN / Inf weights a non-finite scale gives.
  const int64_t blocks_per_row = cols / BlockElems(t.type);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < blocks_per_row; ++b) {
      GgmlHalf d;
      std::memcpy(&d, t.data + r * row_bytes + b * block_bytes, sizeof(d));
      if ((d & 0x7C00) == 0x7C00) {
        return bad(absl::StrCat("row ", r, " block ", b, " has a non-finite scale (fp16 bits 0x",
                                absl::Hex(d, absl::kZeroPad4), ")"));
      }
    }
  }
  TensorView blocks;
  blocks.dtype = DType::kU8;
  blocks.shape = {rows, row_bytes};
  blocks.nbytes = static_cast<size_t>(rows * row_bytes);
  if (head_dim > 0) {
    if (rows % head_dim != 0 || head_dim % 2 != 0) {
      return bad(absl::StrCat(rows, " rows are not whole heads of an even head_dim ", head_dim));
    }
    auto permuted = std::make_shared<std::vector<uint8_t>>(blocks.nbytes);
    const int64_t half = head_dim / 2;
    for (int64_t h = 0; h < rows / head_dim; ++h) {
      for (int64_t i = 0; i < half; ++i) {
        for (int64_t j = 0; j < 2; ++j) {
          std::memcpy(permuted->data() + (h * head_dim + j * half + i) * row_bytes,
                      t.data + (h * head_dim + 2 * i + j) * row_bytes, static_cast<size_t>(row_bytes));
        }
      }
    }
    blocks.data = permuted->data();
    blocks.owner = std::move(permuted);
  } else {
    blocks.data = t.data;
    blocks.owner = f.owner;
  }
  auto shape_values = std::make_shared<std::vector<int64_t>>(std::vector<int64_t>{rows, cols});
  TensorView shape;
  shape.dtype = DType::kI64;
  shape.shape = {2};
  shape.data = shape_values->data();
  shape.nbytes = 2 * sizeof(int64_t);
  shape.owner = std::move(shape_values);
  ck.tensors[module + ".weight_blocks"] = SourceTensor{std::move(blocks), f.path};
  ck.tensors[module + ".weight_shape"] = SourceTensor{std::move(shape), f.path};
  ck.linear_kinds[module] = t.type == GgmlType::kQ4_0 ? kGgufQ4_0LinearKind : kGgufQ8_0LinearKind;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CheckpointTensors> GgufToCheckpoint(const GgufFile& f) { return GgufToCheckpoint(f, {}); }


absl::StatusOr<CheckpointTensors> GgufToCheckpoint(const GgufFile& f, const GgufImportOptions& options) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(f.path, ": GGUF ", what));
  };
  SQ_ASSIGN_OR_RETURN(std::string arch, f.GetString("general.architecture"));
  if (arch != kGgufArchLlama && arch != kGgufArchDeci) {
    return absl::UnimplementedError(
        absl::StrCat(f.path, ": GGUF general.architecture \"", arch, "\" is not supported (llama, deci)"));
  }
  const std::string p = arch + ".";
  CheckpointTensors ck;
  ModelConfig& c = ck.config;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  auto get_int = [&](const std::string& key, int* out, std::optional<int64_t> dflt) -> absl::Status {
    absl::StatusOr<int64_t> v = dflt ? f.GetIntOr(key, *dflt) : f.GetInt(key);
    if (!v.ok()) return v.status();
    if (*v <= 0 || *v > (1 << 30)) return bad(absl::StrCat("metadata ", key, " = ", *v, " is out of range"));
    *out = static_cast<int>(*v);
    return absl::OkStatus();
  };
  SQ_RETURN_IF_ERROR(get_int(p + "embedding_length", &c.dim, std::nullopt));
  SQ_RETURN_IF_ERROR(get_int(p + "block_count", &c.n_layers, std::nullopt));
  // Each block has 9 tensors at least; per-layer width tables and the name
  // table below are sized by block_count, so it must be plausible for this
  // file before anything is built from it (10^9 blocks would allocate GBs).
  if (static_cast<uint64_t>(c.n_layers) > f.tensors.size()) {
    return bad(absl::StrCat("metadata ", p, "block_count = ", c.n_layers, " but the file has only ", f.tensors.size(),
                            " tensors"));
  }
  // Widths: one integer, or (llama.cpp's get_key_or_arr) an int32 / uint32
  // array of block_count entries. The config takes the largest; per-layer
  // entries go to ModelConfig::layer_* when they differ.
  auto get_widths = [&](const std::string& key, int* out, std::vector<int>* per_layer,
                        const std::vector<int>* dflt) -> absl::Status {
    const GgufValue* v = f.Find(key);
    if (v == nullptr && dflt != nullptr) {
      *per_layer = *dflt;
      if (per_layer->empty()) return absl::OkStatus();
      *out = *std::max_element(per_layer->begin(), per_layer->end());
      return absl::OkStatus();
    }
    if (v == nullptr || !v->is_array()) {
      int scalar = 0;
      SQ_RETURN_IF_ERROR(get_int(key, &scalar, dflt != nullptr ? std::optional<int64_t>(*out) : std::nullopt));
      *out = scalar;
      per_layer->assign(static_cast<size_t>(c.n_layers), scalar);
      return absl::OkStatus();
    }
    if (v->elem_type != GgufType::kInt32 && v->elem_type != GgufType::kUint32) {
      return bad(absl::StrCat("metadata ", key, ": an array of ", GgufTypeName(v->elem_type),
                              ", expected int32 or uint32 (one per block)"));
    }
    if (static_cast<int64_t>(v->ints.size()) != c.n_layers) {
      return bad(absl::StrCat("metadata ", key, ": ", v->ints.size(), " entries, expected block_count = ", c.n_layers));
    }
    per_layer->clear();
    for (size_t l = 0; l < v->ints.size(); ++l) {
      const int64_t x = v->ints[l];
      if (x == 0) {
        return absl::UnimplementedError(absl::StrCat(
            f.path, ": GGUF metadata ", key, "[", l, "] = 0 (a block without attention or without a feed-forward "
            "network, as in DeciLM) is not supported"));
      }
      if (x < 0 || x > (1 << 30)) return bad(absl::StrCat("metadata ", key, "[", l, "] = ", x, " is out of range"));
      per_layer->push_back(static_cast<int>(x));
    }
    *out = *std::max_element(per_layer->begin(), per_layer->end());
    return absl::OkStatus();
  };
  std::vector<int> ff, heads, kv_heads;
  SQ_RETURN_IF_ERROR(get_widths(p + "feed_forward_length", &c.hidden_dim, &ff, nullptr));
  SQ_RETURN_IF_ERROR(get_widths(p + "attention.head_count", &c.n_heads, &heads, nullptr));
  c.n_kv_heads = c.n_heads;
  SQ_RETURN_IF_ERROR(get_widths(p + "attention.head_count_kv", &c.n_kv_heads, &kv_heads, &heads));
  auto all_equal = [](const std::vector<int>& v) {
    return std::all_of(v.begin(), v.end(), [&](int x) { return x == v[0]; });
  };
  if (!all_equal(ff) || !all_equal(heads) || !all_equal(kv_heads)) {
    c.layer_hidden_dim = ff;
    c.layer_n_heads = heads;
    c.layer_n_kv_heads = kv_heads;
  }
  SQ_RETURN_IF_ERROR(get_int(p + "context_length", &c.max_seq_len, std::nullopt));
  SQ_RETURN_IF_ERROR(get_int(p + "attention.key_length", &c.head_dim, c.dim / c.n_heads));
  int value_length = 0, rope_dims = 0;
  SQ_RETURN_IF_ERROR(get_int(p + "attention.value_length", &value_length, c.head_dim));
  SQ_RETURN_IF_ERROR(get_int(p + "rope.dimension_count", &rope_dims, c.head_dim));
  if (value_length != c.head_dim || rope_dims != c.head_dim) {
    return absl::UnimplementedError(absl::StrCat(f.path, ": GGUF value_length ", value_length, " / rope dimension ",
                                                 rope_dims, " differ from key_length ", c.head_dim,
                                                 " (partial RoPE is not supported)"));
  }
  if (f.Find(p + "rope.scaling.type") != nullptr) {
    SQ_ASSIGN_OR_RETURN(std::string t, f.GetString(p + "rope.scaling.type"));
    if (t != "none") return absl::UnimplementedError(absl::StrCat(f.path, ": GGUF rope scaling \"", t, "\""));
  }
  SQ_ASSIGN_OR_RETURN(double theta, f.GetFloatOr(p + "rope.freq_base", 10000.0));
  SQ_ASSIGN_OR_RETURN(double eps, f.GetFloatOr(p + "attention.layer_norm_rms_epsilon", 1e-5));
  // Checked before the narrowing to float (out of float range is undefined).
  if (!(theta > 0 && theta <= 1e30)) return bad(absl::StrCat("metadata ", p, "rope.freq_base = ", theta, " is out of range"));
  if (!(eps > 0 && eps < 1)) {
    return bad(absl::StrCat("metadata ", p, "attention.layer_norm_rms_epsilon = ", eps, " is out of range (0, 1)"));
  }
  c.rope_theta = static_cast<float>(theta);
  c.norm_eps = static_cast<float>(eps);
  const GgufTensorInfo* embd = f.FindTensor("token_embd.weight");
  if (embd == nullptr) return bad("tensor token_embd.weight: missing");
  if (embd->ne.size() != 2) return bad("tensor token_embd.weight: not 2-D");
  {
    int64_t vocab = embd->ne[1];
    SQ_ASSIGN_OR_RETURN(vocab, f.GetIntOr(p + "vocab_size", vocab));
    if (vocab <= 0 || vocab > (1 << 30)) return bad("vocab_size out of range");
    c.vocab_size = static_cast<int>(vocab);
  }
  c.tie_word_embeddings = f.FindTensor("output.weight") == nullptr;
  SQ_ASSIGN_OR_RETURN(int64_t bos, f.GetIntOr("tokenizer.ggml.bos_token_id", 1));
  SQ_ASSIGN_OR_RETURN(int64_t eos, f.GetIntOr("tokenizer.ggml.eos_token_id", 2));
  c.bos_token_id = static_cast<int>(bos);
  c.eos_token_id = static_cast<int>(eos);
  SQ_RETURN_IF_ERROR(c.Validate());

  // name -> HF name, and whether q/k rows need un-permuting.
  std::map<std::string, std::pair<std::string, bool>> names;
  names["token_embd.weight"] = {"model.embed_tokens.weight", false};
  names["output_norm.weight"] = {"model.norm.weight", false};
  names["output.weight"] = {"lm_head.weight", false};
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string g = absl::StrCat("blk.", l, "."), h = absl::StrCat("model.layers.", l, ".");
    for (const NameMap& n : kBlockNorms) names[g + n.gguf + ".weight"] = {h + n.hf + ".weight", false};
    for (int i = 0; i < 7; ++i) {
      for (const char* s : {".weight", ".bias"}) {
        names[g + kBlockLinears[i].gguf + s] = {h + kBlockLinears[i].hf + s, i < 2};
      }
    }
  }
  for (const GgufTensorInfo& t : f.tensors) {
    auto it = names.find(t.name);
    if (it == names.end()) {
      return bad(absl::StrCat("tensor ", t.name, ": not a tensor of a llama model with ", c.n_layers,
                              " blocks that this reader knows"));
    }
    const std::string& hf = it->second.first;
    if (t.name == "token_embd.weight" && t.ne.size() == 2) {
      // Kept as the file stores it (a view into the mapping); BuildModel
      // dequantizes it straight into the model's fp32 table.
      const int64_t row_bytes = GgmlRowBytes(t.type, t.ne[0]).value();
      TensorView rows;
      rows.dtype = DType::kU8;
      rows.shape = {t.ne[1], row_bytes};
      rows.data = t.data;
      rows.nbytes = static_cast<size_t>(t.ne[1] * row_bytes);
      rows.owner = f.owner;
      if (rows.nbytes != t.nbytes) return bad(absl::StrCat("tensor ", t.name, ": ", t.nbytes, " bytes, expected ", rows.nbytes));
      auto type_value = std::make_shared<int64_t>(static_cast<int64_t>(t.type));
      TensorView type;
      type.dtype = DType::kI64;
      type.shape = {1};
      type.data = type_value.get();
      type.nbytes = sizeof(int64_t);
      type.owner = std::move(type_value);
      ck.tensors[kEmbeddingGgmlRows] = SourceTensor{std::move(rows), f.path};
      ck.tensors[kEmbeddingGgmlType] = SourceTensor{std::move(type), f.path};
      continue;
    }
    const bool linear_weight = absl::EndsWith(hf, "_proj.weight") || hf == "lm_head.weight";
    if (options.keep_ggml_blocks && linear_weight && t.ne.size() == 2 &&
        (t.type == GgmlType::kQ4_0 || t.type == GgmlType::kQ8_0)) {
      const std::string module = hf.substr(0, hf.size() - std::string(".weight").size());
      SQ_RETURN_IF_ERROR(AddBlockLinear(f, t, module, it->second.second ? c.head_dim : 0, ck));
      continue;
    }
    const int64_t cols = t.ne[0], rows = t.numel() / cols;
    std::vector<float> values(static_cast<size_t>(rows * cols));
    const int64_t row_bytes = GgmlRowBytes(t.type, cols).value();
    for (int64_t r = 0; r < rows; ++r) DequantizeRow(t.type, t.data + r * row_bytes, cols, values.data() + r * cols);
    if (it->second.second) {
      const bool is_bias = absl::EndsWith(t.name, ".bias");
      const int64_t n_rows = is_bias ? cols : rows, n_cols = is_bias ? 1 : cols;
      if (n_rows % c.head_dim != 0) {
        return bad(absl::StrCat("tensor ", t.name, ": ", n_rows, " rows are not whole heads of ", c.head_dim));
      }
      std::vector<float> permuted(values.size());
      PermuteInterleavedToHalfSplit(values.data(), permuted.data(), n_rows / c.head_dim, c.head_dim, n_cols);
      values.swap(permuted);
    }
    ck.tensors[it->second.first] = SourceTensor{OwnedF32(std::move(values), t.shape()), f.path};
  }
  return ck;
}

absl::StatusOr<GgufModel> LoadGgufModel(const std::string& path) { return LoadGgufModel(path, {}); }

absl::StatusOr<GgufModel> LoadGgufModel(const std::string& path, const GgufImportOptions& options) {
  SQ_ASSIGN_OR_RETURN(GgufFile f, ReadGguf(path));
  SQ_ASSIGN_OR_RETURN(CheckpointTensors ck, GgufToCheckpoint(f, options));
  GgufModel out;
  SQ_ASSIGN_OR_RETURN(out.model, BuildModel(std::move(ck)));
  SQ_ASSIGN_OR_RETURN(out.tokenizer, TokenizerFromGguf(f));
  return out;
}

}  // namespace squeeze
