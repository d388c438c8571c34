// PackedIntLinear: a linear layer whose weight is stored as packed b-bit
// integers (b = 2..8) with fp32 scales and optional integer zero points, as
// written by RTN (and later GPTQ / AWQ). Forward runs the packed-int kernels
// of workers/kernels/cpu/packed_int_gemm.h with one of two activation
// arithmetics (PackedActivations, chosen per layer, fp32 by default):
//   kFp32  the exact dequantized product in fp32 (the reference dequantizes
//          tile by tile and multiplies with Eigen);
//   kInt8  activations quantized to int8 on the fly per weight group
//          (symmetric, scale = group amax / 127) and exact integer group dot
//          products with the zero point folded in through the activation sums,
//          as llama.cpp does on CPU; the SIMD kernels equal their plain
//          reference bit for bit. Changes the numbers (bounded by the
//          activation rounding), so it is opt-in: `--packed-activations int8`
//          on squeeze eval / generate / eval-tasks.
//
// Storage layout (written down once; names follow compressed-tensors'
// "pack-quantized" format):
//   weight_packed      I32 [out, words_per_row]
//       per_word = 32 / bits values per 32-bit word (8 for int4, 4 for int8,
//       10 for int3: the top 2 bits stay zero). Value j of a row lives in word
//       j / per_word at bit offset (j % per_word) * bits, as the unsigned code
//       u = q - qmin (q in [qmin, qmax], see quant_args.h). Each row starts
//       on a new word; padding slots at the end of a row hold code 0.
//       words_per_row = ceil(in / per_word).
//   weight_scale       F32 [out, groups_per_row]   (tensor strategy: every
//       row repeats the one scale, so the shape is the same for all strategies)
//   weight_zero_point  I32 [out, groups_per_row]   (asymmetric only; q units)
//   weight_shape       I64 [2] = {out, in}
//   weight_qparams     I32 [4] = {num_bits, symmetric (0/1), strategy
//       (0 tensor, 1 channel, 2 group), group_size}: makes the layer
//       self-describing, so a loader needs nothing but these tensors.
//   bias               F32 [out]                   (when the layer has one)
//   weight_g_idx       I32 [in]   (optional; GPTQ act-order "group"): the
//       group of each input column, in [0, groups_per_row)
// Group g of a row covers inputs [g * G, min((g + 1) * G, in)), G = group
// size (in for tensor / channel strategies), unless weight_g_idx is present:
// then input c uses the scale / zero point of group g_idx[c].
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/core/aligned_vector.h"
#include "workers/engine/model/linear.h"
#include "workers/engine/model/model.h"
#include "workers/methods/quant/quant_args.h"

namespace squeeze {

// One storage word of weight_packed.
struct PackedWord {
  uint32_t bits;  // little-endian in the file, values low bits first
};
static_assert(sizeof(PackedWord) == 4, "weight_packed is a stream of 32-bit words");

inline constexpr int ValuesPerWord(int num_bits) { return 32 / num_bits; }

// Activation arithmetic of PackedIntLinear::Forward (see the top of this file).
enum class PackedActivations { kFp32 = 0, kInt8 = 1 };

// "fp32" | "int8" (the CLI spelling); InvalidArgument naming the value otherwise.
absl::StatusOr<PackedActivations> ParsePackedActivations(absl::string_view name);
const char* PackedActivationsName(PackedActivations a);

// Widest weight group the int8-activation path takes: int32 group sums of
// (q - z) * qa, |q - z| <= 255, |qa| <= 127, stay below 2^31. A layer with a
// wider group keeps fp32 activations whatever it is asked.
inline constexpr int64_t kPackedInt8MaxGroupColumns = int64_t{1} << 16;

class PackedIntLinear final : public LinearLayer {
 public:
  // Packs integer codes `q` (row-major [out, in], each in [qmin, qmax] of
  // `args`) with `scales` and `zero_points` ([out, groups_per_row] each;
  // zero_points empty when args.symmetric). `g_idx`: empty (contiguous
  // groups) or [in] group indices (see weight_g_idx above). InvalidArgument on
  // a value out of range or sizes that do not match.
  static absl::StatusOr<std::unique_ptr<PackedIntLinear>> FromCodes(
      const WeightQuantArgs& args, int64_t out, int64_t in, const std::vector<int32_t>& q,
      std::vector<float> scales, std::vector<int32_t> zero_points, std::vector<float> bias = {},
      std::vector<int32_t> g_idx = {});

