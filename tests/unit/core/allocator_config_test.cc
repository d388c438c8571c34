#include "workers/engine/core/allocator_config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <initializer_list>
#include <cstring>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace squeeze {
namespace {

// The settings apply once (glibc) and a freed activation-sized buffer stays
// in the heap instead of going back to the system.
TEST(AllocatorConfig, FreedBuffersStayInTheHeap) {
#if !defined(__GLIBC__)
  GTEST_SKIP() << "not glibc: ConfigureAllocatorForInference does nothing";
#else
  for (const char* env : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"}) {
    if (std::getenv(env) != nullptr) GTEST_SKIP() << env << " is set: the environment wins";
  }
  ASSERT_TRUE(ConfigureAllocatorForInference());
  EXPECT_TRUE(ConfigureAllocatorForInference());  // idempotent
  // 8 MiB (a 7B MLP activation of ~190 tokens) comes from the heap, not mmap,
  // and its pages are kept after free (no trim below 1 GiB).
  const struct mallinfo2 before = mallinfo2();
  void* p = std::malloc(size_t{8} << 20);
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, size_t{8} << 20);
  const struct mallinfo2 during = mallinfo2();
  EXPECT_EQ(during.hblkhd, before.hblkhd) << "an 8 MiB block was mmapped";
  std::free(p);
  const struct mallinfo2 after = mallinfo2();
  EXPECT_GE(after.arena, during.arena) << "the heap was trimmed after the free";
  EXPECT_GE(after.fordblks, size_t{8} << 20);
  // ReleaseFreedMemory gives the kept 8 MiB back (malloc_trim reports that
  // it released memory).
  EXPECT_TRUE(ReleaseFreedMemory());
#endif
}

}  // namespace
}  // namespace squeeze
