#include "workers/engine/formats/checkpoint_tensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/ggml_blocks.h"
#include "workers/engine/formats/linear_loaders.h"
#include "workers/engine/model/dense_linear.h"

namespace squeeze {
namespace {

// Allowed output widths of a linear layer: exactly `exact` when > 0, else a
// positive multiple of `unit` up to `max` (structured pruning keeps whole
// heads / channels).
struct Rows {
  int64_t max = 0;
  int64_t unit = 1;
  int64_t exact = 0;

  bool Allows(int64_t out) const {
    if (exact > 0) return out == exact;
    return out > 0 && out <= max && out % unit == 0;
  }
  std::string Expected(int64_t in) const {
    if (exact > 0) return ShapeString({exact, in});
    const std::string note = unit > 1 ? absl::StrCat(" (or fewer whole heads of ", unit, " rows)")
                                      : std::string(" (or fewer rows, if pruned)");
    return ShapeString({max, in}) + note;
  }
};

// Index of the first NaN / Inf element of a float view (exponent bits all
// ones), -1 when all are finite. Reads through memcpy: data may be unaligned.
// Blocks of 1024 are tested branch-free (vectorizable), then searched.
template <typename Bits>
int64_t FirstAllOnes(const uint8_t* p, int64_t n, Bits mask) {
  constexpr int64_t kBlock = 1024;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t m = std::min(kBlock, n - b);
    bool any = false;
    for (int64_t i = 0; i < m; ++i) {
      Bits bits;
      std::memcpy(&bits, p + (b + i) * sizeof(Bits), sizeof(Bits));
      any |= (bits & mask) == mask;
    }
    if (!any) continue;
    for (int64_t i = 0; i < m; ++i) {
      Bits bits;
      std::memcpy(&bits, p + (b + i) * sizeof(Bits), sizeof(Bits));
      if ((bits & mask) == mask) return b + i;
    }
  }
  return -1;
}

int64_t FirstNonFinite(const TensorView& v) {
  const auto* p = static_cast<const uint8_t*>(v.data);
  switch (v.dtype) {
    case DType::kF32: return FirstAllOnes<uint32_t>(p, v.numel(), 0x7f800000u);
    case DType::kF16: return FirstAllOnes<uint16_t>(p, v.numel(), 0x7c00);
    case DType::kBF16: return FirstAllOnes<uint16_t>(p, v.numel(), 0x7f80);
    default: return -1;
  }
}

// The one-element view of element `i` of `v` (same dtype).
TensorView ElementView(const TensorView& v, int64_t i) {
  TensorView e;
  e.dtype = v.dtype;
  e.shape = {1};
  e.nbytes = DTypeSize(v.dtype);
  e.data = static_cast<const uint8_t*>(v.data) + i * e.nbytes;
  return e;
}

class Builder {
 public:
  explicit Builder(CheckpointTensors& ck) : ck_(ck) {}

  std::string FileOf(const std::string& name) const {
    auto it = ck_.tensors.find(name);
    return it != ck_.tensors.end() ? it->second.file : DefaultFile();
  }
  std::string DefaultFile() const {
    return ck_.tensors.empty() ? std::string("checkpoint") : ck_.tensors.begin()->second.file;
  }

  absl::Status TensorError(const std::string& name, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(FileOf(name), ": tensor ", name, ": ", what));
  }

  // The tensor `name` (InvalidArgument when absent); marks it used.
  absl::StatusOr<const TensorView*> Get(const std::string& name) {
    auto it = ck_.tensors.find(name);
    if (it == ck_.tensors.end()) return TensorError(name, "missing from the checkpoint");
    used_.insert(name);
    return &it->second.view;
  }
  bool Has(const std::string& name) const { return ck_.tensors.count(name) > 0; }

