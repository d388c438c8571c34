// Runtime selection of the CPU kernel variant.
//
// Every fast kernel in workers/kernels/cpu exists in up to three versions:
//   kReference  plain C++ loops, compiled for the baseline ISA (SSE2); the
//               definition of what the kernel computes,
//   kAvx2       AVX2 + FMA (+ F16C) intrinsics,
//   kAvx512     AVX-512 F/BW/VL/DQ (+ VNNI where the kernel uses it).
// The ISA-specific files (*_avx2.cc, *_avx512.cc) are compiled with per-file
// flags (see CMakeLists.txt), so the default build stays portable and each
// call runs the best variant this CPU supports.
//
// SQUEEZE_KERNELS=reference|avx2|avx2novnni|avx512|avx512novnni (read once)
// caps the variant for tests and benchmarks; a request above what the CPU
// supports is lowered to the best supported one. "...novnni" turns off the
// VNNI instructions of that level (AVX-512 VNNI, or AVX-VNNI for avx2). Tests
// iterate variants with ScopedKernelIsa.
#pragma once

#include <vector>

namespace squeeze::kernels {

enum class KernelIsa { kReference = 0, kAvx2 = 1, kAvx512 = 2 };

const char* KernelIsaName(KernelIsa isa);  // "reference" | "avx2" | "avx512"

// What this CPU supports (cpuid via __builtin_cpu_supports).
bool CpuHasAvx2Fma();     // avx2, fma, f16c
bool CpuHasAvx512();      // avx512 f, bw, vl, dq
bool CpuHasAvx512Vnni();  // CpuHasAvx512() and avx512vnni
bool CpuHasAvxVnni();     // CpuHasAvx2Fma() and avx_vnni (VEX vpdpbusd on ymm: Alder Lake+, Zen 5)
KernelIsa BestSupportedIsa();

// Every variant runnable here, reference first.
std::vector<KernelIsa> SupportedIsas();

// The variant dispatching kernels use now: the override of ScopedKernelIsa if
// any, else min(SQUEEZE_KERNELS, BestSupportedIsa()).
KernelIsa ActiveIsa();

// Whether int8 kernels use AVX-512 VNNI now: ActiveIsa() is kAvx512, the CPU
// has VNNI, and neither SQUEEZE_KERNELS=avx512novnni nor a ScopedKernelIsa
// with allow_vnni = false turned it off.
bool UseAvx512Vnni();

// Whether AVX2 int8 kernels use AVX-VNNI (VEX vpdpbusd) now: ActiveIsa() is
// kAvx2, the CPU has AVX-VNNI, and neither SQUEEZE_KERNELS=avx2novnni nor a
// ScopedKernelIsa with allow_vnni = false turned it off. (An AVX-512 variant
// never reports it: those kernels use their own VNNI.)
bool UseAvxVnni();

// Forces a variant (clamped to what the CPU supports) for the lifetime of the
// object; process-wide, for tests and benchmarks (not thread-safe to nest
// from several threads).
class ScopedKernelIsa {
 public:
  explicit ScopedKernelIsa(KernelIsa isa, bool allow_vnni = true);
  ~ScopedKernelIsa();
  ScopedKernelIsa(const ScopedKernelIsa&) = delete;
  ScopedKernelIsa& operator=(const ScopedKernelIsa&) = delete;

 private:
  int previous_;
  int previous_vnni_;
};

}  // namespace squeeze::kernels
