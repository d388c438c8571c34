#include "workers/engine/formats/compressed_tensors_format.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/module_regex.h"
#include "absl/strings/str_join.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/compressed_tensors_sparse.h"
#include "workers/engine/formats/int_weight.h"

namespace squeeze {
namespace {

using json = nlohmann::ordered_json;

constexpr char kW8A8Kind[] = "w8a8_int8_channel_token";  // methods/quant/w8a8_linear.h

// The JSON of one QuantizationArgs (every field pydantic serializes).
json WeightArgs(int bits, bool symmetric, const std::string& strategy, int group_size, bool actorder_group) {
  return json{{"num_bits", bits},
              {"type", "int"},
              {"symmetric", symmetric},
              {"group_size", strategy == "group" ? json(group_size) : json(nullptr)},
              {"strategy", strategy},
              {"block_structure", nullptr},
              {"dynamic", false},
              {"actorder", actorder_group ? json("group") : json(nullptr)},
              {"observer", "minmax"},
              {"observer_kwargs", json::object()}};
}

json TokenActivationArgs() {
  return json{{"num_bits", 8},       {"type", "int"},          {"symmetric", true},
              {"group_size", nullptr}, {"strategy", "token"},    {"block_structure", nullptr},
              {"dynamic", true},     {"actorder", nullptr},    {"observer", nullptr},
              {"observer_kwargs", json::object()}};
}

// Packs zero points [out, ng] (signed) along the output dim:
// result [ceil(out / per), ng], word k of column g holds rows k*per.. .
std::vector<int32_t> PackZerosDim0(const IntWeight& w) {
  const int per = 32 / w.bits;
  const int64_t ng = w.groups();
  const int64_t rows = (w.out + per - 1) / per;
  std::vector<int32_t> out(static_cast<size_t>(rows * ng));
  std::vector<uint32_t> col(static_cast<size_t>(w.out)), words(static_cast<size_t>(rows));
  for (int64_t g = 0; g < ng; ++g) {
    for (int64_t r = 0; r < w.out; ++r) col[r] = static_cast<uint32_t>(w.Zero(r, g) + w.offset());
    PackBits(col.data(), w.out, w.bits, words.data());
    for (int64_t k = 0; k < rows; ++k) out[k * ng + g] = static_cast<int32_t>(words[k]);
  }
  return out;
}

struct Scheme {
  std::string format;
  json weights;
  json inputs;  // null for weight-only
  std::vector<std::string> targets;
};

std::string SchemeKey(const Scheme& s) { return s.format + s.weights.dump() + s.inputs.dump(); }

constexpr char kSparseKindPrefix[] = "sparse_";  // methods/prune/sparse_linear.h

int64_t Zeros(const float* v, int64_t n) {
  int64_t z = 0;
  for (int64_t i = 0; i < n; ++i) z += v[i] == 0.0f ? 1 : 0;
  return z;
}

// The sparsity format for the model's sparse layers (kinds "sparse_*"):
// "auto" picks sparse-24-bitmask when every one is 2:4 (kind sparse_2of4),
// sparse-bitmask otherwise. Also returns sparsity_structure.
absl::StatusOr<std::pair<std::string, std::string>> ChooseSparseFormat(const std::string& requested,
                                                                       const std::set<std::string>& kinds) {
  std::string structure = "unstructured";
  if (kinds.size() == 1 && *kinds.begin() != "sparse_bitmask") {
    const std::string k = kinds.begin()->substr(7);  // "<K>of<M>"
    const size_t of = k.find("of");
    if (of != std::string::npos) structure = absl::StrCat(k.substr(0, of), ":", k.substr(of + 2));
  }
  if (requested == "auto") {
    const bool all24 = kinds.size() == 1 && *kinds.begin() == "sparse_2of4";
    return std::make_pair(std::string(all24 ? kCtSparse24Bitmask : kCtSparseBitmask), structure);
  }
  if (requested == kCtSparse24Bitmask) return std::make_pair(requested, std::string("2:4"));
  if (requested == kCtSparseBitmask || requested == "dense") return std::make_pair(requested, structure);
  return absl::InvalidArgumentError(absl::StrCat("compressed-tensors: sparse format \"", requested,
                                                 "\": must be auto, sparse-bitmask, sparse-24-bitmask or dense"));
}

}  // namespace

absl::StatusOr<QuantizedExportResult> ExportCompressedTensors(const Model& model, const std::string& dir,
                                                              const CompressedTensorsExportOptions& options) {
  QuantizedExportResult result;
  result.format = "compressed-tensors";
  std::vector<SafetensorsEntry> entries;
  std::vector<Scheme> schemes;
  std::map<std::string, size_t> scheme_index;
  std::vector<std::string> ignore;
  // Sparse layers: the format is chosen for all of them at once.
  std::set<std::string> sparse_kinds;
  for (const LinearSlot& slot : const_cast<Model&>(model).AllLinears()) {
    if (slot.slot->get() != nullptr && absl::StartsWith(slot.slot->get()->kind(), kSparseKindPrefix)) {
      sparse_kinds.insert(slot.slot->get()->kind());
    }
  }
  SQ_ASSIGN_OR_RETURN(auto sparse_choice, ChooseSparseFormat(options.sparse_format, sparse_kinds));
  const std::string& sparse_format = sparse_choice.first;
  std::vector<std::string> sparse_targets;
  // global_sparsity: zero parameters over all parameters, in percent.
  int64_t params = 0, zero_params = 0;
  auto count = [&](const float* v, int64_t n) {
    params += n;
    zero_params += Zeros(v, n);
  };
  count(model.embedding.data(), model.embedding.size());
  for (const TransformerBlock& b : model.blocks) {
    count(b.attn_norm.data(), static_cast<int64_t>(b.attn_norm.size()));
    count(b.ffn_norm.data(), static_cast<int64_t>(b.ffn_norm.size()));
  }
  count(model.final_norm.data(), static_cast<int64_t>(model.final_norm.size()));
  auto add_to_scheme = [&](Scheme s, const std::string& module) {
    const std::string key = SchemeKey(s);
    auto it = scheme_index.find(key);
    if (it == scheme_index.end()) {
      it = scheme_index.emplace(key, schemes.size()).first;
      schemes.push_back(std::move(s));
    }
    schemes[it->second].targets.push_back(module);
  };
  for (const LinearSlot& slot : const_cast<Model&>(model).AllLinears()) {
    const LinearLayer* layer = slot.slot->get();
    if (layer == nullptr) return absl::InvalidArgumentError(absl::StrCat(slot.name, " is missing"));
    const std::string& m = slot.name;
    const MatrixRM reference = layer->DenseWeight();
    count(reference.data(), reference.size());
    count(layer->bias().data(), static_cast<int64_t>(layer->bias().size()));
    QuantizedLayerReport rep{m, layer->kind(), "", 0.0};
    SQ_ASSIGN_OR_RETURN(std::optional<IntWeight> iw, IntWeightFromLayer(*layer, m));
    if (iw.has_value()) {
      IntWeight& w = *iw;
      if (w.bits != 4 && w.bits != 8) {
        return absl::InvalidArgumentError(absl::StrCat(
            "compressed-tensors: ", m, " (", layer->kind(), "): pack-quantized ", w.bits,
            "-bit weights are not run by vLLM (it runs 4 and 8 bit); nothing was written"));
      }
      std::string strategy = w.strategy == IntStrategy::kGroup ? "group" : "channel";
      rep.how = "exact";
      if (w.strategy == IntStrategy::kTensor) rep.how = "exact (tensor scale repeated per row: strategy channel)";
      if (w.strategy == IntStrategy::kGroup && w.groups() == 1 && w.g_idx.empty()) {
        strategy = "channel";
        rep.how = absl::StrCat("exact (group ", w.group_size, " covers the row of ", w.in, ": strategy channel)");
      }
      const int per = 32 / w.bits;
      const int64_t ng = w.groups();
      // weight_packed: the engine's row packing is pack_to_int32's.
      std::vector<int32_t> packed(static_cast<size_t>(w.out * ((w.in + per - 1) / per)));
      std::vector<uint32_t> vals(static_cast<size_t>(w.in));
      const int64_t wpr = (w.in + per - 1) / per;
      std::vector<uint32_t> words(static_cast<size_t>(wpr));
      for (int64_t r = 0; r < w.out; ++r) {
        for (int64_t c = 0; c < w.in; ++c) vals[c] = static_cast<uint32_t>(w.q[r * w.in + c] + w.offset());
        PackBits(vals.data(), w.in, w.bits, words.data());
        for (int64_t k = 0; k < wpr; ++k) packed[r * wpr + k] = static_cast<int32_t>(words[k]);
      }
      entries.push_back(StoredAs(m + ".weight_packed", OwnedI32(std::move(packed), {w.out, wpr})));
      entries.push_back(StoredAs(m + ".weight_scale", OwnedF32(w.scales, {w.out, ng}), options.scale_dtype));
      entries.push_back(StoredAs(m + ".weight_shape", OwnedI64({w.out, w.in}, {2})));
      if (!w.symmetric) {
        entries.push_back(StoredAs(m + ".weight_zero_point", OwnedI32(PackZerosDim0(w), {(w.out + per - 1) / per, ng})));
      }
      if (!w.g_idx.empty()) entries.push_back(StoredAs(m + ".weight_g_idx", OwnedI32(w.g_idx, {w.in})));
      if (!w.bias.empty()) {
        entries.push_back(StoredAs(m + ".bias", OwnedF32(w.bias, {w.out}), options.dense_dtype));
      }
      rep.rel_error = PackedWrittenRelativeError(w, options.scale_dtype, reference);
      if (options.scale_dtype != DType::kF32 && rep.rel_error > 0) {
        rep.how = absl::StrCat("scales rounded to ", DTypeName(options.scale_dtype));
      }
      add_to_scheme({"pack-quantized", WeightArgs(w.bits, w.symmetric, strategy, w.group_size, !w.g_idx.empty()),
                     json(nullptr), {}},
                    m);
    } else if (layer->kind() == kW8A8Kind) {
      std::map<std::string, TensorView> t;
      for (auto& [name, view] : layer->StoredTensors()) t[name] = view;
      if (!t.count("weight") || !t.count("weight_scale")) {
        return absl::InternalError(absl::StrCat(m, ": ", kW8A8Kind, " layer without weight / weight_scale"));
      }
      entries.push_back(StoredAs(m + ".weight", t["weight"]));
      SQ_ASSIGN_OR_RETURN(std::vector<float> s, ToFloat32(t["weight_scale"], m + ".weight_scale"));
      std::vector<float> rounded = s;
      for (float& x : rounded) x = RoundTo(options.scale_dtype, x);
      entries.push_back(
          StoredAs(m + ".weight_scale", OwnedF32(std::move(s), {layer->out_features(), 1}), options.scale_dtype));
      if (auto b = t.find("bias"); b != t.end()) {
        entries.push_back(StoredAs(m + ".bias", b->second, options.dense_dtype));
      }
      // Dequantized weight as written: q * rounded scale.
      SQ_ASSIGN_OR_RETURN(std::vector<int64_t> q, ReadIntTensor(t["weight"], m + ".weight"));
      MatrixRM written(layer->out_features(), layer->in_features());
      for (int64_t r = 0; r < written.rows(); ++r) {
        for (int64_t c = 0; c < written.cols(); ++c) {
          written(r, c) = static_cast<float>(q[r * written.cols() + c]) * rounded[r];
        }
      }
      rep.rel_error = WrittenRelativeError(written, reference);
      rep.how = options.scale_dtype == DType::kF32 ? "exact" : absl::StrCat("scales rounded to ", DTypeName(options.scale_dtype));
      add_to_scheme({"int-quantized", WeightArgs(8, true, "channel", 0, false), TokenActivationArgs(), {}}, m);
    } else if (absl::StartsWith(layer->kind(), kSparseKindPrefix) && sparse_format != "dense") {
      const int64_t nnz = reference.size() - Zeros(reference.data(), reference.size());
      if (sparse_format == kCtSparse24Bitmask) {
        absl::StatusOr<std::vector<SafetensorsEntry>> sparse = CtSparse24Entries(m, reference, options.dense_dtype);
        if (!sparse.ok()) {
          return absl::Status(sparse.status().code(), absl::StrCat("compressed-tensors: ", sparse.status().message(),
                                                                   "; nothing was written"));
        }
        for (SafetensorsEntry& e : *sparse) entries.push_back(std::move(e));
      } else {
        for (SafetensorsEntry& e : CtBitmaskEntries(m, reference, options.dense_dtype)) entries.push_back(std::move(e));
      }
      absl::Span<const float> b = layer->bias();
      if (!b.empty()) {
        entries.push_back(StoredAs(m + ".bias", OwnedF32(std::vector<float>(b.begin(), b.end()), {layer->out_features()}),
                                   options.dense_dtype));
      }
      MatrixRM written = reference.unaryExpr([&](float v) { return RoundTo(options.dense_dtype, v); });
      rep.rel_error = WrittenRelativeError(written, reference);
      rep.how = absl::StrCat(sparse_format, " (", nnz, " of ", reference.size(), " weights non-zero)");
      sparse_targets.push_back(m);
      ignore.push_back(m);
    } else {
      for (SafetensorsEntry& e : DenseLinearEntries(m, *layer, options.dense_dtype)) entries.push_back(std::move(e));
      MatrixRM written = reference.unaryExpr([&](float v) { return RoundTo(options.dense_dtype, v); });
      rep.rel_error = WrittenRelativeError(written, reference);
      rep.how = absl::StartsWith(layer->kind(), "dense_") ? "dense" : absl::StrCat("dense (", layer->kind(), " expanded)");
      ignore.push_back(m);
    }
    result.layers.push_back(std::move(rep));
  }
  if (schemes.empty() && sparse_targets.empty()) {
    return absl::InvalidArgumentError(
        "compressed-tensors: the model has no quantized layer (packed_int_* or w8a8) and no sparse layer "
        "(sparse_*); export it as a plain checkpoint instead; nothing was written");
  }
  json groups = json::object();
  std::set<std::string> formats;
  for (size_t i = 0; i < schemes.size(); ++i) {
    formats.insert(schemes[i].format);
    groups[absl::StrCat("group_", i)] = json{{"targets", schemes[i].targets},
                                             {"weights", schemes[i].weights},
                                             {"input_activations", schemes[i].inputs},
                                             {"output_activations", nullptr},
                                             {"format", schemes[i].format}};
  }
  json sparsity = json::object();
  if (!sparse_targets.empty()) {
    // SparsityCompressionConfig.model_dump(); the targets are module names.
    sparsity = json{{"format", sparse_format},
                    {"targets", sparse_targets},
                    {"ignore", json::array()},
                    {"global_sparsity", params == 0 ? 0.0 : 100.0 * static_cast<double>(zero_params) / params},
                    {"sparsity_structure", sparse_choice.second}};
  }
  json qc;
  if (schemes.empty()) {
    // Sparse only: what ModelCompressor.update_config writes without a
    // quantization config.
    qc = json{{"quant_method", "compressed-tensors"},
              {"sparsity_config", sparsity},
              {"transform_config", json::object()},
              {"version", kCompressedTensorsVersion}};
  } else {
    qc = json{{"config_groups", groups},
              {"format", formats.size() == 1 ? *formats.begin() : std::string("mixed-precision")},
              {"global_compression_ratio", nullptr},
              {"ignore", ignore},
              {"kv_cache_scheme", nullptr},
              {"quant_method", "compressed-tensors"},
              {"quantization_status", "compressed"},
              {"sparsity_config", sparsity},
              {"transform_config", json::object()},
              {"version", kCompressedTensorsVersion}};
  }
  std::map<std::string, std::string> extra;
  if (!options.recipe_yaml.empty()) extra["recipe.yaml"] = options.recipe_yaml;
  SQ_ASSIGN_OR_RETURN(result.bytes, WriteQuantizedHfDir(model, dir, options.dense_dtype, std::move(entries), qc.dump(),
                                                        extra, options.max_shard_bytes, &result.shards));
  return result;
}

// ---------------------------------------------------------------- import

namespace {

struct ImportScheme {
  std::string name;
  json weights;
  json inputs;
  std::string format;
  std::vector<std::string> targets;
};

bool TargetMatches(const std::string& target, const std::string& module) {
  if (absl::StartsWith(target, "re:")) {
    // A pattern RE2 refuses matches nothing (as before with std::regex).
    absl::StatusOr<ModuleRegex> re = ModuleRegex::Compile(target.substr(3));
    return re.ok() && re->MatchesFromStart(module);
  }
  if (target == "Linear") return true;  // every module handled here is a linear layer
  return target == module;
}

const TensorView* Find(const CheckpointTensors& ck, const std::string& name) {
  auto it = ck.tensors.find(name);
  return it == ck.tensors.end() ? nullptr : &it->second.view;
}

absl::StatusOr<int64_t> IntField(const json& j, const char* key, const std::string& what, int64_t dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_number_integer()) return absl::InvalidArgumentError(absl::StrCat(what, ".", key, ": not an integer"));
  return j[key].get<int64_t>();
}

// Reads weights args into bits / symmetric / strategy / group size.
absl::Status ParseWeightArgs(const json& a, const std::string& what, IntWeight* w) {
  if (!a.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not an object"));
  const std::string type = a.value("type", std::string("int"));
  if (type != "int") {
    return absl::UnimplementedError(absl::StrCat(what, ".type \"", type, "\": only int weights are supported"));
  }
  SQ_ASSIGN_OR_RETURN(int64_t bits, IntField(a, "num_bits", what, 8));
  if (bits < 2 || bits > 8) return absl::UnimplementedError(absl::StrCat(what, ".num_bits ", bits, ": only 2..8"));
  w->bits = static_cast<int>(bits);
  w->symmetric = a.value("symmetric", true);
  const std::string strategy = a.contains("strategy") && a["strategy"].is_string() ? a["strategy"].get<std::string>() : "tensor";
  SQ_ASSIGN_OR_RETURN(int64_t gs, IntField(a, "group_size", what, -1));
  if (strategy == "group") {
    if (gs <= 0) return absl::InvalidArgumentError(absl::StrCat(what, ".group_size ", gs, ": must be > 0 for strategy group"));
    w->strategy = IntStrategy::kGroup;
    w->group_size = static_cast<int>(gs);
  } else if (strategy == "channel") {
    w->strategy = IntStrategy::kChannel;
    w->group_size = 128;
  } else if (strategy == "tensor") {
    w->strategy = IntStrategy::kTensor;
    w->group_size = 128;
  } else {
    return absl::UnimplementedError(absl::StrCat(what, ".strategy \"", strategy, "\" is not supported"));
  }
  if (a.contains("dynamic") && !(a["dynamic"].is_boolean() && !a["dynamic"].get<bool>())) {
    return absl::UnimplementedError(absl::StrCat(what, ".dynamic: dynamic weight quantization is not supported"));
  }
  return absl::OkStatus();
}

// Scales for `w` (shape by strategy), widened to fp32, one row of groups per
// output row (a tensor scale is repeated).
absl::Status ReadScales(const TensorView& v, const std::string& what, IntWeight* w) {
  SQ_ASSIGN_OR_RETURN(std::vector<float> s, ToFloat32(v, what));
  const int64_t ng = w->groups();
  if (w->strategy == IntStrategy::kTensor) {
    if (s.size() != 1) return absl::InvalidArgumentError(absl::StrCat(what, ": shape ", ShapeString(v.shape), ", expected [1]"));
    w->scales.assign(static_cast<size_t>(w->out), s[0]);
    return absl::OkStatus();
  }
  const std::vector<int64_t> want = {w->out, ng};
  if (v.shape != want) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": shape ", ShapeString(v.shape), ", expected ", ShapeString(want)));
  }
  w->scales = std::move(s);
  return absl::OkStatus();
}

