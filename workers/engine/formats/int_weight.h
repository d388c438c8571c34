// IntWeight: one integer-quantized linear weight held as plain arrays, the
// common currency of the quantized-checkpoint formats (compressed-tensors,
// GPTQ, AWQ). Exporters decode a layer into it; importers decode a file into
// it and hand it to the engine as the "packed_int_*" layer kind.
//
// Grid (the engine's, methods/quant/quant_args.h; also compressed-tensors'):
//   signed codes q in [qmin, qmax] = [-2^(b-1), 2^(b-1) - 1]
//   w[r, c] = (q[r, c] - z[r, g(c)]) * s[r, g(c)]     (z == 0 when symmetric)
// Formats that store unsigned codes u (GPTQ, AWQ) use u = q + 2^(b-1) and
// zero points uz = z + 2^(b-1): the offset cancels, so the values are equal.
//
// Groups: strategy tensor / channel -> one group per row (a tensor-strategy
// layer repeats the one scale on every row); group -> G = min(group_size, in)
// consecutive inputs, groups = ceil(in / G); with g_idx (GPTQ act-order
// "group"), input c uses group g_idx[c].
//
// The engine's own stored layout of a packed layer (what AddToCheckpoint
// writes and FromStoredTensors reads) is methods/quant/packed_int_linear.h:
//   weight_packed I32 [out, ceil(in / (32/b))]: value j of a row at bit
//     (j % (32/b)) * b of word j / (32/b), as u = q + 2^(b-1)
//   weight_scale F32 [out, groups], weight_zero_point I32 [out, groups]
//   (asymmetric only), weight_shape I64 [2], weight_qparams I32 [4] =
//   {bits, symmetric, strategy 0/1/2, group_size}, weight_g_idx I32 [in],
//   bias F32 [out].
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/formats/checkpoint_tensors.h"
#include "workers/engine/model/linear.h"

namespace squeeze {

enum class IntStrategy : int32_t { kTensor = 0, kChannel = 1, kGroup = 2 };

struct IntWeight {
  int bits = 4;
  bool symmetric = true;
  IntStrategy strategy = IntStrategy::kGroup;
  int group_size = 128;  // kGroup only (as configured; may exceed `in`)
  int64_t out = 0, in = 0;
  std::vector<int32_t> q;       // [out * in] signed codes
  std::vector<float> scales;    // [out * groups()]
  std::vector<int32_t> zeros;   // [out * groups()] signed, empty when symmetric
  std::vector<int32_t> g_idx;   // [in] or empty
  std::vector<float> bias;      // [out] or empty

  int qmin() const { return -(1 << (bits - 1)); }
  int qmax() const { return (1 << (bits - 1)) - 1; }
  int offset() const { return 1 << (bits - 1); }  // unsigned code = q + offset()
  // Inputs per contiguous group (in for tensor / channel).
  int64_t EffectiveGroupSize() const;
  int64_t groups() const;  // per row
  int64_t GroupOf(int64_t c) const {
    return g_idx.empty() ? c / EffectiveGroupSize() : g_idx[c];
  }
  float Scale(int64_t r, int64_t g) const { return scales[r * groups() + g]; }
  int32_t Zero(int64_t r, int64_t g) const { return zeros.empty() ? 0 : zeros[r * groups() + g]; }
  // (q - z) * s computed in fp32 exactly as PackedIntLinear dequantizes.
  float Dequant(int64_t r, int64_t c) const {
    const int64_t g = GroupOf(c);
    return static_cast<float>(q[r * in + c] - Zero(r, g)) * Scale(r, g);
  }
  MatrixRM Dequantize() const;  // [out, in]
  // The engine's layer kind for this scheme: "packed_int_w4_sym_g128",
  // "packed_int_w8_asym_channel", ...
  std::string Kind() const;
  // Sizes, ranges (codes and zero points in [qmin, qmax], g_idx in
  // [0, groups)), finite positive-or-zero scales; errors name `what`.
  absl::Status Validate(const std::string& what) const;
};

// The layer's IntWeight when it is a packed-int layer (kind "packed_int_*"),
// decoded from its StoredTensors(); nullopt for every other kind.
absl::StatusOr<std::optional<IntWeight>> IntWeightFromLayer(const LinearLayer& layer, const std::string& module);
// Decodes the engine's stored tensors (names relative to the module).
absl::StatusOr<IntWeight> IntWeightFromStoredTensors(const std::string& module,
                                                      const std::map<std::string, TensorView>& tensors);

// Puts `w` into `ck` as "<module>.weight_packed", ... in the engine's layout
// and records linear_kinds[module] = w.Kind(), so BuildModel rebuilds a
// PackedIntLinear (the loader is registered by methods/stored_linear.h).
// Any tensor of `module` already in ck is removed first.
absl::Status AddIntWeightToCheckpoint(const std::string& module, const IntWeight& w, CheckpointTensors* ck);

// Bit packing of unsigned b-bit values into 32-bit words, value i of a run at
// bit (i % (32/b)) * b of word i / (32/b), zero padding (the packing of
// compressed-tensors' pack_to_int32 and of GPTQ / AWQ for b in {2, 4, 8}).
void PackBits(const uint32_t* values, int64_t n, int bits, uint32_t* words);
// The inverse: n values from ceil(n / (32/b)) words.
void UnpackBits(const uint32_t* words, int64_t n, int bits, uint32_t* values);

// Owned tensor views (the buffer lives as long as the view).
TensorView OwnedI32(std::vector<int32_t> values, std::vector<int64_t> shape);
TensorView OwnedI64(std::vector<int64_t> values, std::vector<int64_t> shape);
TensorView OwnedBytes(DType dtype, std::string bytes, std::vector<int64_t> shape);

// Reads an integer tensor (I8/U8/I16/I32/I64) as int64 values; `want_shape`
// (when non-empty) must match exactly. Errors name `what`.
absl::StatusOr<std::vector<int64_t>> ReadIntTensor(const TensorView& v, const std::string& what,
                                                   const std::vector<int64_t>& want_shape = {});
// Reads a float tensor (F32/F16/BF16) with an exact shape check.
absl::StatusOr<std::vector<float>> ReadFloatTensor(const TensorView& v, const std::string& what,
                                                   const std::vector<int64_t>& want_shape);

}  // namespace squeeze
