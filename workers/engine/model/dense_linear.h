// DenseLinear: an uncompressed weight stored as F32, F16 or BF16.
//
// F32 weights are used in place (zero copy when the view is 4-byte aligned,
// e.g. a memory-mapped safetensors file). F16/BF16 weights stay in their
// stored dtype (half the memory) and are widened to fp32 tile by tile inside
// Forward. Reference: y = x * DenseWeight()^T + b.
//
// Forward runs our fp32 GEMM (kernels::GemmF32NTStrided: AVX-512 / AVX2 with
// runtime dispatch; for n_rows <= 32, decode and batched decode, a pack-free
// path that streams W once) over the pool in the fixed column chunks of
// kernels::GemmF32ChunkColumns. ForwardReference is the previous computation
// (Eigen's GEMM per column chunk) kept as the named reference path. Both are
// independent of the pool size; they sum over `in` in different orders, so
// they agree to |err| <= 1e-5 * sum_c |x_c w_c| (+ bias rounding), not bit for
// bit (tests/unit/model/dense_linear_test.cc).
//
// F16/BF16 weights at n_rows <= kHalfDirectMaxRows (with a SIMD variant
// active) skip the widening: kernels::GemmHalfNTStrided over the same column
// chunks widens in registers (one fp32 FMA chain per output, so results do
// not depend on the pool size or on which rows share the call; same
// tolerance against the double reference).
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/linear.h"

namespace squeeze {

class DenseLinear final : public LinearLayer {
 public:
  // `weight` is 2-D [out, in] with dtype F32, F16 or BF16; `bias` is empty or
  // has `out` values. The view's owner is retained.
  static absl::StatusOr<std::unique_ptr<DenseLinear>> Create(TensorView weight,
                                                             std::vector<float> bias = {});
  // Owns an fp32 copy of `weight`.
  static std::unique_ptr<DenseLinear> FromMatrix(MatrixRM weight, std::vector<float> bias = {});

  // F16/BF16 weights at n_rows <= this run the direct kernel
  // (kernels::GemmHalfNTStrided: widened in registers, each 4-row W tile
  // read once from memory and reused from cache by every 4 x rows); more
  // rows widen each column chunk to fp32 (kernels::WidenHalf) and run the
  // packed fp32 GEMM. bench_kernels BM_HalfDecodeBw, 4096x4096, 1 thread,
  // AVX-512 (Zen 4, loaded machine), direct vs SIMD-widen-then-GEMM time,
  // two runs: F16 n=8 1.77/1.38x, 16 1.40/1.45x, 32 1.27/1.23x, 48
  // 1.29/1.06x, 64 1.07/0.75x; BF16 n=8 1.44/1.27x, 16 1.00/1.47x, 32
  // 1.41/1.34x, 48 1.27/1.12x, 64 0.98/0.99x. 32 is also where the fp32 GEMM
  // switches to packing (so the F32 and 16-bit paths switch together).
  static constexpr int64_t kHalfDirectMaxRows = 32;

  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const override;
  // The reference path: the same y with Eigen's GEMM per column chunk.
  void ForwardReference(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const;
  MatrixRM DenseWeight() const override;
  absl::Span<const float> bias() const override { return bias_; }
  std::string kind() const override;
  int64_t StorageBytes() const override;
  std::vector<std::pair<std::string, TensorView>> StoredTensors() const override;

  DType dtype() const { return weight_.dtype; }
  // The stored weight bytes (row-major [out, in] of dtype()).
  const TensorView& weight_view() const { return weight_; }

 private:
  DenseLinear(TensorView weight, std::vector<float> bias);
  // Writes rows [row_begin, row_end) of W as fp32 into `dst` (row-major).
  void WidenRows(int64_t row_begin, int64_t row_end, float* dst) const;
  // Rows [row_begin, row_end) of W as fp32: in place for F32, else widened
  // into `scratch` (resized as needed).
  const float* RowsF32(int64_t row_begin, int64_t row_end, std::vector<float>& scratch) const;
  // y[i, j] += bias[j] for i < n_rows, j in [j0, j1) (no-op without bias).
  void AddBias(int64_t n_rows, int64_t j0, int64_t j1, float* y) const;

  TensorView weight_;
  std::vector<float> bias_;
  int64_t out_ = 0;
  int64_t in_ = 0;
};

}  // namespace squeeze
