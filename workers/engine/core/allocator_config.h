// Heap settings for processes that run models (the squeeze CLI, the worker,
// the engine benchmarks); call ConfigureAllocatorForInference() first thing
// in main().
//
// Why: every forward pass allocates its activation buffers (q/k/v, MLP
// intermediates, quantized activations: 1-100 MB at prefill) and frees them
// at the end of each block. With glibc's defaults those buffers are mmapped
// and unmapped (or the heap top is trimmed back to the system) every time,
// so each block's first writes page-fault and the kernel zeroes the pages
// again: on Llama-7B shapes at 1 thread that cost ~40% of int8-activation
// prefill time (tests/bench/llamacpp: prefill 295 -> 514 tok/s with these
// settings, the same run). Keeping freed memory in the heap (no trimming below
// kTrimThresholdBytes, allocations up to kMmapThresholdBytes from the heap,
// kTopPadBytes of slack) makes repeated passes reuse warm pages; peak memory
// is unchanged, freed memory is returned to the system only beyond the trim
// threshold (or by malloc_trim).
//
// A MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / MALLOC_TOP_PAD_
// environment variable (glibc's own tunables) wins over these settings.
// Outside glibc this does nothing.
#pragma once

#include <cstdint>

namespace squeeze {

inline constexpr int64_t kMmapThresholdBytes = int64_t{32} << 20;  // 32 MiB (glibc's maximum on 64-bit)
inline constexpr int64_t kTrimThresholdBytes = int64_t{1} << 30;   // 1 GiB
inline constexpr int64_t kTopPadBytes = int64_t{64} << 20;         // 64 MiB

// Applies the settings above (once; later calls do nothing). Returns false
// when nothing was changed (not glibc, or the environment sets them).
bool ConfigureAllocatorForInference();

// Returns freed heap memory to the system (glibc malloc_trim): for a
// long-lived process between runs (the worker after each job), since the
// settings above keep up to kTrimThresholdBytes of freed memory otherwise.
// Returns true when some memory was released.
bool ReleaseFreedMemory();

}  // namespace squeeze
