// SparseLinear: a pruned linear layer whose zeros are not stored, the output
// of the pruning modifiers (magnitude / Wanda / SparseGPT) with
// `storage: sparse` (their default), and how it is saved in artifacts.
//
// Two storage formats (tensor names relative to the module, as StoredTensors()
// gives them and as SaveModel writes "<module>.<name>"):
//
// 1. Bitmask (any zero pattern). kind() = "sparse_bitmask".
//    "weight_shape"       I64 [2]            {out, in}
//    "weight_bitmask"     U8  [out, ceil(in / 8)]
//                         bit (j % 8) of byte j / 8 of row r (least
//                         significant bit first, numpy packbits
//                         bitorder="little") is 1 iff W[r, j] is stored;
//                         padding bits of the last byte are 0
//    "weight_row_offsets" I64 [out]          index into weight_values of the
//                         first stored value of row r (row 0: 0); ascending
//    "weight_values"      F32 [nnz]          the stored values, row-major
//                         (row by row, columns ascending); nnz = popcount of
//                         the whole bitmask; a stored value may itself be 0
//                         only in the N:M format below, never here
//    "bias"               F32 [out]          when the layer has a bias
//    Bytes: 4 nnz + out ceil(in / 8) + 8 out (+ 4 out bias) (+ 16 shape).
//    This is compressed-tensors' "sparse-bitmask" layout (compressed /
//    bitmask / row_offsets / shape) under squeeze's names.
//
// 2. N:M (every group of M consecutive inputs of a row keeps at most K = M - N
//    weights; mask_structure "N:M" in the recipe, e.g. "2:4" keeps 2 of 4).
//    kind() = "sparse_<K>of<M>", e.g. "sparse_2of4". Needs M <= 16 and
//    in % M == 0.
//    "weight_shape"       I64 [2]            {out, in}
//    "weight_nm"          I64 [2]            {K, M}
//    "weight_values"      F32 [out, in / M * K]   for each group g (ascending)
//                         its K kept values in ascending input order; a group
//                         with fewer than K nonzeros is padded with zeros
//                         stored at its lowest free positions
//    "weight_indices"     U8  [out, ceil(in / M * K / 2)]   the position
//                         (0..M-1) inside its group of each value, 4 bits
//                         each: value 2i in the low nibble of byte i, value
//                         2i + 1 in the high nibble; positions within a group
//                         strictly ascending; an odd final nibble is 0
//    "bias"               F32 [out]          when the layer has a bias
//    Bytes: 4.5 bytes per kept value (2:4: 2.25 bytes per weight vs 4 dense).
//    The weight is W[r, g M + idx] = value, every other entry 0.
//
// Forward: y[t, r] = sum over the stored (j, v) of row r of v * x[t, j]
// (+ b[r]), reading the compressed arrays in place (no dense weight is kept):
// kernels::SparseBitmaskGemm / SparseNMGemm (workers/kernels/cpu/
// sparse_gemm.h: AVX-512 / AVX2 with runtime dispatch, over the pool in
// fixed row blocks, results independent of the pool size). Up to
// kernels::kSparseGemvMaxRows (16) rows of x the sparse kernels run; more
// rows (prefill, calibration) densify 64-row weight tiles into a scratch
// buffer and run the fp32 GEMM. It is not bit-identical to a dense matmul
// (summation order); the plain reference is x * DenseWeight()^T + b (tests
// compare the two). ForwardPlain is the earlier scalar path (one gathered
// value at a time), kept for comparison in tests and bench_sparse.
// No dense copy is ever made: the kernels run at every density (a dense
// copy would add 4 bytes per weight to the sparse arrays the artifact needs).
// bench_sparse on Llama-7B shapes, batch 1 (2 threads, the shared 2-core
// machine at load ~12): bitmask 50% decode 1.3-1.6x faster than the dense
// fp32 GEMV, 70% 1.7-2.4x, 90% 1.9-2.6x (64-input mask words and a software
// prefetch of the values; it was 0.34-0.64x before); 2:4 1.1-1.5x; both far
// faster than ForwardPlain. At batch 8 dense (one pass over W for 8 rows)
// still wins: bitmask 50% 0.4-0.8x, 2:4 0.3-0.7x. Rule for recipes: sparse
// storage speeds up single-sequence decode; for batched serving prefer
// `storage: dense` unless artifact bytes matter more.
// Loading: FromStored checks every shape, offset, popcount and index, so a
// damaged file is an InvalidArgument naming the module, never a bad read.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/linear.h"
#include "workers/kernels/cpu/sparse_gemm.h"

namespace squeeze {

enum class SparseFormat { kBitmask, kNM };

class SparseLinear final : public LinearLayer {
 public:
  // The layer holding the nonzeros of `w` [out, in] (bias empty or out values).
  // kNM: keep / group are K and M (1 <= K < M <= 16, in % M == 0); a group
  // of `w` with more than K nonzeros is an InvalidArgument.
  static absl::StatusOr<std::unique_ptr<SparseLinear>> FromDense(const MatrixRM& w, std::vector<float> bias,
                                                                 SparseFormat format, int keep = 0, int group = 0);

  // Rebuilds the layer from the tensors above ("weight_bitmask" present =
  // bitmask, "weight_nm" present = N:M). Errors name `module`.
  static absl::StatusOr<std::unique_ptr<SparseLinear>> FromStored(const std::string& module,
                                                                  const std::map<std::string, TensorView>& tensors);

  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const override;
  // The scalar gather forward (before the kernels): same contract as Forward.
  void ForwardPlain(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const;
  MatrixRM DenseWeight() const override;
  absl::Span<const float> bias() const override { return bias_; }
  std::string kind() const override;
  int64_t StorageBytes() const override;
  std::vector<std::pair<std::string, TensorView>> StoredTensors() const override;
  // Stored values that are not 0.
  int64_t NonZeroWeights() const override;

  SparseFormat format() const { return format_; }
  // Views of the stored arrays for the kernels (valid while the layer lives).
  kernels::SparseNMWeights NMView() const;            // kNM only
  kernels::SparseBitmaskWeights BitmaskView() const;  // kBitmask only
  int64_t stored_values() const { return static_cast<int64_t>(values_.size()); }

 private:
  SparseLinear() = default;
  int64_t mask_row_bytes() const { return (in_ + 7) / 8; }
  int64_t values_per_row() const { return in_ / group_ * keep_; }  // N:M
  int64_t index_row_bytes() const { return (values_per_row() + 1) / 2; }  // N:M
  // The input indices of row r's stored values, in storage order.
  void RowColumns(int64_t r, std::vector<int32_t>* cols) const;

  SparseFormat format_ = SparseFormat::kBitmask;
  int64_t out_ = 0, in_ = 0;
  int keep_ = 0, group_ = 0;  // N:M only
  std::vector<int64_t> shape_;         // {out, in}
  std::vector<int64_t> nm_;            // {K, M} (N:M only)
  std::vector<uint8_t> bitmask_;       // bitmask: [out, ceil(in / 8)]
  std::vector<int64_t> row_offsets_;   // bitmask: [out]
  std::vector<uint8_t> indices_;       // N:M: [out, ceil(per_row / 2)]
  std::vector<float> values_;
  std::vector<float> bias_;
};

// The prefix of every SparseLinear kind.
inline constexpr char kSparseKindPrefix[] = "sparse_";

}  // namespace squeeze
