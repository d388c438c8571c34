// Packed-int panel repacker (reference + dispatch to the AVX-512 one) and the
// panel driver of PackedIntGemmQ8; see packed_int_panel.h.
#include "workers/kernels/cpu/packed_int_panel.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "workers/kernels/cpu/cpu_features.h"

namespace squeeze::kernels {
namespace {

inline uint8_t CodeU(const PackedIntWeights& w, int64_t r, int64_t c) {
  const int per_word = 32 / w.num_bits;
  const uint32_t word = w.packed[r * w.words_per_row + c / per_word];
  return static_cast<uint8_t>((word >> ((c % per_word) * w.num_bits)) & ((1u << w.num_bits) - 1u));
}

// Everything but the codes: shape, scales, zero-point offsets.
void FillPanelHeader(const PackedIntWeights& w, int64_t r0, Int8PanelBuffers* buffers, Int8Panel* panel) {
  const int64_t chunks = (w.cols + kPanelChunkCols - 1) / kPanelChunkCols;
  const int64_t ng = w.groups_per_row;
  const int64_t rows = std::min(kPanelRows, w.rows - r0);
  buffers->Reserve(chunks, ng);
  panel->rows = rows;
  panel->chunks = chunks;
  panel->chunks_per_group = ng == 1 ? chunks : w.group_size / kPanelChunkCols;
  panel->groups = ng;
  panel->code_bits = w.num_bits;  // codes (q - qmin) < 2^bits; padding 0
  const int32_t offset = 1 << (w.num_bits - 1);
  // [row][group] -> [group][lane], reading each row's values in order.
  float* scales = buffers->scales();
  for (int64_t l = 0; l < kPanelRows; ++l) {
    const float* src = w.scales + (r0 + l) * ng;
    if (l < rows) {
      for (int64_t g = 0; g < ng; ++g) scales[g * kPanelRows + l] = src[g];
    } else {
      for (int64_t g = 0; g < ng; ++g) scales[g * kPanelRows + l] = 0.0f;
    }
  }
  panel->scales = scales;
  if (w.zero_points != nullptr) {
    int32_t* zo = buffers->zo();
    for (int64_t l = 0; l < kPanelRows; ++l) {
      const int32_t* src = w.zero_points + (r0 + l) * ng;
      for (int64_t g = 0; g < ng; ++g) zo[g * kPanelRows + l] = l < rows ? src[g] + offset : 0;
    }
    panel->zo = zo;
    panel->zo_const = 0;
  } else {
    panel->zo = nullptr;
    panel->zo_const = offset;
  }
  panel->codes = buffers->codes();
}

// Codes of chunks [k0, chunks) the plain way (zeros past cols and past rows).
void RepackCodesScalar(const PackedIntWeights& w, int64_t r0, int64_t rows, int64_t k0, int64_t chunks,
                       uint8_t* codes) {
  std::memset(codes + k0 * kPanelChunkBytes, 0, static_cast<size_t>((chunks - k0) * kPanelChunkBytes));
  for (int64_t l = 0; l < rows; ++l) {
    for (int64_t c = k0 * kPanelChunkCols; c < w.cols; ++c) {
      const int64_t k = c / kPanelChunkCols, j = (c % kPanelChunkCols) / 4;
      codes[((k * kPanelQuads + j) * kPanelRows + l) * 4 + c % 4] = CodeU(w, r0 + l, c);
    }
  }
}

// Grow-only resize of a scratch vector (its contents are overwritten).
template <typename V>
void GrowTo(V& v, int64_t size) {
  if (static_cast<int64_t>(v.size()) < size) v.resize(static_cast<size_t>(size));
}

}  // namespace

int64_t PackedIntTileRows(const PackedIntWeights& w) {
  // Crossovers measured on 4096x4096 (1 thread, AVX-512 VNNI, Zen 4).
  if (w.groups_per_row == 1) return 10;                     // per-channel: the 4-row kernel is fast
  if (w.group_size == kPanelChunkCols) return 4;           // group 32: row kernel one row of x at a time
  return w.num_bits == 4 ? 5 : 6;
}

void RepackPackedIntPanelReference(const PackedIntWeights& w, int64_t r0, Int8PanelBuffers* buffers,
                                   Int8Panel* panel) {
  FillPanelHeader(w, r0, buffers, panel);
  RepackCodesScalar(w, r0, panel->rows, 0, panel->chunks, buffers->codes());
}

void RepackPackedIntPanel(const PackedIntWeights& w, int64_t r0, Int8PanelBuffers* buffers, Int8Panel* panel) {
  const KernelIsa isa = ActiveIsa();
  if (isa == KernelIsa::kReference) {
    RepackPackedIntPanelReference(w, r0, buffers, panel);
    return;
  }
  FillPanelHeader(w, r0, buffers, panel);
  const int64_t full = w.cols / kPanelChunkCols;
  const uint8_t* rows[kPanelRows];
  std::vector<uint8_t> zeros;
  for (int64_t l = 0; l < kPanelRows; ++l) {
    if (l < panel->rows) {
      rows[l] = reinterpret_cast<const uint8_t*>(w.packed + (r0 + l) * w.words_per_row);
    } else {
      if (zeros.empty()) zeros.assign(static_cast<size_t>(w.words_per_row * 4), 0);
      rows[l] = zeros.data();
    }
  }
  if (isa == KernelIsa::kAvx512) {
    internal::RepackCodesAvx512(rows, w.num_bits, full, buffers->codes());
  } else {
    internal::RepackCodesAvx2(rows, w.num_bits, full, buffers->codes());
  }
  if (full < panel->chunks) RepackCodesScalar(w, r0, panel->rows, full, panel->chunks, buffers->codes());
}

void QuantizePanelActivations(const PackedIntWeights& w, const float* x, int64_t n, int8_t* qa, int64_t qa_stride,
                              float* a, int32_t* qsum) {
  if (ActiveIsa() == KernelIsa::kAvx512) {
    internal::QuantizeGroupsAvx512(w, x, n, qa, qa_stride, a, qsum);
    return;
  }
  if (ActiveIsa() == KernelIsa::kAvx2) {
    internal::QuantizeGroupsAvx2(w, x, n, qa, qa_stride, a, qsum);
    return;
  }
  std::vector<int8_t> dense(static_cast<size_t>(n * w.cols));
  QuantizeActivationGroups(w, x, n, dense.data(), a, qsum);
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(qa + i * qa_stride, dense.data() + i * w.cols, static_cast<size_t>(w.cols));
    std::memset(qa + i * qa_stride + w.cols, 0, static_cast<size_t>(qa_stride - w.cols));
  }
}

