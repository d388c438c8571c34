#include "workers/methods/stored_linear.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "workers/engine/formats/linear_loaders.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/methods/lowrank/factorized_linear.h"
#include "workers/methods/prune/sparse_linear.h"
#include "workers/methods/quant/ggml_block_linear.h"
#include "workers/methods/quant/llm_int8_linear.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/w8a8_linear.h"

namespace squeeze {

absl::StatusOr<std::unique_ptr<LinearLayer>> LinearFromStoredTensors(
    const std::string& module, const std::map<std::string, TensorView>& tensors) {
  if (tensors.count("weight_packed")) {
    auto layer = PackedIntLinear::FromStored(module, tensors);
    if (!layer.ok()) return layer.status();
    return std::unique_ptr<LinearLayer>(std::move(*layer));
  }
  if (tensors.count("weight_u")) {  // low-rank (lowrank/factorized_linear.h)
    auto layer = FactorizedLinear::FromStored(module, tensors);
    if (!layer.ok()) return layer.status();
    return std::unique_ptr<LinearLayer>(std::move(*layer));
  }
  if (tensors.count("weight_values")) {  // pruned, zeros not stored (prune/sparse_linear.h)
    auto layer = SparseLinear::FromStored(module, tensors);
    if (!layer.ok()) return layer.status();
    return std::unique_ptr<LinearLayer>(std::move(*layer));
  }
  if (auto w8 = tensors.find("weight"); w8 != tensors.end() && w8->second.dtype == DType::kI8) {
    // int8 weights with activation quantization (quant/w8a8_linear.h, quant/llm_int8_linear.h).
    if (tensors.count("llm_int8_threshold")) {
      auto layer = LLMInt8Linear::FromStored(module, tensors);
      if (!layer.ok()) return layer.status();
      return std::unique_ptr<LinearLayer>(std::move(*layer));
    }
    auto layer = W8A8Linear::FromStored(module, tensors);
    if (!layer.ok()) return layer.status();
    return std::unique_ptr<LinearLayer>(std::move(*layer));
  }
  auto w = tensors.find("weight");
  if (w == tensors.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(module, ": no weight or weight_packed tensor"));
  }
  std::vector<float> bias;
  if (auto b = tensors.find("bias"); b != tensors.end()) {
    auto values = ToFloat32(b->second, absl::StrCat(module, ".bias"));
    if (!values.ok()) return values.status();
    bias = std::move(*values);
  }
  auto layer = DenseLinear::Create(w->second, std::move(bias));
  if (!layer.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(module, ": ", layer.status().message()));
  }
  return std::unique_ptr<LinearLayer>(std::move(*layer));
}

void RegisterMethodLinearLoaders() {
  static const bool registered = [] {
    RegisterLinearLoader("packed_int_", [](const std::string& kind, const std::map<std::string, TensorView>& t)
                                            -> absl::StatusOr<std::unique_ptr<LinearLayer>> {
      auto layer = PackedIntLinear::FromStored(kind, t);
      if (!layer.ok()) return layer.status();
      if ((*layer)->kind() != kind) {
        return absl::InvalidArgumentError(
            absl::StrCat("recorded kind ", kind, " but the tensors describe ", (*layer)->kind()));
      }
      return std::unique_ptr<LinearLayer>(std::move(*layer));
    });
    RegisterLinearLoader(kLowRankKindPrefix, [](const std::string& kind, const std::map<std::string, TensorView>& t)
                                                 -> absl::StatusOr<std::unique_ptr<LinearLayer>> {
      auto layer = FactorizedLinear::FromStored(kind, t);
      if (!layer.ok()) return layer.status();
      if ((*layer)->kind() != kind) {
        return absl::InvalidArgumentError(
            absl::StrCat("recorded kind ", kind, " but the tensors describe ", (*layer)->kind()));
      }
      return std::unique_ptr<LinearLayer>(std::move(*layer));
    });
    RegisterLinearLoader(kSparseKindPrefix, [](const std::string& kind, const std::map<std::string, TensorView>& t)
                                                -> absl::StatusOr<std::unique_ptr<LinearLayer>> {
      auto layer = SparseLinear::FromStored(kind, t);
      if (!layer.ok()) return layer.status();
      if ((*layer)->kind() != kind) {
        return absl::InvalidArgumentError(
            absl::StrCat("recorded kind ", kind, " but the tensors describe ", (*layer)->kind()));
      }
      return std::unique_ptr<LinearLayer>(std::move(*layer));
    });
    RegisterLinearLoader("w8a8_", [](const std::string& kind, const std::map<std::string, TensorView>& t)
                                      -> absl::StatusOr<std::unique_ptr<LinearLayer>> {
      auto layer = W8A8Linear::FromStored(kind, t);
      if (!layer.ok()) return layer.status();
      if ((*layer)->kind() != kind) {
        return absl::InvalidArgumentError(
            absl::StrCat("recorded kind ", kind, " but the tensors describe ", (*layer)->kind()));
      }
      return std::unique_ptr<LinearLayer>(std::move(*layer));
    });
    RegisterLinearLoader(kLlmInt8Kind, [](const std::string& kind, const std::map<std::string, TensorView>& t)
                                           -> absl::StatusOr<std::unique_ptr<LinearLayer>> {
      auto layer = LLMInt8Linear::FromStored(kind, t);
      if (!layer.ok()) return layer.status();
      if ((*layer)->kind() != kind) {
        return absl::InvalidArgumentError(
            absl::StrCat("recorded kind ", kind, " but the tensors describe ", (*layer)->kind()));
      }
      return std::unique_ptr<LinearLayer>(std::move(*layer));
    });
    // ggml Q4_0 / Q8_0 blocks kept from a GGUF import (quant/ggml_block_linear.h).
    RegisterLinearLoader(kGgmlBlockKindPrefix, [](const std::string& kind, const std::map<std::string, TensorView>& t)
                                                   -> absl::StatusOr<std::unique_ptr<LinearLayer>> {
      auto layer = GgmlBlockLinear::FromStored(kind, t);
      if (!layer.ok()) return layer.status();
      return std::unique_ptr<LinearLayer>(std::move(*layer));
    });
    return true;
  }();
  (void)registered;
}

std::map<std::string, std::map<std::string, TensorView>> GroupTensorsByModule(
    const std::map<std::string, TensorView>& all, const std::vector<std::string>& modules) {
  std::map<std::string, std::map<std::string, TensorView>> out;
  for (const std::string& m : modules) {
    const std::string prefix = m + ".";
    for (auto it = all.lower_bound(prefix); it != all.end() && absl::StartsWith(it->first, prefix); ++it) {
      const std::string rest = it->first.substr(prefix.size());
      if (rest.find('.') != std::string::npos) continue;  // a child module's tensor
      out[m][rest] = it->second;
    }
  }
  return out;
}

}  // namespace squeeze