absl::Status ReadZeros(const TensorView& v, const std::string& what, bool packed_format, IntWeight* w) {
  const int64_t ng = w->groups();
  const int per = 32 / w->bits;
  if (w->strategy == IntStrategy::kTensor) {
    SQ_ASSIGN_OR_RETURN(std::vector<int64_t> z, ReadIntTensor(v, what));
    if (z.size() != 1) return absl::InvalidArgumentError(absl::StrCat(what, ": shape ", ShapeString(v.shape), ", expected [1]"));
    w->zeros.assign(static_cast<size_t>(w->out), static_cast<int32_t>(z[0]));
    return absl::OkStatus();
  }
  const std::vector<int64_t> packed_shape = {(w->out + per - 1) / per, ng};
  if (packed_format && v.dtype == DType::kI32 && v.shape == packed_shape) {
    SQ_ASSIGN_OR_RETURN(std::vector<int64_t> z, ReadIntTensor(v, what, packed_shape));
    w->zeros.assign(static_cast<size_t>(w->out * ng), 0);
    std::vector<uint32_t> words(static_cast<size_t>(packed_shape[0])), col(static_cast<size_t>(w->out));
    for (int64_t g = 0; g < ng; ++g) {
      for (int64_t k = 0; k < packed_shape[0]; ++k) words[k] = static_cast<uint32_t>(z[k * ng + g]);
      UnpackBits(words.data(), w->out, w->bits, col.data());
      for (int64_t r = 0; r < w->out; ++r) w->zeros[r * ng + g] = static_cast<int32_t>(col[r]) - w->offset();
    }
    return absl::OkStatus();
  }
  // Unpacked signed zero points (naive / int-quantized, and pack-quantized
  // written by compressed-tensors before zero points were packed).
  SQ_ASSIGN_OR_RETURN(std::vector<int64_t> z, ReadIntTensor(v, what, {w->out, ng}));
  w->zeros.assign(z.begin(), z.end());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ReadShape2(const TensorView& v, const std::string& what) {
  SQ_ASSIGN_OR_RETURN(std::vector<int64_t> s, ReadIntTensor(v, what));
  if (s.size() != 2 || s[0] <= 0 || s[1] <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": expected two positive sizes, got ", s.size(), " values"));
  }
  return s;
}

}  // namespace

