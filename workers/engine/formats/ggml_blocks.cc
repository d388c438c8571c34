#include "workers/engine/formats/ggml_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/half.h"

namespace squeeze {
namespace {

constexpr GgmlTypeInfo kTypes[] = {
    {GgmlType::kF32, "F32", 1, 4},
    {GgmlType::kF16, "F16", 1, 2},
    {GgmlType::kQ4_0, "Q4_0", kQK4_0, sizeof(BlockQ4_0)},
    {GgmlType::kQ4_1, "Q4_1", kQK4_1, sizeof(BlockQ4_1)},
    {GgmlType::kQ8_0, "Q8_0", kQK8_0, sizeof(BlockQ8_0)},
    {GgmlType::kQ4_K, "Q4_K", kQK_K, sizeof(BlockQ4_K)},
    {GgmlType::kQ6_K, "Q6_K", kQK_K, sizeof(BlockQ6_K)},
};

// ggml type ids we know by name but do not read or write.
absl::string_view OtherGgmlTypeName(uint32_t id) {
  switch (id) {
    case 6: return "Q5_0";
    case 7: return "Q5_1";
    case 9: return "Q8_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K";
    case 13: return "Q5_K";
    case 15: return "Q8_K";
    case 16: return "IQ2_XXS";
    case 17: return "IQ2_XS";
    case 18: return "IQ3_XXS";
    case 19: return "IQ1_S";
    case 20: return "IQ4_NL";
    case 21: return "IQ3_S";
    case 22: return "IQ2_S";
    case 23: return "IQ4_XS";
    case 24: return "I8";
    case 25: return "I16";
    case 26: return "I32";
    case 27: return "I64";
    case 28: return "F64";
    case 29: return "IQ1_M";
    case 30: return "BF16";
    case 34: return "TQ1_0";
    case 35: return "TQ2_0";
    default: return "";
  }
}

inline int NearestInt(float v) { return static_cast<int>(std::lround(v)); }

}  // namespace

absl::Span<const GgmlTypeInfo> SupportedGgmlTypes() { return kTypes; }

absl::StatusOr<GgmlTypeInfo> GgmlTypeInfoOf(uint32_t type_id) {
  for (const GgmlTypeInfo& t : kTypes) {
    if (static_cast<uint32_t>(t.type) == type_id) return t;
  }
  const absl::string_view other = OtherGgmlTypeName(type_id);
  std::string names;
  for (const GgmlTypeInfo& t : kTypes) absl::StrAppend(&names, names.empty() ? "" : ", ", t.name);
  if (!other.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("ggml type ", other, " (", type_id,
                                                   ") is not supported (supported: ", names, ")"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ggml type id ", type_id, " (supported: ", names, ")"));
}

absl::StatusOr<GgmlType> ParseGgmlTypeName(absl::string_view name) {
  const std::string upper = absl::AsciiStrToUpper(name);
  for (const GgmlTypeInfo& t : kTypes) {
    if (absl::AsciiStrToUpper(t.name) == upper) return t.type;
  }
  std::string names;
  for (const GgmlTypeInfo& t : kTypes) absl::StrAppend(&names, names.empty() ? "" : ", ", t.name);
  return absl::InvalidArgumentError(absl::StrCat("unknown GGUF tensor type \"", name, "\" (one of ", names, ")"));
}

absl::string_view GgmlTypeName(GgmlType type) {
  for (const GgmlTypeInfo& t : kTypes) {
    if (t.type == type) return t.name;
  }
  return "?";
}

absl::StatusOr<int64_t> GgmlRowBytes(GgmlType type, int64_t n) {
  const GgmlTypeInfo* info = nullptr;
  for (const GgmlTypeInfo& t : kTypes) {
    if (t.type == type) info = &t;
  }
  if (info == nullptr) return absl::InvalidArgumentError("unsupported ggml type");
  if (n < 0 || n % info->block_elems != 0) {
    return absl::InvalidArgumentError(absl::StrCat("a row of ", n, " values cannot be stored as ", info->name,
                                                   ": rows must be a multiple of its block size ",
                                                   info->block_elems));
  }
  return n / info->block_elems * info->block_bytes;
}

void ScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// ---- Q8_0 -------------------------------------------------------------

void QuantizeRowQ8_0(const float* x, int64_t n, BlockQ8_0* y) {
  for (int64_t b = 0; b < n / kQK8_0; ++b, x += kQK8_0) {
    float amax = 0.0f;
    for (int i = 0; i < kQK8_0; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = FloatToF16(d);
    for (int i = 0; i < kQK8_0; ++i) y[b].qs[i] = static_cast<int8_t>(std::roundf(x[i] * id));
  }
}

void DequantizeRowQ8_0(const BlockQ8_0* x, int64_t n, float* y) {
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const float d = F16ToFloat(x[b].d);
    for (int i = 0; i < kQK8_0; ++i) *y++ = d * static_cast<float>(x[b].qs[i]);
  }
}

// ---- Q4_0 -------------------------------------------------------------

void QuantizeRowQ4_0(const float* x, int64_t n, BlockQ4_0* y) {
  constexpr int kHalf = kQK4_0 / 2;
  for (int64_t b = 0; b < n / kQK4_0; ++b, x += kQK4_0) {
    float amax = 0.0f, max = 0.0f;  // max: the value of largest magnitude, with its sign
    for (int i = 0; i < kQK4_0; ++i) {
      if (std::fabs(x[i]) > amax) {
        amax = std::fabs(x[i]);
        max = x[i];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = FloatToF16(d);
    for (int i = 0; i < kHalf; ++i) {
      const uint8_t lo = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x[i] * id + 8.5f))));
      const uint8_t hi =
          static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x[i + kHalf] * id + 8.5f))));
      y[b].qs[i] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void DequantizeRowQ4_0(const BlockQ4_0* x, int64_t n, float* y) {
  constexpr int kHalf = kQK4_0 / 2;
  for (int64_t b = 0; b < n / kQK4_0; ++b, y += kQK4_0) {
    const float d = F16ToFloat(x[b].d);
    for (int i = 0; i < kHalf; ++i) {
      y[i] = d * static_cast<float>((x[b].qs[i] & 0xF) - 8);
      y[i + kHalf] = d * static_cast<float>((x[b].qs[i] >> 4) - 8);
    }
  }
}

