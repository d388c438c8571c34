#include "workers/engine/formats/hf_dense_export.h"

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/hf_checkpoint.h"
#include "workers/engine/model/dense_linear.h"

namespace squeeze {

absl::StatusOr<QuantizedExportResult> ExportDenseHf(Model& model, const std::string& dir, const SaveOptions& options) {
  QuantizedExportResult result;
  result.format = "hf";
  for (const LinearSlot& slot : model.AllLinears()) {
    LinearLayer* layer = slot.slot->get();
    if (layer == nullptr) return absl::InvalidArgumentError(absl::StrCat(slot.name, " is missing"));
    QuantizedLayerReport rep{slot.name, layer->kind(), "dense", 0.0};
    MatrixRM w = layer->DenseWeight();
    rep.rel_error = WrittenRelativeError(w.unaryExpr([&](float v) { return RoundTo(options.dtype, v); }), w);
    if (!absl::StartsWith(layer->kind(), "dense_")) {
      rep.how = absl::StrCat("dense (", layer->kind(), " expanded)");
      absl::Span<const float> b = layer->bias();
      *slot.slot = DenseLinear::FromMatrix(std::move(w), std::vector<float>(b.begin(), b.end()));
    }
    result.layers.push_back(std::move(rep));
  }
  SQ_ASSIGN_OR_RETURN(ShardedWrite written, WriteHfCheckpoint(model, dir, options));
  result.bytes = written.total_bytes;
  result.shards = written.shards;
  return result;
}

}  // namespace squeeze