  // A float dtype and finite values (NaN / Inf weights are refused: they
  // would poison every calibration statistic and output downstream).
  absl::Status CheckFloat(const std::string& name, const TensorView& v) const {
    if (v.dtype != DType::kF32 && v.dtype != DType::kF16 && v.dtype != DType::kBF16) {
      return TensorError(name, absl::StrCat("dtype ", DTypeName(v.dtype), ", expected F32, F16 or BF16"));
    }
    if (static_cast<size_t>(v.numel()) * DTypeSize(v.dtype) != v.nbytes) {
      return TensorError(name, absl::StrCat("shape ", ShapeString(v.shape), " does not match ", v.nbytes, " bytes"));
    }
    const int64_t bad = FirstNonFinite(v);
    if (bad >= 0) {
      const std::vector<float> one = *ToFloat32(ElementView(v, bad));
      return TensorError(name, absl::StrCat("element ", bad, " of ", ShapeString(v.shape), " is ", one[0],
                                            " (non-finite weights are refused)"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<const TensorView*> GetShaped(const std::string& name, const std::vector<int64_t>& expected) {
    SQ_ASSIGN_OR_RETURN(const TensorView* v, Get(name));
    SQ_RETURN_IF_ERROR(CheckFloat(name, *v));
    if (v->shape != expected) {
      return TensorError(name,
                         absl::StrCat("shape ", ShapeString(v->shape), ", expected ", ShapeString(expected)));
    }
    return v;
  }

  // The embedding from GGUF rows (kEmbeddingGgmlRows / kEmbeddingGgmlType),
  // dequantized row by row straight into *out: no fp32 copy of the whole
  // table beside it. Values must be finite, as for float tensors.
  absl::Status GgmlEmbedding(int64_t vocab, int64_t dim, MatrixRM* out) {
    SQ_ASSIGN_OR_RETURN(const TensorView* rows, Get(kEmbeddingGgmlRows));
    SQ_ASSIGN_OR_RETURN(const TensorView* type_v, Get(kEmbeddingGgmlType));
    if (type_v->dtype != DType::kI64 || type_v->numel() != 1 || type_v->nbytes != sizeof(int64_t)) {
      return TensorError(kEmbeddingGgmlType, "expected one I64 (the ggml type)");
    }
    int64_t type_id = 0;
    std::memcpy(&type_id, type_v->data, sizeof(type_id));
    const auto type = static_cast<GgmlType>(type_id);
    absl::StatusOr<int64_t> row_bytes = GgmlRowBytes(type, dim);
    if (!row_bytes.ok()) return TensorError(kEmbeddingGgmlRows, row_bytes.status().message());
    if (rows->dtype != DType::kU8 || rows->shape != std::vector<int64_t>{vocab, *row_bytes} ||
        rows->nbytes != static_cast<size_t>(vocab * *row_bytes)) {
      return TensorError(kEmbeddingGgmlRows,
                         absl::StrCat(DTypeName(rows->dtype), " ", ShapeString(rows->shape), ", expected U8 [", vocab,
                                      ", ", *row_bytes, "] (", GgmlTypeName(type), " rows of ", dim, ")"));
    }
    out->resize(vocab, dim);
    const auto* src = static_cast<const uint8_t*>(rows->data);
    for (int64_t r = 0; r < vocab; ++r) {
      float* dst = out->data() + r * dim;
      DequantizeRow(type, src + r * *row_bytes, dim, dst);
      for (int64_t j = 0; j < dim; ++j) {
        if (!std::isfinite(dst[j])) {
          return TensorError(kEmbeddingGgmlRows, absl::StrCat("row ", r, " element ", j, " is ", dst[j],
                                                              " (non-finite weights are refused)"));
        }
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<float>> Vector(const std::string& name, int64_t n) {
    SQ_ASSIGN_OR_RETURN(const TensorView* v, GetShaped(name, {n}));
    return ToFloat32(*v, absl::StrCat(FileOf(name), ": tensor ", name));
  }

  // A linear module: dense ("<module>.weight" [+ ".bias"]) or a registered
  // compressed kind. Its [out, in] must satisfy `rows` and `in`; q/k/v biases
  // are required when `bias_required`.
  absl::StatusOr<std::unique_ptr<LinearLayer>> Linear(const std::string& module, Rows rows, int64_t in,
                                                      bool bias_required) {
    auto kind_it = ck_.linear_kinds.find(module);
    if (kind_it != ck_.linear_kinds.end() && !absl::StartsWith(kind_it->second, "dense_")) {
      return CompressedLinear(module, kind_it->second, rows, in, bias_required);
    }
    const std::string wname = module + ".weight";
    SQ_ASSIGN_OR_RETURN(const TensorView* w, Get(wname));
    SQ_RETURN_IF_ERROR(CheckFloat(wname, *w));
    if (w->shape.size() != 2 || w->shape[1] != in || !rows.Allows(w->shape[0])) {
      return TensorError(wname,
                         absl::StrCat("shape ", ShapeString(w->shape), ", expected ", rows.Expected(in)));
    }
    const int64_t out = w->shape[0];
    std::vector<float> bias;
    const std::string bname = module + ".bias";
    if (bias_required || Has(bname)) {
      SQ_ASSIGN_OR_RETURN(bias, Vector(bname, out));
    }
    auto layer = DenseLinear::Create(*w, std::move(bias));
    if (!layer.ok()) return TensorError(wname, layer.status().message());
    return std::unique_ptr<LinearLayer>(std::move(layer).value());
  }

  absl::Status CheckAllUsed() const {
    for (const auto& [name, t] : ck_.tensors) {
      if (used_.count(name) || absl::EndsWith(name, ".rotary_emb.inv_freq")) continue;
      if (name == "lm_head.weight" && ck_.config.tie_word_embeddings) continue;
      return absl::InvalidArgumentError(absl::StrCat(t.file, ": tensor ", name,
                                                     ": unexpected tensor (not part of a ",
                                                     ck_.config.architecture, " with this config)"));
    }
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<std::unique_ptr<LinearLayer>> CompressedLinear(const std::string& module,
                                                                const std::string& kind, Rows rows,
                                                                int64_t in, bool bias_required) {
    const std::string prefix = module + ".";
    std::map<std::string, TensorView> parts;
    std::string file = DefaultFile();
    for (auto it = ck_.tensors.lower_bound(prefix);
         it != ck_.tensors.end() && absl::StartsWith(it->first, prefix); ++it) {
      const std::string suffix = it->first.substr(prefix.size());
      if (absl::StrContains(suffix, ".")) continue;  // a submodule, not this layer's tensor
      parts[suffix] = it->second.view;
      file = it->second.file;
      used_.insert(it->first);
    }
    auto fail = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": module ", module, " (kind ", kind, "): ", what));
    };
    if (parts.empty()) return fail("no tensors");
    LinearLoader loader = FindLinearLoader(kind);
    if (!loader) return fail("no loader is registered for this kind (see linear_loaders.h)");
    auto layer = loader(kind, parts);
    if (!layer.ok()) return fail(layer.status().message());
    if (*layer == nullptr) return fail("loader returned no layer");
    const int64_t out = (*layer)->out_features();
    if ((*layer)->in_features() != in || !rows.Allows(out)) {
      return fail(absl::StrCat("shape ", ShapeString({out, (*layer)->in_features()}), ", expected ",
                               rows.Expected(in)));
    }
    if (bias_required && static_cast<int64_t>((*layer)->bias().size()) != out) {
      return fail(absl::StrCat("has ", (*layer)->bias().size(), " bias values, expected ", out));
    }
    return std::move(layer).value();
  }

  CheckpointTensors& ck_;
  std::set<std::string> used_;
};

}  // namespace

absl::StatusOr<Model> BuildModel(CheckpointTensors ck) {
  const ModelConfig& c = ck.config;
  Builder b(ck);
  if (absl::Status s = c.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(b.DefaultFile(), ": ", s.message()));
  }
  // Every block has at least its two norms and seven linears: a config with
  // more layers than the checkpoint has tensors is refused before anything is
  // sized by n_layers.
  if (static_cast<uint64_t>(c.n_layers) > ck.tensors.size()) {
    return absl::InvalidArgumentError(absl::StrCat(b.DefaultFile(), ": config n_layers = ", c.n_layers,
                                                   " but the checkpoint has only ", ck.tensors.size(), " tensors"));
  }
  Model m;
  m.config = c;

  if (b.Has(kEmbeddingGgmlRows)) {
    SQ_RETURN_IF_ERROR(b.GgmlEmbedding(c.vocab_size, c.dim, &m.embedding));
  } else {
    const std::string name = "model.embed_tokens.weight";
    SQ_ASSIGN_OR_RETURN(const TensorView* v, b.GetShaped(name, {c.vocab_size, c.dim}));
    if (v->dtype == DType::kF32) {
      // Copied straight from the view: no fp32 temporary beside the
      // checkpoint's tensor and the model's matrix (a third copy of the
      // largest tensor at load).
      m.embedding = ConstMapMatrixRM(static_cast<const float*>(v->data), c.vocab_size, c.dim);
    } else {
      SQ_ASSIGN_OR_RETURN(std::vector<float> values,
                          ToFloat32(*v, absl::StrCat(b.FileOf(name), ": tensor ", name)));
      m.embedding = ConstMapMatrixRM(values.data(), c.vocab_size, c.dim);
    }
  }

  const int64_t hd = c.head_dim;
  const bool qkv_bias = c.attention_bias;
  m.blocks.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    TransformerBlock& blk = m.blocks[l];
    const std::string p = absl::StrCat("model.layers.", l, ".");
    SQ_ASSIGN_OR_RETURN(blk.attn_norm, b.Vector(p + "input_layernorm.weight", c.dim));
    SQ_ASSIGN_OR_RETURN(blk.ffn_norm, b.Vector(p + "post_attention_layernorm.weight", c.dim));

    const std::string q = p + "self_attn.q_proj", k = p + "self_attn.k_proj";
    // With per-layer widths (config "squeeze_layer_widths") the shapes are exact.
    const bool per_layer = !c.layer_n_heads.empty();
    const Rows q_rows = per_layer ? Rows{0, 1, c.layer_n_heads[l] * hd} : Rows{c.n_heads * hd, hd};
    const Rows kv_rows = per_layer ? Rows{0, 1, c.layer_n_kv_heads[l] * hd} : Rows{c.n_kv_heads * hd, hd};
    const Rows ffn_rows = per_layer ? Rows{0, 1, c.layer_hidden_dim[l]} : Rows{c.hidden_dim, 1};
    SQ_ASSIGN_OR_RETURN(blk.q_proj, b.Linear(q, q_rows, c.dim, qkv_bias));
    SQ_ASSIGN_OR_RETURN(blk.k_proj, b.Linear(k, kv_rows, c.dim, qkv_bias));
    const int64_t q_out = blk.q_proj->out_features(), kv_out = blk.k_proj->out_features();
    if ((q_out / hd) % (kv_out / hd) != 0) {
      return b.TensorError(k + ".weight",
                           absl::StrCat("has ", kv_out / hd, " key/value heads, which does not divide the ",
                                        q_out / hd, " query heads of ", q));
    }
    SQ_ASSIGN_OR_RETURN(blk.v_proj, b.Linear(p + "self_attn.v_proj", Rows{0, 1, kv_out}, c.dim, qkv_bias));
    SQ_ASSIGN_OR_RETURN(blk.o_proj, b.Linear(p + "self_attn.o_proj", Rows{0, 1, c.dim}, q_out, false));

    SQ_ASSIGN_OR_RETURN(blk.gate_proj, b.Linear(p + "mlp.gate_proj", ffn_rows, c.dim, false));
    const int64_t h = blk.gate_proj->out_features();
    SQ_ASSIGN_OR_RETURN(blk.up_proj, b.Linear(p + "mlp.up_proj", Rows{0, 1, h}, c.dim, false));
    SQ_ASSIGN_OR_RETURN(blk.down_proj, b.Linear(p + "mlp.down_proj", Rows{0, 1, c.dim}, h, false));
  }

  SQ_ASSIGN_OR_RETURN(m.final_norm, b.Vector("model.norm.weight", c.dim));
  if (!c.tie_word_embeddings) {
    SQ_ASSIGN_OR_RETURN(m.lm_head, b.Linear("lm_head", Rows{0, 1, c.vocab_size}, c.dim, false));
  }
  SQ_RETURN_IF_ERROR(b.CheckAllUsed());
  return m;
}

}  // namespace squeeze