// ---- Q4_1 -------------------------------------------------------------

void QuantizeRowQ4_1(const float* x, int64_t n, BlockQ4_1* y) {
  constexpr int kHalf = kQK4_1 / 2;
  for (int64_t b = 0; b < n / kQK4_1; ++b, x += kQK4_1) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < kQK4_1; ++i) {
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    const float d = (hi - lo) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = FloatToF16(d);
    y[b].m = FloatToF16(lo);
    for (int i = 0; i < kHalf; ++i) {
      const uint8_t q0 = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>((x[i] - lo) * id + 0.5f))));
      const uint8_t q1 =
          static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>((x[i + kHalf] - lo) * id + 0.5f))));
      y[b].qs[i] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void DequantizeRowQ4_1(const BlockQ4_1* x, int64_t n, float* y) {
  constexpr int kHalf = kQK4_1 / 2;
  for (int64_t b = 0; b < n / kQK4_1; ++b, y += kQK4_1) {
    const float d = F16ToFloat(x[b].d);
    const float m = F16ToFloat(x[b].m);
    for (int i = 0; i < kHalf; ++i) {
      y[i] = d * static_cast<float>(x[b].qs[i] & 0xF) + m;
      y[i + kHalf] = d * static_cast<float>(x[b].qs[i] >> 4) + m;
    }
  }
}

// ---- Q4_K -------------------------------------------------------------

