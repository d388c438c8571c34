#include "workers/engine/core/allocator_config.h"

#include <cstdlib>
#include <initializer_list>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace squeeze {

bool ConfigureAllocatorForInference() {
#if defined(__GLIBC__)
  static const bool applied = [] {
    for (const char* env : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"}) {
      if (std::getenv(env) != nullptr) return false;
    }
    return mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMmapThresholdBytes)) == 1 &&
           mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTrimThresholdBytes)) == 1 &&
           mallopt(M_TOP_PAD, static_cast<int>(kTopPadBytes)) == 1;
  }();
  return applied;
#else
  return false;
#endif
}

bool ReleaseFreedMemory() {
#if defined(__GLIBC__)
  return malloc_trim(0) == 1;
#else
  return false;
#endif
}

}  // namespace squeeze
