// Plain reference, buffers, dispatch and the pool driver of the int8 panel
// GEMM core; see int8_panel_gemm.h for the layout and the arithmetic.
#include "workers/kernels/cpu/int8_panel_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "workers/kernels/cpu/cpu_features.h"

namespace squeeze::kernels {

void Int8PanelBuffers::Reserve(int64_t chunks, int64_t groups) {
  const auto grow = [](std::vector<uint8_t>& v, int64_t bytes) {
    if (static_cast<int64_t>(v.size()) < bytes + 64) v.resize(static_cast<size_t>(bytes + 64));
  };
  grow(codes_, chunks * kPanelChunkBytes);
  grow(scales_, groups * kPanelRows * static_cast<int64_t>(sizeof(float)));
  grow(zo_, groups * kPanelRows * static_cast<int64_t>(sizeof(int32_t)));
}

uint8_t* Int8PanelBuffers::Align(std::vector<uint8_t>& v) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(v.data());
  return v.data() + ((64 - (p & 63)) & 63);
}

void Int8PanelGemmReference(const Int8Panel& p, const Int8PanelActivations& x, const float* bias, float* y,
                            int64_t ldy) {
  for (int64_t l = 0; l < p.rows; ++l) {
    for (int64_t t = 0; t < x.n; ++t) {
      const int8_t* qa = x.qa + t * x.qa_stride;
      float acc = 0.0f;
      for (int64_t g = 0; g < p.groups; ++g) {
        const int64_t k0 = g * p.chunks_per_group, k1 = std::min(p.chunks, k0 + p.chunks_per_group);
        const int32_t zo = p.zo != nullptr ? p.zo[g * kPanelRows + l] : p.zo_const;
        // Unsigned arithmetic: intermediate sums may wrap; the final d is
        // exact whenever it fits in int32 (two's complement).
        uint32_t d = 0u - static_cast<uint32_t>(zo) * static_cast<uint32_t>(x.qsum[t * x.group_stride + g]);
        for (int64_t k = k0; k < k1; ++k) {
          for (int64_t j = 0; j < kPanelQuads; ++j) {
            const uint8_t* u = p.codes + ((k * kPanelQuads + j) * kPanelRows + l) * 4;
            const int8_t* a = qa + k * kPanelChunkCols + j * 4;
            for (int b = 0; b < 4; ++b) d += static_cast<uint32_t>(int32_t{u[b]} * int32_t{a[b]});
          }
        }
        const float scale = p.scales[g * kPanelRows + l] * x.a[t * x.group_stride + g];
        acc = std::fma(static_cast<float>(static_cast<int32_t>(d)), scale, acc);
      }
      y[t * ldy + l] = bias != nullptr ? acc + bias[l] : acc;
    }
  }
}

Int8PanelCore ActiveInt8PanelCore() {
  if (UseAvx512Vnni()) return Int8PanelCore::kAvx512Vnni;
  if (ActiveIsa() == KernelIsa::kAvx2) return UseAvxVnni() ? Int8PanelCore::kAvxVnni : Int8PanelCore::kAvx2;
  // AVX-512 without VNNI (Skylake-SP, or SQUEEZE_KERNELS=avx512novnni): the
  // AVX2 maddubs core (same panel layout; the AVX-512 repackers and
  // quantizer write the same bytes) rather than the row kernels.
  if (ActiveIsa() == KernelIsa::kAvx512) return Int8PanelCore::kAvx2;
  return Int8PanelCore::kReference;
}

const char* Int8PanelCoreName(Int8PanelCore core) {
  switch (core) {
    case Int8PanelCore::kReference: return "reference";
    case Int8PanelCore::kAvx2: return "avx2";
    case Int8PanelCore::kAvxVnni: return "avxvnni";
    case Int8PanelCore::kAvx512Vnni: return "avx512vnni";
  }
  return "?";
}

bool Int8PanelGemmFast() { return ActiveInt8PanelCore() != Int8PanelCore::kReference; }

namespace {

// One panel through `core`.
void RunOne(Int8PanelCore core, const Int8Panel& p, const Int8PanelActivations& x, const float* bias, float* y,
            int64_t ldy) {
  switch (core) {
    case Int8PanelCore::kAvx512Vnni: internal::Int8PanelGemmAvx512Vnni(p, x, bias, y, ldy); return;
    case Int8PanelCore::kAvxVnni: internal::Int8PanelGemmAvxVnni(p, x, bias, y, ldy); return;
    case Int8PanelCore::kAvx2: internal::Int8PanelGemmAvx2(p, x, bias, y, ldy); return;
    case Int8PanelCore::kReference: break;
  }
  Int8PanelGemmReference(p, x, bias, y, ldy);
}

// Two panels (p0.rows == 16) through `core`: the AVX-512 VNNI pair kernel
// shares broadcasts between them; the others run them one after the other.
void RunPair(Int8PanelCore core, const Int8Panel& p0, const Int8Panel& p1, const Int8PanelActivations& x,
             const float* bias, float* y, int64_t ldy) {
  if (core == Int8PanelCore::kAvx512Vnni) {
    internal::Int8PanelGemmPairAvx512Vnni(p0, p1, x, bias, y, ldy);
    return;
  }
  RunOne(core, p0, x, bias, y, ldy);
  RunOne(core, p1, x, bias != nullptr ? bias + kPanelRows : nullptr, y + kPanelRows, ldy);
}

}  // namespace

void Int8PanelGemm(const Int8Panel& p, const Int8PanelActivations& x, const float* bias, float* y, int64_t ldy) {
  RunOne(ActiveInt8PanelCore(), p, x, bias, y, ldy);
}

void Int8PanelGemmPair(const Int8Panel& p0, const Int8Panel& p1, const Int8PanelActivations& x, const float* bias,
                       float* y, int64_t ldy) {
  RunPair(ActiveInt8PanelCore(), p0, p1, x, bias, y, ldy);
}

void Int8PanelGemmRun(int64_t rows, const Int8PanelActivations& x, const float* bias, float* y, int64_t ldy,
                      ThreadPool& pool, const Int8PanelFill& fill) {
  const int64_t panels = (rows + kPanelRows - 1) / kPanelRows;
  const int64_t pairs = (panels + 1) / 2;
  const Int8PanelCore core = ActiveInt8PanelCore();  // read once: every panel runs the same version
  pool.ParallelFor(pairs, 1, [&](int64_t b, int64_t e) {
    // Per-thread scratch, reused across calls (one panel's codes: 512 bytes
    // per 32 columns, e.g. 64 KiB for 4096 columns).
    thread_local Int8PanelBuffers buffers[2];
    for (int64_t i = b; i < e; ++i) {
      const int64_t r0 = 2 * i * kPanelRows;
      const bool two = r0 + kPanelRows < rows;
      Int8Panel p0, p1;
      fill(r0, &buffers[0], &p0);
      if (two) fill(r0 + kPanelRows, &buffers[1], &p1);
      const float* pb = bias != nullptr ? bias + r0 : nullptr;
      if (two) {
        RunPair(core, p0, p1, x, pb, y + r0, ldy);
      } else {
        RunOne(core, p0, x, pb, y + r0, ldy);
      }
    }
  });
}

}  // namespace squeeze::kernels