void QuantizeRowQ4_K(const float* x, int64_t n, BlockQ4_K* y) {
  constexpr int kSub = 32, kNumSub = kQK_K / kSub;
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    BlockQ4_K& blk = y[b];
    float step[kNumSub], neg_lo[kNumSub];
    float max_step = 0.0f, max_neg_lo = 0.0f;
    for (int j = 0; j < kNumSub; ++j) {
      float lo = 0.0f, hi = -INFINITY;
      for (int i = 0; i < kSub; ++i) {
        lo = std::min(lo, x[j * kSub + i]);
        hi = std::max(hi, x[j * kSub + i]);
      }
      step[j] = std::max(0.0f, (hi - lo) / 15.0f);
      neg_lo[j] = -lo;
      max_step = std::max(max_step, step[j]);
      max_neg_lo = std::max(max_neg_lo, neg_lo[j]);
    }
    // fp16 super-scales first, so the 6-bit fields are computed against the
    // values a reader will see.
    blk.d = FloatToF16(max_step / 63.0f);
    // Round the super-scale up, not to nearest, so sc = ceil(step / d) <= 63.
    if (F16ToFloat(blk.d) * 63.0f < max_step) blk.d = static_cast<GgmlHalf>(blk.d + 1);
    blk.dmin = FloatToF16(max_neg_lo / 63.0f);
    const float d = F16ToFloat(blk.d), dmin = F16ToFloat(blk.dmin);
    uint8_t sc[kNumSub], mn[kNumSub];
    for (int j = 0; j < kNumSub; ++j) {
      sc[j] = d > 0.0f ? static_cast<uint8_t>(std::clamp(static_cast<int>(std::ceil(step[j] / d)), 0, 63)) : 0;
      mn[j] = dmin > 0.0f ? static_cast<uint8_t>(std::clamp(NearestInt(neg_lo[j] / dmin), 0, 63)) : 0;
    }
    // Pack: j < 4 in the low 6 bits of scales[j] / scales[j + 4]; j >= 4 as
    // low nibbles in scales[j + 4] and the top 2 bits in scales[j - 4] / scales[j].
    std::memset(blk.scales, 0, sizeof(blk.scales));
    for (int j = 0; j < kNumSub; ++j) {
      if (j < 4) {
        blk.scales[j] |= sc[j];
        blk.scales[j + 4] |= mn[j];
      } else {
        blk.scales[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
        blk.scales[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
        blk.scales[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
      }
    }
    uint8_t q[kQK_K];
    for (int j = 0; j < kNumSub; ++j) {
      uint8_t s6, m6;
      ScaleMinK4(j, blk.scales, &s6, &m6);
      const float ds = d * s6, dm = dmin * m6;
      for (int i = 0; i < kSub; ++i) {
        const float v = x[j * kSub + i];
        q[j * kSub + i] = ds > 0.0f ? static_cast<uint8_t>(std::clamp(NearestInt((v + dm) / ds), 0, 15)) : 0;
      }
    }
    for (int c = 0; c < kQK_K / 64; ++c) {
      for (int l = 0; l < 32; ++l) {
        blk.qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
      }
    }
  }
}

void DequantizeRowQ4_K(const BlockQ4_K* x, int64_t n, float* y) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = F16ToFloat(x[b].d), dmin = F16ToFloat(x[b].dmin);
    const uint8_t* q = x[b].qs;
    for (int c = 0; c < kQK_K / 64; ++c, q += 32) {
      uint8_t sc, m;
      ScaleMinK4(2 * c, x[b].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      ScaleMinK4(2 * c + 1, x[b].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

// ---- Q6_K -------------------------------------------------------------

void QuantizeRowQ6_K(const float* x, int64_t n, BlockQ6_K* y) {
  constexpr int kSub = 16, kNumSub = kQK_K / kSub;
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    BlockQ6_K& blk = y[b];
    float s[kNumSub];
    float big = 0.0f, abig = 0.0f;  // the sub-block scale of largest magnitude
    for (int j = 0; j < kNumSub; ++j) {
      float amax = 0.0f, v = 0.0f;
      for (int i = 0; i < kSub; ++i) {
        if (std::fabs(x[j * kSub + i]) > amax) {
          amax = std::fabs(x[j * kSub + i]);
          v = x[j * kSub + i];
        }
      }
      s[j] = v / -32.0f;
      if (std::fabs(s[j]) > abig) {
        abig = std::fabs(s[j]);
        big = s[j];
      }
    }
    blk.d = FloatToF16(big / -128.0f);
    const float d = F16ToFloat(blk.d);
    uint8_t q[kQK_K];
    for (int j = 0; j < kNumSub; ++j) {
      const int sc = d != 0.0f ? std::clamp(NearestInt(s[j] / d), -128, 127) : 0;
      blk.scales[j] = static_cast<int8_t>(sc);
      const float ds = d * static_cast<float>(sc);
      for (int i = 0; i < kSub; ++i) {
        const int v = ds != 0.0f ? std::clamp(NearestInt(x[j * kSub + i] / ds), -32, 31) : 0;
        q[j * kSub + i] = static_cast<uint8_t>(v + 32);
      }
    }
    for (int h = 0; h < 2; ++h) {
      uint8_t* ql = blk.ql + 64 * h;
      uint8_t* qh = blk.qh + 32 * h;
      const uint8_t* qq = q + 128 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((qq[l] & 0xF) | ((qq[l + 64] & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((qq[l + 32] & 0xF) | ((qq[l + 96] & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) | ((qq[l + 64] >> 4) << 4) |
                                     ((qq[l + 96] >> 4) << 6));
      }
    }
  }
}

void DequantizeRowQ6_K(const BlockQ6_K* x, int64_t n, float* y) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = F16ToFloat(x[b].d);
    for (int h = 0; h < 2; ++h, y += 128) {
      const uint8_t* ql = x[b].ql + 64 * h;
      const uint8_t* qh = x[b].qh + 32 * h;
      const int8_t* sc = x[b].scales + 8 * h;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * static_cast<float>(q1);
        y[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
        y[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
        y[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
      }
    }
  }
}

// ---- dispatch ---------------------------------------------------------

void QuantizeRow(GgmlType type, const float* x, int64_t n, uint8_t* dst) {
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = FloatToF16(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case GgmlType::kQ8_0:
      return QuantizeRowQ8_0(x, n, reinterpret_cast<BlockQ8_0*>(dst));
    case GgmlType::kQ4_0:
      return QuantizeRowQ4_0(x, n, reinterpret_cast<BlockQ4_0*>(dst));
    case GgmlType::kQ4_1:
      return QuantizeRowQ4_1(x, n, reinterpret_cast<BlockQ4_1*>(dst));
    case GgmlType::kQ4_K:
      return QuantizeRowQ4_K(x, n, reinterpret_cast<BlockQ4_K*>(dst));
    case GgmlType::kQ6_K:
      return QuantizeRowQ6_K(x, n, reinterpret_cast<BlockQ6_K*>(dst));
  }
}

void DequantizeRow(GgmlType type, const uint8_t* src, int64_t n, float* y) {
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(y, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        y[i] = F16ToFloat(h);
      }
      return;
    case GgmlType::kQ8_0:
      return DequantizeRowQ8_0(reinterpret_cast<const BlockQ8_0*>(src), n, y);
    case GgmlType::kQ4_0:
      return DequantizeRowQ4_0(reinterpret_cast<const BlockQ4_0*>(src), n, y);
    case GgmlType::kQ4_1:
      return DequantizeRowQ4_1(reinterpret_cast<const BlockQ4_1*>(src), n, y);
    case GgmlType::kQ4_K:
      return DequantizeRowQ4_K(reinterpret_cast<const BlockQ4_K*>(src), n, y);
    case GgmlType::kQ6_K:
      return DequantizeRowQ6_K(reinterpret_cast<const BlockQ6_K*>(src), n, y);
  }
}

absl::StatusOr<std::string> QuantizeMatrix(GgmlType type, const float* x, int64_t rows, int64_t cols) {
  absl::StatusOr<int64_t> row_bytes = GgmlRowBytes(type, cols);
  if (!row_bytes.ok()) return row_bytes.status();
  std::string out(static_cast<size_t>(*row_bytes * rows), '\0');
  for (int64_t r = 0; r < rows; ++r) {
    QuantizeRow(type, x + r * cols, cols, reinterpret_cast<uint8_t*>(out.data()) + r * *row_bytes);
  }
  return out;
}

}  // namespace squeeze
