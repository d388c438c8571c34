// CPU feature detection and the SQUEEZE_KERNELS override; see cpu_features.h.
#include "workers/kernels/cpu/cpu_features.h"

#include <cpuid.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace squeeze::kernels {
namespace {

std::atomic<int> g_override{-1};  // -1: none
std::atomic<int> g_vnni_override{-1};  // -1: none, 0: off, 1: allowed

KernelIsa Clamp(KernelIsa isa) {
  const KernelIsa best = BestSupportedIsa();
  return static_cast<int>(isa) > static_cast<int>(best) ? best : isa;
}

KernelIsa FromEnv() {
  static const KernelIsa isa = [] {
    const char* e = std::getenv("SQUEEZE_KERNELS");
    if (e == nullptr || *e == '\0') return BestSupportedIsa();
    if (std::strcmp(e, "reference") == 0) return KernelIsa::kReference;
    if (std::strcmp(e, "avx2") == 0 || std::strcmp(e, "avx2novnni") == 0) return Clamp(KernelIsa::kAvx2);
    if (std::strcmp(e, "avx512") == 0 || std::strcmp(e, "avx512novnni") == 0) return Clamp(KernelIsa::kAvx512);
    std::fprintf(stderr, "SQUEEZE_KERNELS=%s is not reference|avx2|avx2novnni|avx512|avx512novnni; using %s\n", e,
                 KernelIsaName(BestSupportedIsa()));
    return BestSupportedIsa();
  }();
  return isa;
}

}  // namespace

const char* KernelIsaName(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kReference: return "reference";
    case KernelIsa::kAvx2: return "avx2";
    case KernelIsa::kAvx512: return "avx512";
  }
  return "?";
}

// F16C through CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports
// does not know "f16c" (the fuzz build, tests/fuzz, uses clang).
static bool CpuHasF16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_F16C) != 0;
}

bool CpuHasAvx2Fma() {
  static const bool v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && CpuHasF16c();
  return v;
}

bool CpuHasAvx512() {
  static const bool v = CpuHasAvx2Fma() && __builtin_cpu_supports("avx512f") &&
                        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                        __builtin_cpu_supports("avx512dq");
  return v;
}

bool CpuHasAvx512Vnni() {
  static const bool v = CpuHasAvx512() && __builtin_cpu_supports("avx512vnni");
  return v;
}

// AVX-VNNI through CPUID leaf 7 sub-leaf 1 (EAX bit 4): older compilers'
// __builtin_cpu_supports does not know "avxvnni".
bool CpuHasAvxVnni() {
  static const bool v = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return CpuHasAvx2Fma() && __get_cpuid_count(7, 1, &a, &b, &c, &d) != 0 && (a & (1u << 4)) != 0;
  }();
  return v;
}

KernelIsa BestSupportedIsa() {
  if (CpuHasAvx512()) return KernelIsa::kAvx512;
  if (CpuHasAvx2Fma()) return KernelIsa::kAvx2;
  return KernelIsa::kReference;
}

std::vector<KernelIsa> SupportedIsas() {
  std::vector<KernelIsa> v = {KernelIsa::kReference};
  if (CpuHasAvx2Fma()) v.push_back(KernelIsa::kAvx2);
  if (CpuHasAvx512()) v.push_back(KernelIsa::kAvx512);
  return v;
}

KernelIsa ActiveIsa() {
  const int o = g_override.load(std::memory_order_relaxed);
  return o >= 0 ? static_cast<KernelIsa>(o) : FromEnv();
}

bool UseAvx512Vnni() {
  if (ActiveIsa() != KernelIsa::kAvx512 || !CpuHasAvx512Vnni()) return false;
  const int o = g_vnni_override.load(std::memory_order_relaxed);
  if (o >= 0) return o == 1;
  static const bool env_off = [] {
    const char* e = std::getenv("SQUEEZE_KERNELS");
    return e != nullptr && std::strcmp(e, "avx512novnni") == 0;
  }();
  return !env_off;
}

bool UseAvxVnni() {
  if (ActiveIsa() != KernelIsa::kAvx2 || !CpuHasAvxVnni()) return false;
  const int o = g_vnni_override.load(std::memory_order_relaxed);
  if (o >= 0) return o == 1;
  static const bool env_off = [] {
    const char* e = std::getenv("SQUEEZE_KERNELS");
    return e != nullptr && std::strcmp(e, "avx2novnni") == 0;
  }();
  return !env_off;
}

ScopedKernelIsa::ScopedKernelIsa(KernelIsa isa, bool allow_vnni)
    : previous_(g_override.exchange(static_cast<int>(Clamp(isa)))),
      previous_vnni_(g_vnni_override.exchange(allow_vnni ? 1 : 0)) {}

ScopedKernelIsa::~ScopedKernelIsa() {
  g_override.store(previous_);
  g_vnni_override.store(previous_vnni_);
}

}  // namespace squeeze::kernels