void PackedIntGemmQ8Panels(const PackedIntWeights& w, const float* x, int64_t n, const float* bias, float* y,
                           ThreadPool& pool) {
  const int64_t chunks = (w.cols + kPanelChunkCols - 1) / kPanelChunkCols;
  const int64_t stride = chunks * kPanelChunkCols;
  const int64_t ng = w.groups_per_row;
  // Per calling thread, grow-only (fresh multi-MiB buffers would page-fault
  // on every call); every byte used is written by the quantizer below.
  thread_local std::vector<int8_t> qa;
  thread_local std::vector<float> a;
  thread_local std::vector<int32_t> qsum;
  GrowTo(qa, n * stride);
  GrowTo(a, n * ng);
  GrowTo(qsum, n * ng);
  QuantizePanelActivations(w, x, n, qa.data(), stride, a.data(), qsum.data());
  PackedIntGemmQ8PanelsQuantized(w, qa.data(), stride, a.data(), qsum.data(), n, bias, y, pool);
}

void PackedIntGemmQ8PanelsQuantized(const PackedIntWeights& w, const int8_t* qa, int64_t qa_stride, const float* a,
                                    const int32_t* qsum, int64_t n, const float* bias, float* y, ThreadPool& pool) {
  const int64_t ng = w.groups_per_row;
  thread_local std::vector<int32_t> nzq;
  Int8PanelActivations xa;
  xa.n = n;
  xa.qa = qa;
  xa.qa_stride = qa_stride;
  xa.a = a;
  xa.qsum = qsum;
  xa.group_stride = ng;
  if (w.zero_points == nullptr) {  // every panel's zo_const is 2^(bits-1)
    const int32_t offset = 1 << (w.num_bits - 1);
    GrowTo(nzq, n * ng);
    for (int64_t i = 0; i < n * ng; ++i) nzq[i] = -offset * qsum[i];  // |qsum| <= 127 * 2^16: no overflow
    xa.nzq = nzq.data();
    xa.nzq_for = offset;
  }
  Int8PanelGemmRun(w.rows, xa, bias, y, w.rows, pool, [&w](int64_t r0, Int8PanelBuffers* buffers, Int8Panel* panel) {
    RepackPackedIntPanel(w, r0, buffers, panel);
  });
}

}  // namespace squeeze::kernels
