// GgmlBlockLinear: a linear layer that keeps ggml Q4_0 / Q8_0 weight blocks
// exactly as a GGUF file stores them (layout in workers/kernels/cpu/q8_0_gemm.h)
// and runs the block kernels on them: activations quantized to Q8_0 blocks
// on the fly, integer block dots, as llama.cpp's CPU backend computes.
//
// Its effective weight (DenseWeight) is the exact dequantization d * q of the
// blocks, i.e. what the GGUF reader's dequantize-at-load path (a DenseLinear)
// multiplies by; Forward differs from that dense path only by the int8
// rounding of the activations (|x - da * qa| <= da / 2 per element, da =
// max |x| / 127 of its 32-column block).
//
// Stored tensors (kind "gguf_q4_0" / "gguf_q8_0"):
//   weight_blocks  U8  [out, in / 32 * block bytes]  the blocks, row by row
//   weight_shape   I64 [2] = {out, in}
//   bias           F32 [out]  (when the layer has one)
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/linear.h"
#include "workers/kernels/cpu/q8_0_gemm.h"

namespace squeeze {

inline constexpr char kGgmlBlockKindPrefix[] = "gguf_q";

class GgmlBlockLinear final : public LinearLayer {
 public:
  // Copies `bytes` (out * in / 32 blocks of `kind`). InvalidArgument when in
  // is not a positive multiple of 32, out < 1, the byte count does not match
  // or the bias has the wrong length.
  static absl::StatusOr<std::unique_ptr<GgmlBlockLinear>> FromBlocks(kernels::GgmlBlockKind kind, int64_t out,
                                                                     int64_t in, const uint8_t* bytes,
                                                                     int64_t num_bytes, std::vector<float> bias = {});
  // Rebuilds a layer from StoredTensors() (relative names); `kind` is the
  // recorded kind ("gguf_q4_0" / "gguf_q8_0"). Errors name `kind` and the tensor.
  // A "weight_blocks" view with an owner (a file mapping, a buffer of the
  // GGUF import) is kept as is, sharing that owner (no copy: a GGUF file's
  // blocks are used where they lie in the mapping); a view without an owner
  // is copied.
  static absl::StatusOr<std::unique_ptr<GgmlBlockLinear>> FromStored(const std::string& kind,
                                                                     const std::map<std::string, TensorView>& tensors);

  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const override;
  MatrixRM DenseWeight() const override;
  absl::Span<const float> bias() const override { return bias_; }
  std::string kind() const override;
  int64_t StorageBytes() const override;
  std::vector<std::pair<std::string, TensorView>> StoredTensors() const override;

  kernels::GgmlBlockWeights View() const { return {kind_, out_, in_, blocks_}; }

 private:
  GgmlBlockLinear(kernels::GgmlBlockKind kind, int64_t out, int64_t in) : kind_(kind), out_(out), in_(in) {}

  kernels::GgmlBlockKind kind_;
  int64_t out_ = 0, in_ = 0;
  // out * RowBytes() bytes at blocks_, kept alive (and never written) by owner_.
  const uint8_t* blocks_ = nullptr;
  int64_t num_bytes_ = 0;
  std::shared_ptr<const void> owner_;
  std::vector<float> bias_;
  int64_t shape_[2] = {0, 0};
};

}  // namespace squeeze
