#include "workers/engine/formats/gptq_format.h"

#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/int_weight.h"

namespace squeeze {
namespace {

using json = nlohmann::ordered_json;

// "^model\.layers\.0\.mlp\.down_proj$"
std::string ExactRegex(const std::string& name) { return "^" + absl::StrReplaceAll(name, {{".", "\\."}}) + "$"; }

int GptqGroupSize(const IntWeight& w) { return w.strategy == IntStrategy::kGroup ? w.group_size : -1; }

// Why `w` cannot be packed as GPTQ, or "" when it can.
std::string GptqUnfit(const IntWeight& w) {
  if (w.bits != 2 && w.bits != 4 && w.bits != 8) {
    return absl::StrCat(w.bits, "-bit codes (GPTQ's 3-bit and other widths pack across words; 2, 4, 8 are written)");
  }
  const int p = 32 / w.bits;
  if (w.in % p != 0) return absl::StrCat("in_features ", w.in, " is not a multiple of ", p, " (qweight packs the input dim)");
  if (w.out % p != 0) return absl::StrCat("out_features ", w.out, " is not a multiple of ", p, " (qzeros packs the output dim)");
  return "";
}

}  // namespace

absl::StatusOr<QuantizedExportResult> ExportGptq(const Model& model, const std::string& dir,
                                                 const GptqExportOptions& options) {
  QuantizedExportResult result;
  result.format = "gptq";
  std::vector<SafetensorsEntry> entries;
  std::optional<int> bits, group_size;
  std::string first;  // the module that fixed bits / group size
  bool all_sym = true, desc_act = false, lm_head_quantized = false;
  DenseFallback dense;  // layers written unquantized
  int quantized = 0;
  for (const LinearSlot& slot : const_cast<Model&>(model).AllLinears()) {
    const LinearLayer* layer = slot.slot->get();
    if (layer == nullptr) return absl::InvalidArgumentError(absl::StrCat(slot.name, " is missing"));
    const std::string& m = slot.name;
    const MatrixRM reference = layer->DenseWeight();
    QuantizedLayerReport rep{m, layer->kind(), "", 0.0};
    SQ_ASSIGN_OR_RETURN(std::optional<IntWeight> iw, IntWeightFromLayer(*layer, m));
    std::string unfit = iw.has_value() ? GptqUnfit(*iw) : "";
    if (iw.has_value() && !unfit.empty() && !options.unfit_as_dense) {
      return UnfitLayerError("gptq", m, layer->kind(), unfit);
    }
    if (!iw.has_value() || !unfit.empty()) {
      dense.Add(m, *layer, reference, unfit, options.dense_dtype, std::move(rep), entries, result.layers);
      continue;
    }
    const IntWeight& w = *iw;
    if (!bits.has_value()) {
      bits = w.bits;
      group_size = GptqGroupSize(w);
      first = m;
    } else if (*bits != w.bits || *group_size != GptqGroupSize(w)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gptq: ", m, " has ", w.bits, " bits / group_size ", GptqGroupSize(w), " but ", first, " has ", *bits,
          " / ", *group_size, ": one quantize_config.json describes every layer; nothing was written"));
    }
    all_sym = all_sym && w.symmetric;
    desc_act = desc_act || !w.g_idx.empty();
    if (slot.layer < 0) lm_head_quantized = true;
    const int p = 32 / w.bits;
    const int64_t ng = w.groups();
    const uint32_t mask = (1u << w.bits) - 1u;
    // qweight [in / p, out]: column j packs W[j, :] along the input dim.
    std::vector<int32_t> qweight(static_cast<size_t>(w.in / p * w.out));
    for (int64_t k = 0; k < w.in / p; ++k) {
      for (int64_t j = 0; j < w.out; ++j) {
        uint32_t word = 0;
        for (int i = 0; i < p; ++i) {
          word |= (static_cast<uint32_t>(w.q[j * w.in + k * p + i] + w.offset()) & mask) << (w.bits * i);
        }
        qweight[k * w.out + j] = static_cast<int32_t>(word);
      }
    }
    // qzeros [ng, out / p]: packed along the output dim, minus one (v1).
    std::vector<int32_t> qzeros(static_cast<size_t>(ng * (w.out / p)));
    for (int64_t g = 0; g < ng; ++g) {
      for (int64_t k = 0; k < w.out / p; ++k) {
        uint32_t word = 0;
        for (int i = 0; i < p; ++i) {
          const int64_t j = k * p + i;
          int64_t uz = w.Zero(j, g) + w.offset();
          if (!options.v2) {
            if (uz == 0) {
              return absl::InvalidArgumentError(absl::StrCat(
                  "gptq: ", m, ": output ", j, " group ", g, " has unsigned zero point 0, which the classic gptq "
                  "format (zero point minus one) cannot store; use --gptq-v2; nothing was written"));
            }
            uz -= 1;
          }
          word |= (static_cast<uint32_t>(uz) & mask) << (w.bits * i);
        }
        qzeros[g * (w.out / p) + k] = static_cast<int32_t>(word);
      }
    }
    std::vector<float> scales = ScalesGroupMajor(w);
    std::vector<int32_t> g_idx(static_cast<size_t>(w.in));
    for (int64_t c = 0; c < w.in; ++c) g_idx[c] = static_cast<int32_t>(w.GroupOf(c));
    entries.push_back(StoredAs(m + ".qweight", OwnedI32(std::move(qweight), {w.in / p, w.out})));
    entries.push_back(StoredAs(m + ".qzeros", OwnedI32(std::move(qzeros), {ng, w.out / p})));
    entries.push_back(StoredAs(m + ".scales", OwnedF32(std::move(scales), {ng, w.out}), options.scale_dtype));
    entries.push_back(StoredAs(m + ".g_idx", OwnedI32(std::move(g_idx), {w.in})));
    FinishPackedLayer(m, w, options.scale_dtype, options.dense_dtype, reference, std::move(rep), entries, result.layers);
    ++quantized;
  }
  if (quantized == 0) {
    return dense.NothingPacked("gptq");
  }
  json qc{{"bits", *bits},
          {"group_size", *group_size},
          {"desc_act", desc_act},
          {"sym", all_sym},
          {"damp_percent", 0.01},
          {"static_groups", false},
          {"true_sequential", true},
          {"lm_head", lm_head_quantized},
          {"quant_method", "gptq"},
          {"checkpoint_format", options.v2 ? "gptq_v2" : "gptq"},
          {"model_name_or_path", nullptr},
          {"model_file_base_name", "model"}};
  if (!dense.skipped.empty()) {
    json dynamic = json::object();
    for (const std::string& m : dense.skipped) {
      if (m != "lm_head") dynamic["-:" + ExactRegex(m)] = json::object();
    }
    qc["dynamic"] = dynamic;
  }
  qc["meta"] = json{{"quantizer", json::array({"squeeze"})}};
  std::map<std::string, std::string> extra = {{"quantize_config.json", qc.dump(2) + "\n"}};
  SQ_ASSIGN_OR_RETURN(result.bytes,
                      WriteQuantizedHfDir(model, dir, options.dense_dtype, std::move(entries), qc.dump(), extra,
                                          options.max_shard_bytes, &result.shards));
  return result;
}