  // Rebuilds a layer from the tensors StoredTensors() named (relative names:
  // "weight_packed", ...), e.g. read back from a safetensors file. Every
  // shape, dtype and code range is checked; errors name `module`.
  static absl::StatusOr<std::unique_ptr<PackedIntLinear>> FromStored(
      const std::string& module, const std::map<std::string, TensorView>& tensors);

  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const override;
  MatrixRM DenseWeight() const override;
  absl::Span<const float> bias() const override { return bias_; }
  std::string kind() const override { return "packed_int_" + args_.ShortName(); }
  int64_t StorageBytes() const override;
  std::vector<std::pair<std::string, TensorView>> StoredTensors() const override;

  const WeightQuantArgs& args() const { return args_; }
  int64_t words_per_row() const { return words_per_row_; }
  int64_t groups_per_row() const { return groups_per_row_; }
  // The integer code q of element (r, c) (unpacked, in [qmin, qmax]).
  int32_t Code(int64_t r, int64_t c) const;
  float Scale(int64_t r, int64_t g) const { return scales_[r * groups_per_row_ + g]; }
  int32_t ZeroPoint(int64_t r, int64_t g) const {
    return zero_points_.empty() ? 0 : zero_points_[r * groups_per_row_ + g];
  }
  // Group of input column c (g_idx when present, else c / group size).
  int64_t GroupOf(int64_t c) const { return g_idx_.empty() ? c / group_size_ : g_idx_[c]; }
  const std::vector<int32_t>& g_idx() const { return g_idx_; }  // empty = contiguous groups

  // Activation arithmetic of Forward (fp32 unless set). A runtime choice, not
  // stored with the weights. Not synchronized: set it before running forwards.
  void set_activations(PackedActivations a) { activations_ = a; }
  // What Forward runs: kInt8 only when set and the groups fit
  // kPackedInt8MaxGroupColumns.
  PackedActivations activations() const;

 private:
  PackedIntLinear(const WeightQuantArgs& args, int64_t out, int64_t in);
  // Writes dequantized rows [r0, r1) as fp32 into dst (row-major, in_ wide).
  void DequantizeRows(int64_t r0, int64_t r1, float* dst) const;

  WeightQuantArgs args_;
  int64_t out_ = 0, in_ = 0;
  int64_t words_per_row_ = 0, groups_per_row_ = 0, group_size_ = 0;
  CacheAlignedVector<uint32_t> packed_;  // [out, words_per_row]; rows start on 64-byte lines when 128 | in
  CacheAlignedVector<float> scales_;     // [out, groups_per_row]
  std::vector<int32_t> zero_points_; // [out, groups_per_row] or empty
  std::vector<float> bias_;
  std::vector<int32_t> g_idx_;       // [in] or empty
  int64_t shape_[2] = {0, 0};        // weight_shape tensor
  int32_t qparams_[4] = {0, 0, 0, 0}; // weight_qparams tensor
  PackedActivations activations_ = PackedActivations::kFp32;
};

// Sets the activation arithmetic of every PackedIntLinear of `model` (other
// layer kinds are left alone). Returns how many layers run `a` now (layers
// whose groups are too wide for int8 keep fp32 and are not counted).
int64_t SetPackedActivations(Model& model, PackedActivations a);

// Packs / unpacks one row of codes (exposed for tests and future kernels).
// `codes` are in [qmin, qmax] for `num_bits`; `words` has ceil(n / per_word).
void PackRow(const int32_t* codes, int64_t n, int num_bits, uint32_t* words);
void UnpackRow(const uint32_t* words, int64_t n, int num_bits, int32_t* codes);

}  // namespace squeeze
