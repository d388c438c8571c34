// GgmlBlockLinear: a linear layer holding ggml Q4_0 / Q8_0 weight blocks
// exactly (layout in workers/kernels/cpu/q8_0_gemm.h; stored and saved as
// the GGUF file's bytes) and computing what the block kernels compute:
// activations quantized to Q8_0 blocks on the fly, integer block dots, as
// llama.cpp's CPU backend does (held and run as packed-int weights, below).
//
// Its effective weight (DenseWeight) is the exact dequantization d * q of the
// blocks, i.e. what the GGUF reader's dequantize-at-load path (a DenseLinear)
// multiplies by; Forward differs from that dense path only by the int8
// rounding of the activations (|x - da * qa| <= da / 2 per element, da =
// max |x| / 127 of its 32-column block).
//
// Forward runs the packed-int kernels (packed_int_gemm.h): at construction
// the blocks are converted once into a PackedIntWeights layout and released
// (never both copies): Q4_0 as 4-bit codes u = nibble in that layout's
// column order (byte k of a row: column 2k low, 2k + 1 high), Q8_0 as 8-bit
// codes u = qs + 128; no zero points, so q = u - 2^(bits-1) is ggml's code;
// rows in 64-byte aligned storage; fp32 scales [out, in / 32] = fp32(d_w),
// exact. The int8-activation chain of packed_int_gemm.h on
// QuantizeActivationsQ8_0's activations (qa, a = da, qsum = block sums) is
// q8_0_gemm.h's chain term for term (d_g = p_b exact, s_g * a_g = fp32(d_w) *
// da_b, fma block after block, + bias), so Forward equals
// GgmlBlockGemmReference bit for bit on every variant (a per-group
// QuantizeActivationGroups would not: its 127 / amax and unrounded a differ).
// Memory: fp32 scales cost 4 / 32 bytes per weight instead of 2 / 32 (Q4_0
// 0.625 instead of 0.5625 bytes, Q8_0 1.125 instead of 1.0625);
// StorageBytes reports what is held. Layers that stay blocks (the block
// kernels): in > 65536 (the packed path's int32 bound) or a scale whose fp16
// -> fp32 -> fp16 round trip is not exact (a NaN payload), so that the
// stored blocks are always the original bytes.
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
#include "workers/engine/core/aligned_vector.h"
#include "workers/engine/model/linear.h"
#include "workers/kernels/cpu/packed_int_gemm.h"
#include "workers/kernels/cpu/q8_0_gemm.h"

namespace squeeze {

inline constexpr char kGgmlBlockKindPrefix[] = "gguf_q";

// CacheLineAllocator whose resize() leaves new elements uninitialized (no
// zero-fill pass), so that a converted layer's pages are first touched when
// written, as the source pages are released (GgmlBlockLinear's load keeps
// about one copy of each layer resident).
template <typename T>
struct UninitCacheLineAllocator : CacheLineAllocator<T> {
  UninitCacheLineAllocator() = default;
  template <typename U>
  UninitCacheLineAllocator(const UninitCacheLineAllocator<U>&) {}  // NOLINT: rebinding is implicit
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U>
  bool operator==(const UninitCacheLineAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const UninitCacheLineAllocator<U>&) const { return false; }
};

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

  // The layer's weights as ggml blocks, and what keeps those bytes alive
  // (hold the returned object while using the view). For a converted
  // layer the blocks are rebuilt from the packed layout on every call (the
  // exact original bytes): for tests, saving and
  // reference runs, not for the forward path.
  struct BlockView : kernels::GgmlBlockWeights {
    std::shared_ptr<const void> owner;
  };
  BlockView View() const;
  // True when Forward runs the packed-int kernels (see above).
  bool packed() const { return !packed_.empty(); }
  // The packed-int view of a converted layer (packed() only).
  kernels::PackedIntWeights PackedView() const;

 private:
  GgmlBlockLinear(kernels::GgmlBlockKind kind, int64_t out, int64_t in) : kind_(kind), out_(out), in_(in) {}
  // Sets the weights from `bytes` (out * row bytes, checked by the caller):
  // converted when possible, else kept as blocks, shared with
  // `owner` when non-null, copied otherwise.
  void SetWeights(const uint8_t* bytes, int64_t num_bytes, std::shared_ptr<const void> owner);
  // Rebuilds the blocks of a converted layer.
  std::shared_ptr<const std::vector<uint8_t>> RebuildBlocks() const;

  kernels::GgmlBlockKind kind_;
  int64_t out_ = 0, in_ = 0;
  // Blocks (not converted): out * RowBytes() bytes at blocks_, kept alive
  // (and never written) by owner_; null for a converted layer.
  const uint8_t* blocks_ = nullptr;
  int64_t num_bytes_ = 0;  // bytes of the blocks (either form)
  std::shared_ptr<const void> owner_;
  // Converted: [out, in * bits / 32] words (packed_int_gemm.h layout) and
  // [out, in / 32] fp32 scales; empty otherwise.
  std::vector<uint32_t, UninitCacheLineAllocator<uint32_t>> packed_;
  std::vector<float, UninitCacheLineAllocator<float>> scales_;
  std::vector<float> bias_;
  int64_t shape_[2] = {0, 0};
};

}  // namespace squeeze
