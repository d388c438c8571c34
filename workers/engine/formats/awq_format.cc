#include "workers/engine/formats/awq_format.h"

#include <optional>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/int_weight.h"

namespace squeeze {
namespace {

using json = nlohmann::ordered_json;

// Why `w` cannot be an AWQ GEMM layer; "" when it can. Shape misfits are
// `shape` (may be written dense), scheme misfits are not.
std::string AwqSchemeUnfit(const IntWeight& w) {
  if (w.bits != 4) return absl::StrCat(w.bits, "-bit codes (AWQ GEMM is 4-bit only)");
  if (!w.g_idx.empty()) return "act-order g_idx (AWQ has no g_idx)";
  if (w.strategy != IntStrategy::kGroup) return "per-channel / per-tensor scales (AWQ stores one group size)";
  return "";
}
std::string AwqShapeUnfit(const IntWeight& w) {
  if (w.in % w.group_size != 0) {
    return absl::StrCat("in_features ", w.in, " is not a multiple of group_size ", w.group_size);
  }
  if (w.out % 8 != 0) return absl::StrCat("out_features ", w.out, " is not a multiple of 8 (qweight packs the output dim)");
  return "";
}

// Packs rows [out] x cols: word (c, k) nibble i <- value(8k + order[i], c).
template <typename F>
std::vector<int32_t> PackAwq(int64_t cols, int64_t out, F value) {
  std::vector<int32_t> packed(static_cast<size_t>(cols * (out / 8)));
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t k = 0; k < out / 8; ++k) {
      uint32_t word = 0;
      for (int i = 0; i < 8; ++i) word |= (static_cast<uint32_t>(value(8 * k + kAwqOrder[i], c)) & 0xFu) << (4 * i);
      packed[c * (out / 8) + k] = static_cast<int32_t>(word);
    }
  }
  return packed;
}

}  // namespace

absl::StatusOr<QuantizedExportResult> ExportAwq(const Model& model, const std::string& dir,
                                                const AwqExportOptions& options) {
  QuantizedExportResult result;
  result.format = "awq";
  std::vector<SafetensorsEntry> entries;
  std::optional<int> group_size;
  std::string first;
  DenseFallback dense;  // layers written unquantized
  int quantized = 0;
  for (const LinearSlot& slot : const_cast<Model&>(model).AllLinears()) {
    const LinearLayer* layer = slot.slot->get();
    if (layer == nullptr) return absl::InvalidArgumentError(absl::StrCat(slot.name, " is missing"));
    const std::string& m = slot.name;
    const MatrixRM reference = layer->DenseWeight();
    QuantizedLayerReport rep{m, layer->kind(), "", 0.0};
    SQ_ASSIGN_OR_RETURN(std::optional<IntWeight> iw, IntWeightFromLayer(*layer, m));
    std::string unfit;
    if (iw.has_value()) {
      if (std::string s = AwqSchemeUnfit(*iw); !s.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("awq: ", m, " (", layer->kind(), "): ", s, "; nothing was written"));
      }
      unfit = AwqShapeUnfit(*iw);
      if (!unfit.empty() && !options.unfit_as_dense) return UnfitLayerError("awq", m, layer->kind(), unfit);
    }
    if (!iw.has_value() || !unfit.empty()) {
      dense.Add(m, *layer, reference, unfit, options.dense_dtype, std::move(rep), entries, result.layers);
      continue;
    }
    const IntWeight& w = *iw;
    if (!group_size.has_value()) {
      group_size = w.group_size;
      first = m;
    } else if (*group_size != w.group_size) {
      return absl::InvalidArgumentError(absl::StrCat("awq: ", m, " has group_size ", w.group_size, " but ", first,
                                                     " has ", *group_size,
                                                     ": one quantization_config describes every layer; nothing was written"));
    }
    const int64_t ng = w.groups();
    std::vector<int32_t> qweight =
        PackAwq(w.in, w.out, [&](int64_t j, int64_t c) { return w.q[j * w.in + c] + w.offset(); });
    std::vector<int32_t> qzeros = PackAwq(ng, w.out, [&](int64_t j, int64_t g) { return w.Zero(j, g) + w.offset(); });
    std::vector<float> scales = ScalesGroupMajor(w);
    entries.push_back(StoredAs(m + ".qweight", OwnedI32(std::move(qweight), {w.in, w.out / 8})));
    entries.push_back(StoredAs(m + ".qzeros", OwnedI32(std::move(qzeros), {ng, w.out / 8})));
    entries.push_back(StoredAs(m + ".scales", OwnedF32(std::move(scales), {ng, w.out}), options.scale_dtype));
    FinishPackedLayer(m, w, options.scale_dtype, options.dense_dtype, reference, std::move(rep), entries, result.layers);
    ++quantized;
  }
  if (quantized == 0) {
    return dense.NothingPacked("awq");
  }
  json qc{{"quant_method", "awq"}, {"bits", 4}, {"group_size", *group_size}, {"zero_point", true}, {"version", "gemm"}};
  qc["modules_to_not_convert"] = dense.skipped.empty() ? json(nullptr) : json(dense.skipped);
  SQ_ASSIGN_OR_RETURN(result.bytes, WriteQuantizedHfDir(model, dir, options.dense_dtype, std::move(entries), qc.dump(), {},
                                                        options.max_shard_bytes, &result.shards));
  return result;
}

