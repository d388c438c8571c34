// Random int8 panels (int8_panel_gemm.h) over their own buffers, for the
// panel-core tests (packed_int_tile_test.cc, int8_panel_avx2_test.cc).
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <type_traits>

#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"
#include "workers/kernels/cpu/cpu_features.h"
#include "workers/kernels/cpu/int8_panel_gemm.h"
#include "workers/kernels/cpu/packed_int_panel.h"
#include "workers/kernels/cpu/q8_0_gemm.h"
#include "workers/kernels/cpu/q8_0_gemm_panel.h"

namespace squeeze::kernels::testing {

// A panel and the storage it points into.
struct TestPanel {
  Int8PanelBuffers buffers;
  Int8Panel panel;
};

struct TestPanelSpec {
  int bits = 8;                   // code_bits: every code < 2^bits (lanes past rows too)
  int64_t rows = kPanelRows;      // valid lanes
  int64_t chunks = 1, chunks_per_group = 1;
  bool with_zo = true;            // per-lane offsets in [0, 255]; else zo_const 8 (4 bits) or 128
  bool extreme_codes = false;     // codes only 0 and 2^bits - 1
  int64_t zero_scale_period = 7;  // scales[i] = 0 where i % period == phase
  int64_t zero_scale_phase = 3;
};

// Draw order: codes, then per scale slot one offset, from mt19937_64(seed);
// scales from RandomFloats(seed + 1) in [-0.1, 0.1).
inline void MakeTestPanel(const TestPanelSpec& s, uint64_t seed, TestPanel* p) {
  std::mt19937_64 rng(seed);
  const int umax = (1 << s.bits) - 1;
  std::uniform_int_distribution<int> code(0, umax), u8(0, 255);
  const int64_t groups = (s.chunks + s.chunks_per_group - 1) / s.chunks_per_group;
  p->buffers.Reserve(s.chunks, groups);
  for (int64_t i = 0; i < s.chunks * kPanelChunkBytes; ++i) {
    p->buffers.codes()[i] = static_cast<uint8_t>(s.extreme_codes ? (rng() % 2 ? umax : 0) : code(rng));
  }
  const auto scales = RandomFloats(groups * kPanelRows, seed + 1, -0.1f, 0.1f);
  for (int64_t i = 0; i < groups * kPanelRows; ++i) {
    p->buffers.scales()[i] = i % s.zero_scale_period == s.zero_scale_phase ? 0.0f : scales[i];
    p->buffers.zo()[i] = u8(rng);
  }
  p->panel.rows = s.rows;
  p->panel.chunks = s.chunks;
  p->panel.chunks_per_group = s.chunks_per_group;
  p->panel.groups = groups;
  p->panel.codes = p->buffers.codes();
  p->panel.scales = p->buffers.scales();
  p->panel.zo = s.with_zo ? p->buffers.zo() : nullptr;
  p->panel.zo_const = s.with_zo ? 0 : (s.bits == 4 ? 8 : 128);
  p->panel.code_bits = s.bits;
}

// One weight panel repacked twice: by the reference repacker and by the
// SIMD repacker of `isa` (RepackPanels).
struct RepackedPanels {
  Int8PanelBuffers ref_buffers, simd_buffers;
  Int8Panel ref, simd;
};

// W: PackedIntWeights (RepackPackedIntPanel*) or GgmlBlockWeights
// (RepackGgmlBlockPanel*); rows [r0, r0 + 16) of w.
template <typename W>
void RepackPanels(const W& w, int64_t r0, KernelIsa isa, RepackedPanels* p) {
  if constexpr (std::is_same_v<W, PackedIntWeights>) {
    RepackPackedIntPanelReference(w, r0, &p->ref_buffers, &p->ref);
    ScopedKernelIsa scoped(isa);
    RepackPackedIntPanel(w, r0, &p->simd_buffers, &p->simd);
  } else {
    RepackGgmlBlockPanelReference(w, r0, &p->ref_buffers, &p->ref);
    ScopedKernelIsa scoped(isa);
    RepackGgmlBlockPanel(w, r0, &p->simd_buffers, &p->simd);
  }
}

// The two panels have the same shape and code_bits, codes and scales, and
// (with_zo) the same per-lane offsets, byte for byte.
inline ::testing::AssertionResult SamePanelBytes(const Int8Panel& got, const Int8Panel& want, bool with_zo) {
  if (got.rows != want.rows || got.chunks != want.chunks || got.groups != want.groups ||
      got.chunks_per_group != want.chunks_per_group || got.code_bits != want.code_bits) {
    return ::testing::AssertionFailure() << "shapes differ: rows " << got.rows << "/" << want.rows << " chunks "
                                         << got.chunks << "/" << want.chunks << " groups " << got.groups << "/"
                                         << want.groups << " chunks_per_group " << got.chunks_per_group << "/"
                                         << want.chunks_per_group << " code_bits " << got.code_bits << "/"
                                         << want.code_bits;
  }
  if (std::memcmp(got.codes, want.codes, got.chunks * kPanelChunkBytes) != 0) {
    return ::testing::AssertionFailure() << "codes differ";
  }
  if (std::memcmp(got.scales, want.scales, got.groups * kPanelRows * sizeof(float)) != 0) {
    return ::testing::AssertionFailure() << "scales differ";
  }
  if (with_zo && std::memcmp(got.zo, want.zo, got.groups * kPanelRows * sizeof(int32_t)) != 0) {
    return ::testing::AssertionFailure() << "offsets differ";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace squeeze::kernels::testing