absl::Status CompressedTensorsToCheckpoint(const std::string& qc_text, const std::string& source,
                                           CheckpointTensors* ck) {
  const std::string what = absl::StrCat(source, ": quantization_config");
  json qc = json::parse(qc_text, nullptr, false);
  if (qc.is_discarded() || !qc.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not a JSON object"));
  // Sparsity first: decompressed weights may then be quantized ... which the
  // stacked compressors would need; refused below when both apply.
  std::set<std::string> sparse_modules;
  if (qc.contains("sparsity_config") && qc["sparsity_config"].is_object() && !qc["sparsity_config"].empty()) {
    const json& sc = qc["sparsity_config"];
    const std::string format = sc.value("format", std::string("dense"));
    if (format != "dense") {
      if (format != "sparse-bitmask" && format != "sparse-24-bitmask") {
        return absl::UnimplementedError(absl::StrCat(what, ".sparsity_config.format \"", format,
                                                     "\": only sparse-bitmask and sparse-24-bitmask are read"));
      }
      std::vector<std::string> modules;
      for (const auto& [name, st] : ck->tensors) {
        if (absl::EndsWith(name, ".bitmask")) modules.push_back(name.substr(0, name.size() - 8));
      }
      for (const std::string& m : modules) {
        SQ_RETURN_IF_ERROR(CtSparseToCheckpoint(m, format, source, ck));
        sparse_modules.insert(m);
      }
    }
  }
  std::vector<ImportScheme> schemes;
  const std::string global_format = qc.value("format", std::string("dense"));
  if (qc.contains("config_groups") && qc["config_groups"].is_object()) {
    for (const auto& [name, g] : qc["config_groups"].items()) {
      if (!g.is_object()) {
        return absl::UnimplementedError(absl::StrCat(what, ".config_groups.", name, ": preset names are not supported"));
      }
      ImportScheme s;
      s.name = name;
      s.weights = g.contains("weights") ? g["weights"] : json(nullptr);
      s.inputs = g.contains("input_activations") ? g["input_activations"] : json(nullptr);
      s.format = g.contains("format") && g["format"].is_string() ? g["format"].get<std::string>() : global_format;
      if (g.contains("output_activations") && !g["output_activations"].is_null()) {
        return absl::UnimplementedError(absl::StrCat(what, ".config_groups.", name, ".output_activations: not supported"));
      }
      if (!g.contains("targets") || !g["targets"].is_array()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ".config_groups.", name, ".targets: missing"));
      }
      for (const json& t : g["targets"]) {
        if (t.is_string()) s.targets.push_back(t.get<std::string>());
      }
      schemes.push_back(std::move(s));
    }
  }
  std::vector<std::string> ignore;
  if (qc.contains("ignore") && qc["ignore"].is_array()) {
    for (const json& t : qc["ignore"]) {
      if (t.is_string()) ignore.push_back(t.get<std::string>());
    }
  }
  if (qc.contains("kv_cache_scheme") && !qc["kv_cache_scheme"].is_null()) {
    return absl::UnimplementedError(absl::StrCat(what, ".kv_cache_scheme: KV-cache quantization is not supported"));
  }
  if (qc.contains("transform_config") && qc["transform_config"].is_object() && !qc["transform_config"].empty()) {
    return absl::UnimplementedError(absl::StrCat(what, ".transform_config: transforms are not supported"));
  }

  // The quantized modules: those with a weight_scale.
  std::vector<std::string> modules;
  for (const auto& [name, st] : ck->tensors) {
    if (absl::EndsWith(name, ".weight_scale")) modules.push_back(name.substr(0, name.size() - 13));
  }
  for (const std::string& m : modules) {
    if (sparse_modules.count(m)) {
      return absl::UnimplementedError(absl::StrCat(source, ": ", m, ": sparse and quantized at once is not supported"));
    }
    bool ignored = false;
    for (const std::string& t : ignore) ignored = ignored || TargetMatches(t, m);
    const ImportScheme* scheme = nullptr;
    for (const ImportScheme& s : schemes) {
      for (const std::string& t : s.targets) {
        if (TargetMatches(t, m)) scheme = &s;
      }
      if (scheme != nullptr) break;
    }
    if (scheme == nullptr || ignored) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": ", m, " has quantization tensors but ",
                                                     ignored ? "is in the ignore list" : "no config group targets it"));
    }
    const std::string gwhat = absl::StrCat(what, ".config_groups.", scheme->name);
    IntWeight w;
    SQ_RETURN_IF_ERROR(ParseWeightArgs(scheme->weights, gwhat + ".weights", &w));
    const std::string tsrc = absl::StrCat(source, ": ", m);
    const TensorView* scale_v = Find(*ck, m + ".weight_scale");
    if (scheme->format == "pack-quantized") {
      if (!scheme->inputs.is_null()) {
        return absl::UnimplementedError(absl::StrCat(gwhat, ".input_activations: pack-quantized with activation "
                                                            "quantization is not supported"));
      }
      const TensorView* shape_v = Find(*ck, m + ".weight_shape");
      const TensorView* packed_v = Find(*ck, m + ".weight_packed");
      if (shape_v == nullptr || packed_v == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(tsrc, ": pack-quantized needs weight_packed and weight_shape"));
      }
      SQ_ASSIGN_OR_RETURN(std::vector<int64_t> shape, ReadShape2(*shape_v, tsrc + ".weight_shape"));
      w.out = shape[0];
      w.in = shape[1];
      const int per = 32 / w.bits;
      const int64_t wpr = (w.in + per - 1) / per;
      if (packed_v->dtype != DType::kI32) {
        return absl::InvalidArgumentError(absl::StrCat(tsrc, ".weight_packed: dtype ", DTypeName(packed_v->dtype), ", expected I32"));
      }
      SQ_ASSIGN_OR_RETURN(std::vector<int64_t> packed, ReadIntTensor(*packed_v, tsrc + ".weight_packed", {w.out, wpr}));
      w.q.resize(static_cast<size_t>(w.out * w.in));
      std::vector<uint32_t> words(static_cast<size_t>(wpr)), vals(static_cast<size_t>(w.in));
      for (int64_t r = 0; r < w.out; ++r) {
        for (int64_t k = 0; k < wpr; ++k) words[k] = static_cast<uint32_t>(packed[r * wpr + k]);
        UnpackBits(words.data(), w.in, w.bits, vals.data());
        for (int64_t c = 0; c < w.in; ++c) w.q[r * w.in + c] = static_cast<int32_t>(vals[c]) - w.offset();
      }
    } else if (scheme->format == "int-quantized" || scheme->format == "naive-quantized") {
      const TensorView* wv = Find(*ck, m + ".weight");
      if (wv == nullptr || wv->shape.size() != 2) {
        return absl::InvalidArgumentError(absl::StrCat(tsrc, ".weight: missing or not 2-D"));
      }
      if (wv->dtype != DType::kI8 && wv->dtype != DType::kI16 && wv->dtype != DType::kI32) {
        return absl::InvalidArgumentError(absl::StrCat(tsrc, ".weight: dtype ", DTypeName(wv->dtype), ", expected int8"));
      }
      w.out = wv->shape[0];
      w.in = wv->shape[1];
      SQ_ASSIGN_OR_RETURN(std::vector<int64_t> q, ReadIntTensor(*wv, tsrc + ".weight"));
      w.q.assign(q.begin(), q.end());
      if (!scheme->inputs.is_null()) {
        // The engine's W8A8 kind: weights int8 symmetric channel, inputs
        // int8 symmetric per-token dynamic.
        const json& in = scheme->inputs;
        const bool token_dynamic = in.value("num_bits", 0) == 8 && in.value("type", std::string("int")) == "int" &&
                                   in.value("symmetric", false) && in.contains("strategy") &&
                                   in["strategy"] == "token" && in.contains("dynamic") && in["dynamic"] == true;
        if (!token_dynamic || w.bits != 8 || !w.symmetric || w.strategy != IntStrategy::kChannel) {
          return absl::UnimplementedError(absl::StrCat(
              gwhat, ": only W8A8 (weights int8 symmetric channel, input_activations int8 symmetric token dynamic) "
                     "is supported with activation quantization"));
        }
        SQ_RETURN_IF_ERROR(ReadScales(*scale_v, tsrc + ".weight_scale", &w));
        SQ_RETURN_IF_ERROR(w.Validate(tsrc));
        const std::string p = m + ".";
        std::string codes(static_cast<size_t>(w.out * w.in), '\0');
        for (size_t i = 0; i < w.q.size(); ++i) codes[i] = static_cast<char>(static_cast<int8_t>(w.q[i]));
        std::vector<float> bias;
        if (const TensorView* b = Find(*ck, p + "bias")) {
          SQ_ASSIGN_OR_RETURN(bias, ReadFloatTensor(*b, tsrc + ".bias", {w.out}));
        }
        ck->tensors.erase(p + "weight_zero_point");
        ck->tensors[p + "weight"] = {OwnedBytes(DType::kI8, std::move(codes), {w.out, w.in}), source};
        ck->tensors[p + "weight_scale"] = {OwnedF32(w.scales, {w.out, 1}), source};
        if (!bias.empty()) ck->tensors[p + "bias"] = {OwnedF32(std::move(bias), {w.out}), source};
        ck->tensors[p + "input_qparams"] = {OwnedI32({8, 1, 1}, {3}), source};
        ck->linear_kinds[m] = kW8A8Kind;
        continue;
      }
    } else {
      return absl::UnimplementedError(absl::StrCat(gwhat, ".format \"", scheme->format,
                                                   "\": only pack-quantized, int-quantized and naive-quantized are read"));
    }
    if (scale_v == nullptr) return absl::InvalidArgumentError(absl::StrCat(tsrc, ": no weight_scale"));
    SQ_RETURN_IF_ERROR(ReadScales(*scale_v, tsrc + ".weight_scale", &w));
    if (!w.symmetric) {
      const TensorView* zp = Find(*ck, m + ".weight_zero_point");
      if (zp == nullptr) return absl::InvalidArgumentError(absl::StrCat(tsrc, ": asymmetric weights need weight_zero_point"));
      SQ_RETURN_IF_ERROR(ReadZeros(*zp, tsrc + ".weight_zero_point", scheme->format == "pack-quantized", &w));
    }
    if (const TensorView* gi = Find(*ck, m + ".weight_g_idx")) {
      SQ_ASSIGN_OR_RETURN(std::vector<int64_t> g, ReadIntTensor(*gi, tsrc + ".weight_g_idx", {w.in}));
      bool contiguous = true;
      for (int64_t c = 0; c < w.in; ++c) contiguous = contiguous && g[c] == c / w.EffectiveGroupSize();
      if (!contiguous) w.g_idx.assign(g.begin(), g.end());
    }
    if (const TensorView* b = Find(*ck, m + ".bias")) {
      SQ_ASSIGN_OR_RETURN(w.bias, ReadFloatTensor(*b, tsrc + ".bias", {w.out}));
    }
    SQ_RETURN_IF_ERROR(AddIntWeightToCheckpoint(m, w, ck));
    ck->tensors.erase(m + ".weight");
  }
  return absl::OkStatus();
}

}  // namespace squeeze
