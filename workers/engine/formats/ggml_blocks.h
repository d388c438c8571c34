// ggml tensor types and their quantized block layouts, written down once
// (GGUF / ggml specification: ggml-common.h "block_q4_0" ... "block_q6_K").
//
// A row of n values (n a multiple of the type's block size) is stored as
// n / block_elems consecutive blocks; a 2-D tensor [rows, cols] is rows such
// rows one after another (cols is ggml's ne[0], the fastest dimension).
// Every multi-byte field is little-endian; `ggml_half` is IEEE binary16.
//
// Dequantization (exact, as every consumer of the format computes it):
//   Q8_0  32 values: y[i] = d * qs[i]                       (qs int8)
//   Q4_0  32 values: y[i]      = d * ((qs[i] & 0xF) - 8)    i < 16
//                    y[i + 16] = d * ((qs[i] >> 4)  - 8)
//   Q4_1  32 values: y[i] = d * nibble + m   (same nibble order as Q4_0)
//   Q4_K  256 values = 8 sub-blocks of 32. Sub-block j has a 6-bit scale
//         sc_j and 6-bit min m_j packed in scales[12] (ScaleMinK4 below);
//         y = d * sc_j * q - dmin * m_j, q a 4-bit code. qs holds 4 chunks of
//         64 values: chunk c uses qs[32c, 32c+32); its low nibbles are
//         sub-block 2c, its high nibbles sub-block 2c+1.
//   Q6_K  256 values = 16 sub-blocks of 16 with int8 scales[16];
//         y = d * scales[j] * (q - 32), q a 6-bit code whose low 4 bits are in
//         ql[128] and high 2 bits in qh[64]. Two halves of 128 values; in half
//         h (ql += 64h, qh += 32h, scales += 8h), for l in [0, 32):
//           q(l)      = (ql[l]      & 0xF) | ((qh[l] >> 0) & 3) << 4
//           q(l + 32) = (ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4
//           q(l + 64) = (ql[l]      >> 4)  | ((qh[l] >> 4) & 3) << 4
//           q(l + 96) = (ql[l + 32] >> 4)  | ((qh[l] >> 6) & 3) << 4
//         and value l + 32k uses scales[l / 16 + 2k].
//
// Quantization (our reference implementations; any valid block loads):
//   Q8_0, Q4_0, Q4_1 follow the specification's reference rounding exactly
//     (Q8_0: d = amax / 127, q = round(x / d); Q4_0: d = -max / 8 where max
//     is the value of largest magnitude, nibble = min(15, trunc(x / d + 8.5));
//     Q4_1: d = (max - min) / 15, m = min, nibble = min(15, trunc((x - m) / d + 0.5))).
//   Q4_K: per sub-block lo = min(0, min x), s = (max x - lo) / 15; d =
//     max s / 63, sc = ceil(s / d) (so the effective step never shrinks and
//     nothing clips at the top), dmin = max(-lo) / 63, m = round(-lo / dmin);
//     codes q = clamp(round((x + dmin*m) / (d*sc)), 0, 15).
//   Q6_K: per sub-block s = -v / 32 where v is the value of largest
//     magnitude; d = -S / 128 where S is the s of largest magnitude,
//     scales[j] = min(127, round(s_j / d)); q = clamp(round(x / (d*sc)), -32, 31) + 32.
// The fp16 fields are rounded to nearest even (core/half.h).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace squeeze {

// ggml type ids as stored in GGUF tensor infos (ggml.h enum ggml_type).
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ6_K = 14,
};

inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK_K = 256;        // k-quant super-block
inline constexpr int kKScaleSize = 12;   // packed 6-bit scales + mins of Q4_K

using GgmlHalf = uint16_t;  // IEEE binary16 bits

struct BlockQ8_0 {
  GgmlHalf d;
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 2 + kQK8_0, "block_q8_0 is 34 bytes");

struct BlockQ4_0 {
  GgmlHalf d;
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 2 + kQK4_0 / 2, "block_q4_0 is 18 bytes");

struct BlockQ4_1 {
  GgmlHalf d;
  GgmlHalf m;
  uint8_t qs[kQK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 4 + kQK4_1 / 2, "block_q4_1 is 20 bytes");

struct BlockQ4_K {
  GgmlHalf d;     // super-block scale of the 6-bit scales
  GgmlHalf dmin;  // super-block scale of the 6-bit mins
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 4 + kKScaleSize + kQK_K / 2, "block_q4_K is 144 bytes");

struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  GgmlHalf d;
};
static_assert(sizeof(BlockQ6_K) == kQK_K / 2 + kQK_K / 4 + kQK_K / 16 + 2, "block_q6_K is 210 bytes");

// Sizes of one type: a row of n values takes n / block_elems * block_bytes.
struct GgmlTypeInfo {
  GgmlType type;
  absl::string_view name;  // "F32", "Q4_K", ... as llama.cpp names them
  int64_t block_elems;
  int64_t block_bytes;
};

// The types this project reads and writes (in enum order).
absl::Span<const GgmlTypeInfo> SupportedGgmlTypes();
// Info for a type id; InvalidArgument naming the id (and ggml's name for it
// when it is a ggml type we do not support, e.g. "Q5_K (13)").
absl::StatusOr<GgmlTypeInfo> GgmlTypeInfoOf(uint32_t type_id);
// "F32" / "q4_k" (case-insensitive) -> type; InvalidArgument lists the names.
absl::StatusOr<GgmlType> ParseGgmlTypeName(absl::string_view name);
absl::string_view GgmlTypeName(GgmlType type);

// Bytes of one row of n values; InvalidArgument when n is not a multiple of
// the block size (the message names the type and the block size).
absl::StatusOr<int64_t> GgmlRowBytes(GgmlType type, int64_t n);

// The two 6-bit fields of Q4_K sub-block j (0..7) from scales[12].
void ScaleMinK4(int j, const uint8_t* scales, uint8_t* sc, uint8_t* m);

// One row: n values (multiple of the block size) <-> GgmlRowBytes bytes.
// For F32 / F16 these are plain conversions. `dst` must have room.
void QuantizeRow(GgmlType type, const float* x, int64_t n, uint8_t* dst);
void DequantizeRow(GgmlType type, const uint8_t* src, int64_t n, float* y);

// Per-type reference functions (n a multiple of the block size).
void QuantizeRowQ8_0(const float* x, int64_t n, BlockQ8_0* y);
void QuantizeRowQ4_0(const float* x, int64_t n, BlockQ4_0* y);
void QuantizeRowQ4_1(const float* x, int64_t n, BlockQ4_1* y);
void QuantizeRowQ4_K(const float* x, int64_t n, BlockQ4_K* y);
void QuantizeRowQ6_K(const float* x, int64_t n, BlockQ6_K* y);
void DequantizeRowQ8_0(const BlockQ8_0* x, int64_t n, float* y);
void DequantizeRowQ4_0(const BlockQ4_0* x, int64_t n, float* y);
void DequantizeRowQ4_1(const BlockQ4_1* x, int64_t n, float* y);
void DequantizeRowQ4_K(const BlockQ4_K* x, int64_t n, float* y);
void DequantizeRowQ6_K(const BlockQ6_K* x, int64_t n, float* y);

// Quantizes a row-major [rows, cols] matrix into `type` (cols must be a
// multiple of the block size; InvalidArgument otherwise).
absl::StatusOr<std::string> QuantizeMatrix(GgmlType type, const float* x, int64_t rows, int64_t cols);

}  // namespace squeeze
