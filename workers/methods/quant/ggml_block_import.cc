#include "workers/methods/quant/ggml_block_import.h"

#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/methods/quant/ggml_block_linear.h"
#include "workers/methods/stored_linear.h"

namespace squeeze {
namespace {

// GGUF tensor names of a block's linears, in Model::BlockLinears order.
constexpr const char* kGgufBlockNames[] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                           "ffn_gate", "ffn_up", "ffn_down"};

// Builds the block layer for `info` in place of `*slot`; q/k rows (heads > 0)
// go from llama.cpp's interleaved to the half-split layout: engine row
// h*hd + j*hd/2 + i <- file row h*hd + 2i + j (gguf_model.h).
absl::Status Replace(const GgufTensorInfo& info, kernels::GgmlBlockKind kind, int64_t heads, int64_t head_dim,
                     std::unique_ptr<LinearLayer>* slot) {
  const LinearLayer& old = **slot;
  const std::vector<int64_t> shape = info.shape();
  if (shape.size() != 2 || shape[0] != old.out_features() || shape[1] != old.in_features()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", info.name, ": shape does not match the model's [",
                                                   old.out_features(), ", ", old.in_features(), "]"));
  }
  const int64_t out = shape[0], in = shape[1];
  const int64_t row_bytes = in / kernels::kGgmlBlockCols * kernels::GgmlBlockBytes(kind);
  if (static_cast<int64_t>(info.nbytes) != out * row_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", info.name, ": ", info.nbytes, " bytes, expected ",
                                                   out * row_bytes));
  }
  std::vector<uint8_t> rows(info.data, info.data + info.nbytes);
  if (heads > 0) {
    if (heads * head_dim != out || head_dim % 2 != 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", info.name, ": ", out, " rows are not ", heads,
                                                     " heads of an even head_dim ", head_dim));
    }
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < head_dim / 2; ++i) {
        for (int64_t j = 0; j < 2; ++j) {
          std::memcpy(rows.data() + (h * head_dim + j * head_dim / 2 + i) * row_bytes,
                      info.data + (h * head_dim + 2 * i + j) * row_bytes, row_bytes);
        }
      }
    }
  }
  std::vector<float> bias(old.bias().begin(), old.bias().end());
  auto layer = GgmlBlockLinear::FromBlocks(kind, out, in, rows.data(), static_cast<int64_t>(rows.size()),
                                           std::move(bias));
  if (!layer.ok()) return absl::InvalidArgumentError(absl::StrCat("tensor ", info.name, ": ", layer.status().message()));
  *slot = std::move(*layer);
  return absl::OkStatus();
}

bool BlockKindOf(GgmlType type, kernels::GgmlBlockKind* kind) {
  if (type == GgmlType::kQ4_0) {
    *kind = kernels::GgmlBlockKind::kQ4_0;
    return true;
  }
  if (type == GgmlType::kQ8_0) {
    *kind = kernels::GgmlBlockKind::kQ8_0;
    return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<int> UseGgufBlockLayers(const GgufFile& file, Model& model) {
  int replaced = 0;
  const int64_t hd = model.config.head_dim > 0 ? model.config.head_dim : model.config.dim / model.config.n_heads;
  for (int l = 0; l < static_cast<int>(model.blocks.size()); ++l) {
    std::vector<LinearSlot> slots = model.BlockLinears(l);
    for (size_t k = 0; k < slots.size(); ++k) {
      const std::string name = absl::StrCat("blk.", l, ".", kGgufBlockNames[k], ".weight");
      const GgufTensorInfo* info = file.FindTensor(name);
      kernels::GgmlBlockKind kind;
      if (info == nullptr || !BlockKindOf(info->type, &kind)) continue;
      const int64_t heads = k == 0 ? model.config.n_heads : (k == 1 ? model.config.n_kv_heads : 0);
      SQ_RETURN_IF_ERROR(Replace(*info, kind, heads, hd, slots[k].slot));
      ++replaced;
    }
  }
  if (model.lm_head != nullptr) {
    const GgufTensorInfo* info = file.FindTensor("output.weight");
    kernels::GgmlBlockKind kind;
    if (info != nullptr && BlockKindOf(info->type, &kind)) {
      SQ_RETURN_IF_ERROR(Replace(*info, kind, 0, hd, &model.lm_head));
      ++replaced;
    }
  }
  return replaced;
}

absl::StatusOr<GgufModel> LoadGgufModelWithBlocks(const std::string& path) {
  RegisterMethodLinearLoaders();
  GgufImportOptions options;
  options.keep_ggml_blocks = true;
  return LoadGgufModel(path, options);
}

absl::StatusOr<GgufModel> LoadGgufModelWithBlocksReference(const std::string& path) {
  SQ_ASSIGN_OR_RETURN(GgufModel loaded, LoadGgufModel(path));
  SQ_ASSIGN_OR_RETURN(GgufFile file, ReadGguf(path));
  SQ_RETURN_IF_ERROR(UseGgufBlockLayers(file, loaded.model).status());
  return loaded;
}

}  // namespace squeeze
