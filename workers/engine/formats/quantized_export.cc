#include "workers/engine/formats/quantized_export.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/half.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/hf_checkpoint.h"
#include "workers/engine/formats/hf_config.h"
#include "workers/engine/formats/int_weight.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;

TensorView FloatView(const float* data, std::vector<int64_t> shape) {
  TensorView v;
  v.dtype = DType::kF32;
  v.shape = std::move(shape);
  v.data = data;
  v.nbytes = static_cast<size_t>(v.numel()) * sizeof(float);
  return v;
}

}  // namespace

const char* TorchDtypeName(DType dtype) {
  switch (dtype) {
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    default: return "float32";
  }
}

float RoundTo(DType dtype, float v) {
  switch (dtype) {
    case DType::kF16: return F16ToFloat(FloatToF16(v));
    case DType::kBF16: return Bf16ToFloat(FloatToBf16(v));
    default: return v;
  }
}

double PackedWrittenRelativeError(const IntWeight& w, DType scale_dtype, const MatrixRM& reference) {
  IntWeight written = w;
  for (float& s : written.scales) s = RoundTo(scale_dtype, s);
  return WrittenRelativeError(written.Dequantize(), reference);
}

std::vector<float> ScalesGroupMajor(const IntWeight& w) {
  const int64_t ng = w.groups();
  std::vector<float> scales(static_cast<size_t>(ng * w.out));
  for (int64_t g = 0; g < ng; ++g) {
    for (int64_t j = 0; j < w.out; ++j) scales[g * w.out + j] = w.Scale(j, g);
  }
  return scales;
}

double WrittenRelativeError(const MatrixRM& a, const MatrixRM& b) {
  const double den = b.cast<double>().norm();
  const double num = (a.cast<double>() - b.cast<double>()).norm();
  return den == 0.0 ? (num == 0.0 ? 0.0 : INFINITY) : num / den;
}

std::vector<SafetensorsEntry> DenseLinearEntries(const std::string& module, const LinearLayer& layer, DType dtype) {
  std::vector<SafetensorsEntry> out;
  MatrixRM w = layer.DenseWeight();
  std::vector<float> values(w.data(), w.data() + w.size());
  out.push_back(StoredAs(module + ".weight", OwnedF32(std::move(values), {w.rows(), w.cols()}), dtype));
  absl::Span<const float> b = layer.bias();
  if (!b.empty()) {
    out.push_back(StoredAs(module + ".bias",
                           OwnedF32(std::vector<float>(b.begin(), b.end()), {static_cast<int64_t>(b.size())}), dtype));
  }
  return out;
}