absl::Status AwqToCheckpoint(const std::string& config_text, const std::string& source, CheckpointTensors* ck) {
  const std::string what = absl::StrCat(source, ": awq config");
  json qc = json::parse(config_text, nullptr, false);
  if (qc.is_discarded() || !qc.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not a JSON object"));
  auto int_of = [&](const char* key, const char* alt, int64_t dflt) -> absl::StatusOr<int64_t> {
    for (const char* k : {key, alt}) {
      if (qc.contains(k) && !qc[k].is_null()) {
        if (!qc[k].is_number_integer()) return absl::InvalidArgumentError(absl::StrCat(what, ".", k, ": not an integer"));
        return qc[k].get<int64_t>();
      }
    }
    return dflt;
  };
  SQ_ASSIGN_OR_RETURN(int64_t bits, int_of("bits", "w_bit", 4));
  SQ_ASSIGN_OR_RETURN(int64_t group_size, int_of("group_size", "q_group_size", 128));
  if (bits != 4) return absl::UnimplementedError(absl::StrCat(what, ".bits ", bits, ": only 4-bit AWQ is read"));
  if (group_size <= 0) {
    return absl::UnimplementedError(absl::StrCat(what, ".group_size ", group_size, ": only positive group sizes are read"));
  }
  const std::string version = absl::AsciiStrToLower(qc.value("version", std::string("gemm")));
  if (version != "gemm") {
    return absl::UnimplementedError(absl::StrCat(what, ".version \"", version, "\": only gemm packing is read"));
  }
  if (qc.contains("zero_point") && qc["zero_point"].is_boolean() && !qc["zero_point"].get<bool>()) {
    return absl::UnimplementedError(absl::StrCat(what, ".zero_point false: only AWQ with zero points is read"));
  }
  std::vector<std::string> modules;
  for (const auto& [name, st] : ck->tensors) {
    if (absl::EndsWith(name, ".qweight")) modules.push_back(name.substr(0, name.size() - 8));
  }
  int inverse[8];
  for (int i = 0; i < 8; ++i) inverse[kAwqOrder[i]] = i;
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
      return absl::InvalidArgumentError(absl::StrCat(tsrc, ".qweight: expected I32 [in, out / 8], got ",
                                                     DTypeName(qw->dtype), " ", ShapeString(qw->shape)));
    }
    IntWeight w;
    w.bits = 4;
    w.symmetric = false;
    w.strategy = IntStrategy::kGroup;
    w.group_size = static_cast<int>(group_size);
    w.in = qw->shape[0];
    w.out = qw->shape[1] * 8;
    if (w.in % group_size != 0) {
      return absl::InvalidArgumentError(absl::StrCat(tsrc, ": in_features ", w.in, " is not a multiple of group_size ", group_size));
    }
    const int64_t ng = w.groups();
    SQ_ASSIGN_OR_RETURN(std::vector<int64_t> qweight, ReadIntTensor(*qw, tsrc + ".qweight"));
    SQ_ASSIGN_OR_RETURN(std::vector<int64_t> qzeros, ReadIntTensor(*qz, tsrc + ".qzeros", {ng, w.out / 8}));
    SQ_ASSIGN_OR_RETURN(std::vector<float> scales, ReadFloatTensor(*sc, tsrc + ".scales", {ng, w.out}));
    auto nibble = [&](const std::vector<int64_t>& words, int64_t row, int64_t j) {
      const uint32_t word = static_cast<uint32_t>(words[row * (w.out / 8) + j / 8]);
      return static_cast<int32_t>((word >> (4 * inverse[j % 8])) & 0xFu);
    };
    w.q.resize(static_cast<size_t>(w.out * w.in));
    for (int64_t c = 0; c < w.in; ++c) {
      for (int64_t j = 0; j < w.out; ++j) w.q[j * w.in + c] = nibble(qweight, c, j) - w.offset();
    }
    w.scales.resize(static_cast<size_t>(w.out * ng));
    w.zeros.resize(static_cast<size_t>(w.out * ng));
    bool all_mid = true;
    for (int64_t g = 0; g < ng; ++g) {
      for (int64_t j = 0; j < w.out; ++j) {
        w.scales[j * ng + g] = scales[g * w.out + j];
        w.zeros[j * ng + g] = nibble(qzeros, g, j) - w.offset();
        all_mid = all_mid && w.zeros[j * ng + g] == 0;
      }
    }
    if (all_mid) {
      w.symmetric = true;
      w.zeros.clear();
    }
    if (const TensorView* b = find(".bias")) {
      SQ_ASSIGN_OR_RETURN(w.bias, ReadFloatTensor(*b, tsrc + ".bias", {w.out}));
    }
    SQ_RETURN_IF_ERROR(AddIntWeightToCheckpoint(m, w, ck));
  }
  return absl::OkStatus();
}

}  // namespace squeeze
