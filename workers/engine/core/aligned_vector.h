// CacheAlignedVector: a std::vector whose storage starts on a 64-byte
// boundary (one cache line, one AVX-512 register). Weight storage that
// kernels stream with full-width vector loads uses it: from malloc, a large
// vector starts 16 bytes into a page, so every 64-byte load of a row would
// straddle two cache lines (measured: int4 decode GEMV 20% slower).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace squeeze {

inline constexpr std::size_t kCacheLineBytes = 64;

template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}  // NOLINT: rebinding is implicit
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{kCacheLineBytes}));
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{kCacheLineBytes}); }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
};

template <typename T>
using CacheAlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace squeeze