absl::StatusOr<int64_t> WriteQuantizedHfDir(const Model& model, const std::string& dir, DType dense_dtype,
                                            std::vector<SafetensorsEntry> entries,
                                            const std::string& quantization_config_json,
                                            const std::map<std::string, std::string>& extra_files,
                                            int64_t max_shard_bytes, int* shards) {
  const ModelConfig& c = model.config;
  SQ_RETURN_IF_ERROR(c.Validate());
  if (model.embedding.rows() != c.vocab_size || model.embedding.cols() != c.dim ||
      static_cast<int>(model.blocks.size()) != c.n_layers || static_cast<int64_t>(model.final_norm.size()) != c.dim) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": the model does not match its config"));
  }
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(
      HfConfigJson(EffectiveConfig(model), TorchDtypeName(dense_dtype)), nullptr, false);
  nlohmann::ordered_json qc = nlohmann::ordered_json::parse(quantization_config_json, nullptr, false);
  if (config.is_discarded() || qc.is_discarded() || !qc.is_object()) {
    return absl::InternalError(absl::StrCat(dir, ": could not build config.json"));
  }
  config["quantization_config"] = qc;

  entries.push_back(StoredAs("model.embed_tokens.weight", FloatView(model.embedding.data(), {c.vocab_size, c.dim}),
                             dense_dtype));
  for (int l = 0; l < c.n_layers; ++l) {
    const TransformerBlock& b = model.blocks[l];
    const std::string p = absl::StrCat("model.layers.", l, ".");
    entries.push_back(StoredAs(p + "input_layernorm.weight",
                               FloatView(b.attn_norm.data(), {static_cast<int64_t>(b.attn_norm.size())}), dense_dtype));
    entries.push_back(StoredAs(p + "post_attention_layernorm.weight",
                               FloatView(b.ffn_norm.data(), {static_cast<int64_t>(b.ffn_norm.size())}), dense_dtype));
  }
  entries.push_back(StoredAs("model.norm.weight", FloatView(model.final_norm.data(), {c.dim}), dense_dtype));
  std::sort(entries.begin(), entries.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.name < b.name; });
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].name == entries[i - 1].name) {
      return absl::InternalError(absl::StrCat(dir, ": tensor ", entries[i].name, " written twice"));
    }
  }
  if (max_shard_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": max shard size ", max_shard_bytes, " must be > 0"));
  }
  SQ_RETURN_IF_ERROR(MakeDirs(dir));
  SQ_ASSIGN_OR_RETURN(ShardedWrite written,
                      WriteShardedSafetensors(dir, std::move(entries), {{"format", "pt"}}, max_shard_bytes));
  for (const auto& [name, text] : extra_files) {
    SQ_RETURN_IF_ERROR(WriteFileAtomically((fs::path(dir) / name).string(), text));
  }
  SQ_RETURN_IF_ERROR(WriteFileAtomically((fs::path(dir) / kHfConfigFile).string(), config.dump(2) + "\n"));
  if (shards != nullptr) *shards = written.shards;
  return written.total_bytes;
}

void DenseFallback::Add(const std::string& module, const LinearLayer& layer, const MatrixRM& reference,
                        const std::string& unfit, DType dtype, QuantizedLayerReport report,
                        std::vector<SafetensorsEntry>& entries, std::vector<QuantizedLayerReport>& layers) {
  for (SafetensorsEntry& e : DenseLinearEntries(module, layer, dtype)) entries.push_back(std::move(e));
  report.rel_error = WrittenRelativeError(reference.unaryExpr([&](float v) { return RoundTo(dtype, v); }), reference);
  report.how = unfit.empty() ? "dense" : absl::StrCat("dense (", unfit, ")");
  if (!unfit.empty() && first_unfit.empty()) first_unfit = absl::StrCat(module, ": ", unfit);
  skipped.push_back(module);
  layers.push_back(std::move(report));
}

void FinishPackedLayer(const std::string& module, const IntWeight& w, DType scale_dtype, DType dense_dtype,
                       const MatrixRM& reference, QuantizedLayerReport report,
                       std::vector<SafetensorsEntry>& entries, std::vector<QuantizedLayerReport>& layers) {
  if (!w.bias.empty()) entries.push_back(StoredAs(module + ".bias", OwnedF32(w.bias, {w.out}), dense_dtype));
  report.rel_error = PackedWrittenRelativeError(w, scale_dtype, reference);
  report.how = report.rel_error == 0.0 ? "exact" : absl::StrCat("scales rounded to ", DTypeName(scale_dtype));
  layers.push_back(std::move(report));
}

absl::Status UnfitLayerError(const std::string& format, const std::string& module, const std::string& kind,
                             const std::string& unfit) {
  return absl::InvalidArgumentError(absl::StrCat(format, ": ", module, " (", kind, "): ", unfit,
                                                 "; pass --unfit-dense to write such layers unquantized; "
                                                 "nothing was written"));
}

absl::Status DenseFallback::NothingPacked(const std::string& format) const {
  return absl::InvalidArgumentError(absl::StrCat(
      format, ": the model has no packed-int layer to write",
      first_unfit.empty() ? "" : " (every packed-int layer is unfit; the first, ", first_unfit,
      first_unfit.empty() ? "" : ")", "; nothing was written"));
}

}  // namespace squeeze