absl::Status GptqToCheckpoint(const std::string& config_text, const std::string& source, CheckpointTensors* ck) {
  const std::string what = absl::StrCat(source, ": gptq config");
  json qc = json::parse(config_text, nullptr, false);
  if (qc.is_discarded() || !qc.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not a JSON object"));
  auto int_of = [&](const char* key, int64_t dflt) -> absl::StatusOr<int64_t> {
    if (!qc.contains(key) || qc[key].is_null()) return dflt;
    if (!qc[key].is_number_integer()) return absl::InvalidArgumentError(absl::StrCat(what, ".", key, ": not an integer"));
    return qc[key].get<int64_t>();
  };
  SQ_ASSIGN_OR_RETURN(int64_t bits, int_of("bits", -1));
  SQ_ASSIGN_OR_RETURN(int64_t group_size, int_of("group_size", -1));
  if (bits != 2 && bits != 4 && bits != 8) {
    return absl::UnimplementedError(absl::StrCat(what, ".bits ", bits, ": only 2, 4 and 8 bit GPTQ is read"));
  }
  if (group_size == 0 || group_size < -1) {
    return absl::InvalidArgumentError(absl::StrCat(what, ".group_size ", group_size, ": must be -1 or > 0"));
  }
  const std::string fmt = qc.value("checkpoint_format", std::string("gptq"));
  if (fmt != "gptq" && fmt != "gptq_v2") {
    return absl::UnimplementedError(absl::StrCat(what, ".checkpoint_format \"", fmt, "\": only gptq and gptq_v2 are read"));
  }
  if (qc.contains("dynamic") && qc["dynamic"].is_object()) {
    for (const auto& [key, rule] : qc["dynamic"].items()) {
      if (!absl::StartsWith(key, "-:") && !(rule.is_object() && rule.empty())) {
        return absl::UnimplementedError(absl::StrCat(what, ".dynamic \"", key, "\": per-module overrides are not read"));
      }
    }
  }
  const bool v1 = fmt == "gptq";
  const int p = 32 / static_cast<int>(bits);
  const uint32_t mask = (1u << bits) - 1u;
  std::vector<std::string> modules;
  for (const auto& [name, st] : ck->tensors) {
    if (absl::EndsWith(name, ".qweight")) modules.push_back(name.substr(0, name.size() - 8));
  }
  for (const std::string& m : modules) {
    const std::string tsrc = absl::StrCat(source, ": ", m);
    auto find = [&](const char* suffix) -> const TensorView* {
      auto it = ck->tensors.find(m + suffix);
      return it == ck->tensors.end() ? nullptr : &it->second.view;
    };
    const TensorView* qw = find(".qweight");
    const TensorView* qz = find(".qzeros");
    const TensorView* sc = find(".scales");
    if (qz == nullptr || sc == nullptr) return absl::InvalidArgumentError(absl::StrCat(tsrc, ": needs qweight, qzeros and scales"));
    if (qw->shape.size() != 2 || qw->dtype != DType::kI32 || sc->shape.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(tsrc, ".qweight: expected I32 [in / ", p, ", out], got ",
                                                     DTypeName(qw->dtype), " ", ShapeString(qw->shape)));
    }
    IntWeight w;
    w.bits = static_cast<int>(bits);
    w.in = qw->shape[0] * p;
    w.out = qw->shape[1];
    w.strategy = group_size == -1 ? IntStrategy::kChannel : IntStrategy::kGroup;
    w.group_size = group_size == -1 ? 128 : static_cast<int>(group_size);
    const int64_t ng = w.groups();
    SQ_ASSIGN_OR_RETURN(std::vector<int64_t> qweight, ReadIntTensor(*qw, tsrc + ".qweight"));
    SQ_ASSIGN_OR_RETURN(std::vector<int64_t> qzeros, ReadIntTensor(*qz, tsrc + ".qzeros", {ng, w.out / p}));
    if (w.out % p != 0) return absl::InvalidArgumentError(absl::StrCat(tsrc, ": out_features ", w.out, " not a multiple of ", p));
    SQ_ASSIGN_OR_RETURN(std::vector<float> scales, ReadFloatTensor(*sc, tsrc + ".scales", {ng, w.out}));
    w.q.resize(static_cast<size_t>(w.out * w.in));
    for (int64_t k = 0; k < w.in / p; ++k) {
      for (int64_t j = 0; j < w.out; ++j) {
        const uint32_t word = static_cast<uint32_t>(qweight[k * w.out + j]);
        for (int i = 0; i < p; ++i) {
          w.q[j * w.in + k * p + i] = static_cast<int32_t>((word >> (bits * i)) & mask) - w.offset();
        }
      }
    }
    w.scales.resize(static_cast<size_t>(w.out * ng));
    w.zeros.resize(static_cast<size_t>(w.out * ng));
    bool all_mid = true;
    for (int64_t g = 0; g < ng; ++g) {
      for (int64_t j = 0; j < w.out; ++j) {
        w.scales[j * ng + g] = scales[g * w.out + j];
        const uint32_t word = static_cast<uint32_t>(qzeros[g * (w.out / p) + j / p]);
        const int64_t uz = static_cast<int64_t>((word >> (bits * (j % p))) & mask) + (v1 ? 1 : 0);
        if (uz > static_cast<int64_t>(mask)) {
          return absl::InvalidArgumentError(absl::StrCat(tsrc, ".qzeros: output ", j, " group ", g, " decodes to zero point ",
                                                         uz, " (stored ", uz - 1, " + 1), outside the ", bits,
                                                         "-bit grid"));
        }
        w.zeros[j * ng + g] = static_cast<int32_t>(uz) - w.offset();
        all_mid = all_mid && w.zeros[j * ng + g] == 0;
      }
    }
    w.symmetric = all_mid;
    if (w.symmetric) w.zeros.clear();
    if (const TensorView* gi = find(".g_idx")) {
      SQ_ASSIGN_OR_RETURN(std::vector<int64_t> g, ReadIntTensor(*gi, tsrc + ".g_idx", {w.in}));
      bool contiguous = true;
      for (int64_t c = 0; c < w.in; ++c) contiguous = contiguous && g[c] == c / w.EffectiveGroupSize();
      if (!contiguous) w.g_idx.assign(g.begin(), g.end());
    }
    if (const TensorView* b = find(".bias")) {
      SQ_ASSIGN_OR_RETURN(w.bias, ReadFloatTensor(*b, tsrc + ".bias", {w.out}));
    }
    SQ_RETURN_IF_ERROR(AddIntWeightToCheckpoint(m, w, ck));
  }
  return absl::OkStatus();
}

}  // namespace squeeze
